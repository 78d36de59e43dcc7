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

/* Clears FD_CLOEXEC. Returns 0 or -errno. Async-signal-safe. */
int fd_set_inheritable(int fd);

/* Opens /dev/null into every free number below the highest open fd, so the
 * next fd gets the number after it. Returns that highest fd or -errno.
 * Async-signal-safe. */
int fill_fd_holes(void);

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

#ifdef __cplusplus
}
#endif
