/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* eventfd-util: creation flags, counter arithmetic and its limits, and
 * blocking reads and writes between two processes. "Blocked" is read from
 * /proc/PID/syscall, never inferred from elapsed time. */

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcbarrier/eventfd-util.hh>

#include "test-util.h"

namespace {

using ipcbarrier::BorrowedFd;
using ipcbarrier::eventfd_add;
using ipcbarrier::eventfd_drain;
using ipcbarrier::eventfd_new;
using ipcbarrier::EventfdMode;
using ipcbarrier::UniqueFd;

/* The largest value the counter holds. */
constexpr uint64_t kCounterMax = UINT64_MAX - 1;
/* Written to out-parameters before a call that must leave them alone. */
constexpr uint64_t kUntouched = 0xdeadbeefcafef00d;

UniqueFd new_eventfd(EventfdMode mode) {
    UniqueFd fd;
    ASSERT_OK(eventfd_new(mode, &fd));
    g_assert_true(fd.valid());
    return fd;
}

bool readable_now(BorrowedFd fd) {
    return wait_readable(fd.get(), 0);
}

/* Whether the child pid has ended, without reaping it. */
bool child_ended(pid_t pid) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    g_assert_cmpint(waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT), ==, 0);
    return si.si_pid == pid;
}

/* Whether pid sits blocked in syscall nr with fd as its first argument, as
 * /proc/PID/syscall shows it ("running" while it runs). */
bool in_syscall(pid_t pid, long nr, int fd) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/syscall", static_cast<int>(pid));
    int f = open(path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(f, >=, 0);
    ssize_t n = read(f, buf, sizeof buf - 1);
    g_assert_cmpint(close(f), ==, 0);
    if (n <= 0) return false;
    buf[n] = '\0';
    char *end;
    long got = strtol(buf, &end, 10);
    if (end == buf || got != nr) return false;
    unsigned long arg0 = strtoul(end, nullptr, 16);
    return arg0 == static_cast<unsigned long>(fd);
}

/* Waits (with the watchdog) until the child blocks in syscall nr on fd.
 * A child that ends instead is reaped and fails the test. */
void wait_blocked_in(pid_t pid, long nr, int fd) {
    int64_t deadline = g_get_monotonic_time() + static_cast<int64_t>(watchdog_ms()) * 1000;
    while (!in_syscall(pid, nr, fd)) {
        if (child_ended(pid))
            g_error("the child ended (exit code %d) instead of blocking", wait_exit_status(pid));
        if (g_get_monotonic_time() > deadline)
            g_error("watchdog: the child never blocked in syscall %ld", nr);
        /* Only a pause between two looks; the outcome does not depend on
         * it. */
        (void)poll(nullptr, 0, 1);
    }
}

/* ---- creation ---- */

void test_new_blocking() {
    UniqueFd fd = new_eventfd(EventfdMode::blocking);
    g_assert_cmpint(fcntl(fd.get(), F_GETFL) & O_NONBLOCK, ==, 0);
    g_assert_cmpint(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
    /* The counter starts at zero: nothing to read. */
    g_assert_false(readable_now(fd));
}

void test_new_nonblocking() {
    UniqueFd fd = new_eventfd(EventfdMode::nonblocking);
    g_assert_cmpint(fcntl(fd.get(), F_GETFL) & O_NONBLOCK, ==, O_NONBLOCK);
    g_assert_cmpint(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
    g_assert_false(readable_now(fd));
}

/* Success replaces what the owner held, which is closed. */
void test_new_replaces_held_fd() {
    UniqueFd fd = new_eventfd(EventfdMode::nonblocking);
    int old = fd.get();
    ASSERT_OK(eventfd_add(fd, 5));
    ASSERT_OK(eventfd_new(EventfdMode::nonblocking, &fd));
    /* Made before the old one was closed, so under another number. */
    g_assert_true(fd.valid());
    g_assert_cmpint(fd.get(), !=, old);
    g_assert_true(fd_is_closed(old));
    uint64_t v = kUntouched;
    ASSERT_RET(eventfd_drain(fd, &v), -EAGAIN);
    g_assert_cmpuint(v, ==, kUntouched);
}

/* Without a free fd: the error, the owner unchanged, nothing leaked. In a
 * child, so that the lowered limit stays there. */
void child_new_emfile(void *) {
    UniqueFd held;
    CHILD_ASSERT(eventfd_new(EventfdMode::nonblocking, &held) == 0);
    int held_fd = held.get();
    CHILD_ASSERT(eventfd_add(held, 7) == 0);
    int highest = fill_fd_holes();
    CHILD_ASSERT(highest >= held_fd);
    struct rlimit rl;
    CHILD_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = static_cast<rlim_t>(highest) + 1;
    CHILD_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);

    CHILD_ASSERT(eventfd_new(EventfdMode::blocking, &held) == -EMFILE);
    CHILD_ASSERT(eventfd_new(EventfdMode::nonblocking, &held) == -EMFILE);
    CHILD_ASSERT(held.get() == held_fd);
    CHILD_ASSERT(highest_open_fd(highest + 8) == highest);
    uint64_t v = 0;
    CHILD_ASSERT(eventfd_drain(held, &v) == 0 && v == 7);

    /* One free number is enough. */
    rl.rlim_cur++;
    CHILD_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    CHILD_ASSERT(eventfd_new(EventfdMode::nonblocking, &held) == 0);
    CHILD_ASSERT(held.get() == highest + 1);
    CHILD_ASSERT(fd_is_closed(held_fd));
}

void test_new_emfile() {
    g_assert_cmpint(run_in_child(child_new_emfile, nullptr), ==, 0);
}

/* ---- counter arithmetic ---- */

void test_add_accumulates() {
    UniqueFd fd = new_eventfd(EventfdMode::nonblocking);
    uint64_t sum = 0;
    for (uint64_t v : {UINT64_C(1), UINT64_C(2), UINT64_C(39), UINT64_C(1) << 40}) {
        ASSERT_OK(eventfd_add(fd, v));
        sum += v;
        g_assert_true(readable_now(fd));
    }
    uint64_t got = 0;
    ASSERT_OK(eventfd_drain(fd, &got));
    g_assert_cmpuint(got, ==, sum);
}

void test_drain_resets() {
    UniqueFd fd = new_eventfd(EventfdMode::nonblocking);
    for (uint64_t round = 1; round <= 3; round++) {
        ASSERT_OK(eventfd_add(fd, round));
        ASSERT_OK(eventfd_add(fd, round * 100));
        uint64_t got = 0;
        ASSERT_OK(eventfd_drain(fd, &got));
        g_assert_cmpuint(got, ==, round * 101);
        /* Back at zero. */
        g_assert_false(readable_now(fd));
        got = kUntouched;
        ASSERT_RET(eventfd_drain(fd, &got), -EAGAIN);
        g_assert_cmpuint(got, ==, kUntouched);
    }
}

void test_drain_empty_nonblocking() {
    UniqueFd fd = new_eventfd(EventfdMode::nonblocking);
    uint64_t got = kUntouched;
    ASSERT_RET(eventfd_drain(fd, &got), -EAGAIN);
    g_assert_cmpuint(got, ==, kUntouched);
}

void test_add_invalid() {
    UniqueFd fd = new_eventfd(EventfdMode::nonblocking);
    ASSERT_OK(eventfd_add(fd, 5));
    ASSERT_RET(eventfd_add(fd, 0), -EINVAL);
    ASSERT_RET(eventfd_add(fd, UINT64_MAX), -EINVAL);
    /* Rejected values added nothing. */
    uint64_t got = 0;
    ASSERT_OK(eventfd_drain(fd, &got));
    g_assert_cmpuint(got, ==, 5);
}

/* The counter holds up to 2^64-2; an add that would pass it fails whole. */
void test_add_overflow_nonblocking() {
    UniqueFd fd = new_eventfd(EventfdMode::nonblocking);
    ASSERT_OK(eventfd_add(fd, kCounterMax));
    ASSERT_RET(eventfd_add(fd, 1), -EAGAIN);
    uint64_t got = 0;
    ASSERT_OK(eventfd_drain(fd, &got));
    g_assert_cmpuint(got, ==, kCounterMax);

    ASSERT_OK(eventfd_add(fd, 10));
    ASSERT_RET(eventfd_add(fd, kCounterMax - 9), -EAGAIN);
    ASSERT_OK(eventfd_add(fd, kCounterMax - 10));
    ASSERT_OK(eventfd_drain(fd, &got));
    g_assert_cmpuint(got, ==, kCounterMax);
}

void test_closed_fd() {
    int fd;
    {
        UniqueFd owner = new_eventfd(EventfdMode::nonblocking);
        fd = owner.get();
    }
    for (int bad : {fd, -1}) {
        ASSERT_RET(eventfd_add(BorrowedFd(bad), 1), -EBADF);
        uint64_t got = kUntouched;
        ASSERT_RET(eventfd_drain(BorrowedFd(bad), &got), -EBADF);
        g_assert_cmpuint(got, ==, kUntouched);
    }
}

/* Something that is not an eventfd: a pipe at end of file reads 0 bytes. */
void test_drain_not_an_eventfd() {
    int p[2];
    g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
    UniqueFd r(p[0]);
    g_assert_cmpint(close(p[1]), ==, 0);
    uint64_t got = kUntouched;
    ASSERT_RET(eventfd_drain(r, &got), -EIO);
    g_assert_cmpuint(got, ==, kUntouched);
}

/* ---- blocking, between two processes ---- */

/* The child blocks in the drain until the parent adds; it answers through
 * the same counter, which the parent reads only once the child is gone. */
void test_blocking_drain_woken_by_add() {
    UniqueFd fd = new_eventfd(EventfdMode::blocking);
    pid_t pid = fork_test_child();
    if (pid == 0) {
        uint64_t got = 0;
        CHILD_ASSERT(eventfd_drain(fd, &got) == 0);
        CHILD_ASSERT(got == 42);
        CHILD_ASSERT(eventfd_add(fd, got + 1) == 0);
        _exit(0);
    }
    wait_blocked_in(pid, SYS_read, fd.get());
    ASSERT_OK(eventfd_add(fd, 42));
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    uint64_t got = 0;
    ASSERT_OK(eventfd_drain(fd, &got));
    g_assert_cmpuint(got, ==, 43);
}

/* A blocking add that would pass the maximum waits for a drain, then adds
 * its whole value. */
void test_blocking_add_waits_for_drain() {
    UniqueFd fd = new_eventfd(EventfdMode::blocking);
    ASSERT_OK(eventfd_add(fd, 1));
    pid_t pid = fork_test_child();
    if (pid == 0) {
        CHILD_ASSERT(eventfd_add(fd, kCounterMax) == 0);
        _exit(0);
    }
    wait_blocked_in(pid, SYS_write, fd.get());
    uint64_t got = 0;
    ASSERT_OK(eventfd_drain(fd, &got));
    g_assert_cmpuint(got, ==, 1);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    ASSERT_OK(eventfd_drain(fd, &got));
    g_assert_cmpuint(got, ==, kCounterMax);
}

constexpr int kSignals = 20;

volatile sig_atomic_t signals_handled;
int signal_ack_fd = -1;

void on_sigusr1(int) {
    int saved = errno;
    signals_handled = signals_handled + 1;
    (void)!write(signal_ack_fd, "S", 1);
    errno = saved;
}

/* The child blocks in eventfd_drain(), or in an eventfd_add() that has to
 * wait for room. */
enum class Blocked { drain, add };

/* The child's side of the signal tests: a SIGUSR1 handler without
 * SA_RESTART, then the blocking call, which must see through every EINTR
 * and complete as if no signal had come. */
[[noreturn]] void child_block_under_signals(Blocked op, BorrowedFd fd, int ack_fd) {
    signal_ack_fd = ack_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sa.sa_flags = 0; /* no SA_RESTART: the kernel returns EINTR */
    CHILD_ASSERT(sigemptyset(&sa.sa_mask) == 0);
    CHILD_ASSERT(sigaction(SIGUSR1, &sa, nullptr) == 0);
    if (op == Blocked::drain) {
        uint64_t got = 0;
        CHILD_ASSERT(eventfd_drain(fd, &got) == 0);
        CHILD_ASSERT(got == 42);
    } else {
        CHILD_ASSERT(eventfd_add(fd, kCounterMax) == 0);
    }
    CHILD_ASSERT(signals_handled == kSignals);
    _exit(0);
}

/* Handled signals interrupt the blocked read or write with EINTR; the call
 * goes back to waiting each time and completes once the parent releases
 * it. */
void test_retries_after_signals(const void *data) {
    const Blocked op = *static_cast<const Blocked *>(data);
    const long nr = op == Blocked::drain ? SYS_read : SYS_write;
    UniqueFd fd = new_eventfd(EventfdMode::blocking);
    int ack[2];
    g_assert_cmpint(pipe2(ack, O_CLOEXEC), ==, 0);
    UniqueFd ack_read(ack[0]), ack_write(ack[1]);
    if (op == Blocked::add) ASSERT_OK(eventfd_add(fd, 1)); /* no room for the maximum */

    pid_t pid = fork_test_child();
    if (pid == 0) child_block_under_signals(op, fd, ack_write.get());

    for (int i = 0; i < kSignals; i++) {
        /* Each signal arrives while the call is blocked, and is handled
         * before the next one is sent. */
        wait_blocked_in(pid, nr, fd.get());
        g_assert_cmpint(kill(pid, SIGUSR1), ==, 0);
        if (!wait_readable(ack_read.get(), watchdog_ms()))
            g_error("watchdog: signal %d was not handled", i);
        char c = 0;
        g_assert_cmpint(read(ack_read.get(), &c, 1), ==, 1);
        g_assert_cmpint(c, ==, 'S');
    }
    /* Blocked again after the last signal, not returned. */
    wait_blocked_in(pid, nr, fd.get());
    uint64_t got = 0;
    if (op == Blocked::drain) {
        ASSERT_OK(eventfd_add(fd, 42));
    } else {
        ASSERT_OK(eventfd_drain(fd, &got));
        g_assert_cmpuint(got, ==, 1);
    }
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    if (op == Blocked::add) {
        ASSERT_OK(eventfd_drain(fd, &got));
        g_assert_cmpuint(got, ==, kCounterMax);
    }
    g_assert_false(readable_now(ack_read));
}

const Blocked blocked_drain = Blocked::drain;
const Blocked blocked_add = Blocked::add;

}  // namespace

int main(int argc, char **argv) {
    g_test_init(&argc, &argv, nullptr);

    test_add_fd_checked("/eventfd-util/new/blocking", test_new_blocking);
    test_add_fd_checked("/eventfd-util/new/nonblocking", test_new_nonblocking);
    test_add_fd_checked("/eventfd-util/new/replaces-held-fd", test_new_replaces_held_fd);
    test_add_fd_checked("/eventfd-util/new/emfile", test_new_emfile);
    test_add_fd_checked("/eventfd-util/add-accumulates", test_add_accumulates);
    test_add_fd_checked("/eventfd-util/drain-resets", test_drain_resets);
    test_add_fd_checked("/eventfd-util/drain-empty-nonblocking", test_drain_empty_nonblocking);
    test_add_fd_checked("/eventfd-util/add-invalid", test_add_invalid);
    test_add_fd_checked("/eventfd-util/add-overflow-nonblocking", test_add_overflow_nonblocking);
    test_add_fd_checked("/eventfd-util/closed-fd", test_closed_fd);
    test_add_fd_checked("/eventfd-util/drain-not-an-eventfd", test_drain_not_an_eventfd);
    test_add_fd_checked("/eventfd-util/blocking/drain-woken-by-add",
                        test_blocking_drain_woken_by_add);
    test_add_fd_checked("/eventfd-util/blocking/add-waits-for-drain",
                        test_blocking_add_waits_for_drain);
    test_add_data_fd_checked("/eventfd-util/blocking/drain-retries-after-signals", &blocked_drain,
                             test_retries_after_signals);
    test_add_data_fd_checked("/eventfd-util/blocking/add-retries-after-signals", &blocked_add,
                             test_retries_after_signals);

    return g_test_run();
}
