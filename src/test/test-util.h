/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small helpers shared by the test binaries (C and C++). The ones meant for
 * forked children are async-signal-safe. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* In a forked child: writes msg to stderr and _exit(1)s. Never g_assert
 * there: it would write into the parent's TAP stream. */
__attribute__((noreturn)) void child_fail(const char *msg);

/* The watchdog for every wait of the tests, in milliseconds: 120 s, or
 * IPCBARRIER_TEST_WATCHDOG_SEC. Only turns a hang into a failure. */
int watchdog_ms(void);
/* The same in microseconds. */
uint64_t watchdog_usec(void);

/* Whether the long variants run: GLib's -m slow, or IPCBARRIER_TEST_SLOW=1
 * in the environment (what "meson test --setup slow" sets). */
bool test_slow(void);

/* Whether fd becomes readable (or hangs up) within timeout_ms. */
bool wait_readable(int fd, int timeout_ms);

/* A pidfd for the child pid, or -1 where pidfd_open(2) is unavailable
 * (old kernels, valgrind 3.19); the functions below take either. */
int child_watch_open(pid_t pid);

/* Waits up to timeout_ms for the child to end and reaps it. Returns its
 * wait status, or INT_MIN when the watchdog fired. */
int wait_child_exit(pid_t pid, int pidfd, int timeout_ms);

/* Whether the child has not ended (an ended child is reaped). */
bool child_alive(pid_t pid, int pidfd);

/* Reaps pid (with the watchdog) and returns its exit code, or 128+signal. */
int wait_exit_status(pid_t pid);

/* Asserts that no child of the test process is left, running or zombie. */
void assert_no_children(void);

/* Clears FD_CLOEXEC. Returns 0 or -errno. Async-signal-safe. */
int fd_set_inheritable(int fd);

/* Opens /dev/null into every free number below the highest open fd, so the
 * next fd gets the number after it. Returns that highest fd or -errno.
 * Async-signal-safe. */
int fill_fd_holes(void);

/* Whether fd is open, and whether it is closed (fcntl(F_GETFD) fails with
 * EBADF). Async-signal-safe. */
bool fd_is_open(int fd);
bool fd_is_closed(int fd);

/* The highest open fd below limit, or -1. Async-signal-safe. */
int highest_open_fd(int limit);

/* Which of the fds below FD_SNAPSHOT_MAX are open, to prove that a test
 * leaked none (valgrind's --track-fds only reports). Async-signal-safe. */
#define FD_SNAPSHOT_MAX 1024
typedef struct {
    uint64_t open[FD_SNAPSHOT_MAX / 64];
} FdSnapshot;
void fd_snapshot(FdSnapshot *ret);
/* The first fd open in one snapshot and not the other, or -1. */
int fd_snapshot_diff(const FdSnapshot *a, const FdSnapshot *b);

/* For calls that return >= 0 or -errno, where g_assert_no_errno() (which
 * reads errno) is wrong: ASSERT_OK(expr) wants expr >= 0, ASSERT_RET(expr,
 * expected) wants expr == expected (e.g. -EBADF). The failure message names
 * the errors. expr is evaluated once. */
#define ASSERT_OK(expr)                                                                     \
    do {                                                                                    \
        long long assert_got_ = (long long)(expr);                                          \
        if (assert_got_ < 0)                                                                \
            assert_ret_failed(__FILE__, __LINE__, __func__, #expr, ">= 0", assert_got_, 0); \
    } while (0)
#define ASSERT_RET(expr, expected)                                                               \
    do {                                                                                         \
        long long assert_got_ = (long long)(expr);                                               \
        long long assert_want_ = (long long)(expected);                                          \
        if (assert_got_ != assert_want_)                                                         \
            assert_ret_failed(__FILE__, __LINE__, __func__, #expr, "== " #expected, assert_got_, \
                              assert_want_);                                                     \
    } while (0)
void assert_ret_failed(const char *file, int line, const char *func, const char *expr,
                       const char *cond, long long got, long long expected);

/* In a forked child: child_fail()s with the condition and its place unless
 * cond holds. Async-signal-safe. */
#define TEST_STRINGIFY_(x) #x
#define TEST_STRINGIFY(x) TEST_STRINGIFY_(x)
#define CHILD_ASSERT(cond)                                                                 \
    do {                                                                                   \
        if (!(cond)) child_fail(__FILE__ ":" TEST_STRINGIFY(__LINE__) ": failed: " #cond); \
    } while (0)

/* fork() for a test: the child is killed when the test process dies, so a
 * failed test leaves nothing behind. Returns 0 in the child and its pid in
 * the parent (asserting that fork() worked). */
pid_t fork_test_child(void);

/* Runs fn(arg) in a child from fork_test_child() that _exit(0)s when fn
 * returns (fn fails with CHILD_ASSERT() or child_fail()), and returns the
 * child's exit code, or 128+signal. */
int run_in_child(void (*fn)(void *arg), void *arg);

/* g_test_add_func() and g_test_add_data_func(), wrapped in a check that the
 * test closes every fd it opened and closes none it did not open. */
void test_add_fd_checked(const char *path, void (*fn)(void));
void test_add_data_fd_checked(const char *path, const void *data, void (*fn)(const void *data));

#ifdef __cplusplus
}
#endif
