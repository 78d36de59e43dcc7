/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test-util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void child_fail(const char *msg) {
    static const char prefix[] = "test child: ";
    (void)!write(STDERR_FILENO, prefix, sizeof prefix - 1);
    (void)!write(STDERR_FILENO, msg, strlen(msg));
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(1);
}

int watchdog_ms(void) {
    static int ms;
    if (ms == 0) {
        const char *e = getenv("IPCBARRIER_TEST_WATCHDOG_SEC");
        long sec = e ? strtol(e, NULL, 10) : 0;
        ms = (int)((sec > 0 && sec < 86400 ? sec : 120) * 1000);
    }
    return ms;
}

bool wait_readable(int fd, int timeout_ms) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
    int64_t deadline = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    for (;;) {
        int64_t left = deadline - g_get_monotonic_time();
        int n = poll(&pfd, 1, left > 0 ? (int)(left / 1000) : 0);
        if (n > 0) return true;
        if (n == 0) return false;
        g_assert_cmpint(errno, ==, EINTR);
    }
}

int child_watch_open(pid_t pid) {
    static bool unavailable;
    if (unavailable) return -1;
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        g_assert_cmpint(errno, ==, ENOSYS);
        unavailable = true;
    }
    /* pidfds are close-on-exec from birth. */
    return fd;
}

int wait_child_exit(pid_t pid, int pidfd, int timeout_ms) {
    int status;
    if (pidfd >= 0) {
        if (!wait_readable(pidfd, timeout_ms)) return INT_MIN;
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        return status;
    }
    /* Without a pidfd nothing can be polled: look, pause, look again. */
    int64_t deadline = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        g_assert_cmpint(r, >=, 0);
        if (r == pid) return status;
        if (g_get_monotonic_time() > deadline) return INT_MIN;
        (void)poll(NULL, 0, 1);
    }
}

bool child_alive(pid_t pid, int pidfd) {
    if (pidfd >= 0) return !wait_readable(pidfd, 0);
    int status;
    return waitpid(pid, &status, WNOHANG) == 0;
}

int wait_exit_status(pid_t pid) {
    int pidfd = child_watch_open(pid);
    int status = wait_child_exit(pid, pidfd, watchdog_ms());
    if (pidfd >= 0) close(pidfd);
    g_assert_cmpint(status, !=, INT_MIN);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

int fd_set_inheritable(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) return -errno;
    return 0;
}

int highest_open_fd(int limit) {
    for (int fd = limit - 1; fd >= 0; fd--)
        if (fcntl(fd, F_GETFD) >= 0) return fd;
    return -1;
}

int fill_fd_holes(void) {
    int highest = highest_open_fd(4096);
    for (int fd = 0; fd < highest; fd++) {
        if (fcntl(fd, F_GETFD) >= 0) continue;
        /* The lowest free number is fd itself. */
        if (open("/dev/null", O_RDONLY | O_CLOEXEC) < 0) return -errno;
    }
    return highest;
}

void fd_snapshot(FdSnapshot *ret) {
    memset(ret, 0, sizeof *ret);
    for (int fd = 0; fd < FD_SNAPSHOT_MAX; fd++)
        if (fcntl(fd, F_GETFD) >= 0) ret->open[fd / 64] |= UINT64_C(1) << (fd % 64);
}

int fd_snapshot_diff(const FdSnapshot *a, const FdSnapshot *b) {
    for (int fd = 0; fd < FD_SNAPSHOT_MAX; fd++) {
        uint64_t bit = UINT64_C(1) << (fd % 64);
        if ((a->open[fd / 64] & bit) != (b->open[fd / 64] & bit)) return fd;
    }
    return -1;
}
