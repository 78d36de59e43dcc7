/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test-util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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

uint64_t watchdog_usec(void) {
    return (uint64_t)watchdog_ms() * 1000;
}

bool test_slow(void) {
    const char *e = getenv("IPCBARRIER_TEST_SLOW");
    return g_test_slow() || (e && strcmp(e, "1") == 0);
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

void assert_no_children(void) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
    if (r == 0 && si.si_pid == 0) g_test_message("a child is still running");
    if (r == 0 && si.si_pid != 0) g_test_message("child %d is a zombie", si.si_pid);
    g_assert_cmpint(r, ==, -1);
    g_assert_cmpint(errno, ==, ECHILD);
}

int fd_set_inheritable(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) return -errno;
    return 0;
}

bool fd_is_open(int fd) {
    return fcntl(fd, F_GETFD) >= 0;
}

bool fd_is_closed(int fd) {
    return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
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

static const char *errno_name(long long negative_errno) {
    const char *name = NULL;
    if (negative_errno < 0 && negative_errno > -4096) name = strerrorname_np((int)-negative_errno);
    return name ? name : "not an errno";
}

void assert_ret_failed(const char *file, int line, const char *func, const char *expr,
                       const char *cond, long long got, long long expected) {
    char *msg;
    if (got < 0)
        msg = g_strdup_printf("assertion failed (%s %s): got %lld (%s)", expr, cond, got,
                              errno_name(got));
    else
        msg = g_strdup_printf("assertion failed (%s %s): got %lld", expr, cond, got);
    if (expected < 0) {
        char *full = g_strdup_printf("%s, expected %s", msg, errno_name(expected));
        g_free(msg);
        msg = full;
    }
    g_assertion_message(G_LOG_DOMAIN, file, line, func, msg);
    g_free(msg);
}

pid_t fork_test_child(void) {
    pid_t parent = getpid();
    pid_t pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail("prctl(PR_SET_PDEATHSIG) failed");
        /* The parent may have died before prctl() took effect. */
        if (getppid() != parent) _exit(3);
    }
    return pid;
}

int run_in_child(void (*fn)(void *arg), void *arg) {
    pid_t pid = fork_test_child();
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    return wait_exit_status(pid);
}

typedef struct {
    void (*fn)(void);
    void (*data_fn)(const void *data);
    const void *data;
} FdCheckedTest;

static void run_fd_checked(gconstpointer p) {
    const FdCheckedTest *t = p;
    FdSnapshot before, after;
    fd_snapshot(&before);
    if (t->fn)
        t->fn();
    else
        t->data_fn(t->data);
    fd_snapshot(&after);
    int fd = fd_snapshot_diff(&before, &after);
    if (fd >= 0) {
        char *msg =
            g_strdup_printf("fd %d was %s by the test", fd,
                            (before.open[fd / 64] >> (fd % 64)) & 1 ? "closed" : "left open");
        g_assertion_message(G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC, msg);
        g_free(msg);
    }
}

/* The closures live here rather than on the heap: GLib 2.74 frees a test's
 * data only when the test runs, and one that -p or -s leaves out would
 * show as a leak under valgrind. */
static FdCheckedTest *new_fd_checked(void) {
    static FdCheckedTest pool[1024];
    static size_t used;
    if (used == G_N_ELEMENTS(pool)) g_error("more than %zu fd-checked tests", used);
    return &pool[used++];
}

void test_add_fd_checked(const char *path, void (*fn)(void)) {
    FdCheckedTest *t = new_fd_checked();
    t->fn = fn;
    g_test_add_data_func(path, t, run_fd_checked);
}

void test_add_data_fd_checked(const char *path, const void *data, void (*fn)(const void *data)) {
    FdCheckedTest *t = new_fd_checked();
    t->data_fn = fn;
    t->data = data;
    g_test_add_data_func(path, t, run_fd_checked);
}
