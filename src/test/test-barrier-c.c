/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The barrier's C interface, compiled as C, against the documented cases
 * (played by barrier-harness.c). Only the public header and the installed
 * library are used, as a C program using the systemd-style API would. */

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ipcbarrier/barrier.h>

#include "barrier-harness.h"

static void *c_alloc(void) {
    Barrier *b = malloc(sizeof *b);
    g_assert_nonnull(b);
    *b = (Barrier)BARRIER_NULL;
    return b;
}

static void c_free(void *b) {
    barrier_destroy(b);
    free(b);
}

static int c_create(void *b) {
    return barrier_create(b);
}

static bool c_is_empty(const void *p) {
    const Barrier *b = p;
    return b->me < 0 && b->them < 0 && b->pipe[0] < 0 && b->pipe[1] < 0;
}

static int c_set_role(void *b, bool child) {
    return barrier_set_role(b, child ? BARRIER_CHILD : BARRIER_PARENT);
}

static void c_destroy(void *b) {
    barrier_destroy(b);
}
static bool c_place(void *b) {
    return barrier_place(b);
}
static bool c_abort(void *b) {
    return barrier_abort(b);
}
static bool c_wait_next(void *b) {
    return barrier_wait_next(b);
}
static bool c_wait_abortion(void *b) {
    return barrier_wait_abortion(b);
}
static bool c_sync_next(void *b) {
    return barrier_sync_next(b);
}
static bool c_sync(void *b) {
    return barrier_sync(b);
}
static bool c_place_and_sync(void *b) {
    return barrier_place_and_sync(b);
}
static bool c_i_aborted(const void *b) {
    return barrier_i_aborted(b);
}
static bool c_they_aborted(const void *b) {
    return barrier_they_aborted(b);
}
static bool c_we_aborted(const void *b) {
    return barrier_we_aborted(b);
}
static bool c_is_aborted(const void *b) {
    return barrier_is_aborted(b);
}

static int c_wait_next_timeout(void *b, uint64_t usec) {
    return barrier_wait_next_timeout(b, usec);
}
static int c_wait_abortion_timeout(void *b, uint64_t usec) {
    return barrier_wait_abortion_timeout(b, usec);
}
static int c_sync_next_timeout(void *b, uint64_t usec) {
    return barrier_sync_next_timeout(b, usec);
}
static int c_sync_timeout(void *b, uint64_t usec) {
    return barrier_sync_timeout(b, usec);
}
static int c_get_pollfds(const void *b, struct pollfd ret[2]) {
    return barrier_get_pollfds(b, ret);
}
static int c_serialize(void *b, char *buf, size_t size) {
    return barrier_serialize(b, buf, size);
}
static int c_serialize_env(void *b, const char *name) {
    return barrier_serialize_env(b, name);
}
static int c_deserialize_env(void *b, const char *name) {
    return barrier_deserialize_env(b, name);
}

static const BarrierBackend c_backend = {
    .alloc = c_alloc,
    .free = c_free,
    .create = c_create,
    .is_empty = c_is_empty,
    .set_role = c_set_role,
    .destroy = c_destroy,
    .place = c_place,
    .abort = c_abort,
    .wait_next = c_wait_next,
    .wait_abortion = c_wait_abortion,
    .sync_next = c_sync_next,
    .sync = c_sync,
    .place_and_sync = c_place_and_sync,
    .i_aborted = c_i_aborted,
    .they_aborted = c_they_aborted,
    .we_aborted = c_we_aborted,
    .is_aborted = c_is_aborted,
    .wait_next_timeout = c_wait_next_timeout,
    .wait_abortion_timeout = c_wait_abortion_timeout,
    .sync_next_timeout = c_sync_next_timeout,
    .sync_timeout = c_sync_timeout,
    .get_pollfds = c_get_pollfds,
    .serialize = c_serialize,
    .serialize_env = c_serialize_env,
    .deserialize_env = c_deserialize_env,
};

/* The cleanup helper works as with systemd's _cleanup_(barrier_destroyp). */
static void test_cleanup_attribute(void) {
    int fd;
    {
        Barrier b = BARRIER_NULL;
        __attribute__((cleanup(barrier_destroyp))) Barrier *p = &b;
        g_assert_cmpint(barrier_create(p), ==, 0);
        fd = b.me;
        g_assert_cmpint(fd, >=, 0);
    }
    /* destroyed at scope exit: the number is free again */
    Barrier b2 = BARRIER_NULL;
    g_assert_cmpint(barrier_create(&b2), ==, 0);
    g_assert_cmpint(b2.me, ==, fd);
    barrier_destroy(&b2);

    Barrier *none = NULL;
    barrier_destroyp(&none);
}

static bool cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    g_assert_cmpint(flags, >=, 0);
    return flags & FD_CLOEXEC;
}

static void assert_same(const Barrier *a, const Barrier *b) {
    g_assert_cmpint(a->me, ==, b->me);
    g_assert_cmpint(a->them, ==, b->them);
    g_assert_cmpint(a->pipe[0], ==, b->pipe[0]);
    g_assert_cmpint(a->pipe[1], ==, b->pipe[1]);
    g_assert_true(a->barriers == b->barriers);
}

/* Serialize and deserialize in one process, for both roles and every
 * abortion state: the record has the documented form, the fds become
 * inheritable and then close-on-exec again, and the copy equals the
 * original. */
static void test_record_round_trip(void) {
    for (unsigned role = BARRIER_PARENT; role <= BARRIER_CHILD; role++)
        for (int state = 0; state < 3; state++) {
            Barrier b = BARRIER_NULL, copy = BARRIER_NULL;
            char record[BARRIER_RECORD_MAX], expected[BARRIER_RECORD_MAX];
            g_assert_cmpint(barrier_create(&b), ==, 0);
            g_assert_cmpint(barrier_set_role(&b, role), ==, 0);
            int kept = role == BARRIER_PARENT ? b.pipe[0] : b.pipe[1];
            const char *state_name = "none";
            long long n = 0;
            if (state == 1) {
                g_assert_true(barrier_place(&b));
                g_assert_true(barrier_place(&b));
                n = 2;
            } else if (state == 2) {
                g_assert_true(barrier_abort(&b));
                state_name = "i";
            }
            snprintf(expected, sizeof expected,
                     "ipcbarrier1 pid=%d role=%s me=%d them=%d pipe=%d n=%lld state=%s",
                     (int)getpid(), role == BARRIER_PARENT ? "parent" : "child", b.me, b.them, kept,
                     n, state_name);

            int len = barrier_serialize(&b, record, sizeof record);
            g_assert_cmpstr(record, ==, expected);
            g_assert_cmpint(len, ==, (int)strlen(expected));
            g_assert_false(cloexec(b.me) || cloexec(b.them) || cloexec(kept));

            g_assert_cmpint(barrier_deserialize(&copy, record, 0), ==, 0);
            assert_same(&copy, &b);
            g_assert_true(cloexec(b.me) && cloexec(b.them) && cloexec(kept));
            /* copy shares b's fds: only one of them is destroyed */
            barrier_destroy(&b);
        }
}

static char *replace_all(char *s, const char *what, int value) {
    char number[16];
    snprintf(number, sizeof number, "%d", value);
    char **parts = g_strsplit(s, what, -1);
    char *joined = g_strjoinv(number, parts);
    g_strfreev(parts);
    g_free(s);
    return joined;
}

/* The record with the placeholders for a child-side barrier b filled in. */
static char *substitute(const char *record, int pid, const Barrier *b, int closed) {
    char *s = g_strdup(record);
    s = replace_all(s, "$PID", pid);
    s = replace_all(s, "$ME", b->me);
    s = replace_all(s, "$THEM", b->them);
    s = replace_all(s, "$PIPE", b->pipe[1]);
    return replace_all(s, "$CLOSED", closed);
}

/* Every malformed or unfitting record is refused with its errno, and
 * nothing changes: not the result, not the fds' close-on-exec. */
static void test_record_refusals(void) {
    Barrier b = BARRIER_NULL;
    g_assert_cmpint(barrier_create(&b), ==, 0);
    g_assert_cmpint(barrier_set_role(&b, BARRIER_CHILD), ==, 0);
    int pid = (int)getpid();
    char good[BARRIER_RECORD_MAX];
    g_assert_cmpint(barrier_serialize(&b, good, sizeof good), >, 0);
    /* serializing made them inheritable; each refusal must leave them so */
    int fds[] = {b.me, b.them, b.pipe[1]};
    for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
        g_assert_cmpint(fcntl(fds[i], F_SETFD, FD_CLOEXEC), ==, 0);

    int closed = dup(b.me);
    g_assert_cmpint(closed, >=, 0);
    close(closed);
    char long_record[2 * BARRIER_RECORD_MAX];
    memset(long_record, ' ', sizeof long_record - 1);
    long_record[sizeof long_record - 1] = '\0';

    struct {
        const char *record; /* with $PID, $ME, $THEM, $PIPE, $CLOSED */
        int error;
    } cases[] = {
        {"", -EINVAL},
        {"ipcbarrier1", -EINVAL},
        {"ipcbarrier2 pid=$PID role=child me=$ME them=$THEM pipe=$PIPE n=0 state=none", -EINVAL},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$THEM pipe=$PIPE n=0 state=none ", -EINVAL},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$THEM pipe=$PIPE n=0 state=none\n", -EINVAL},
        {"ipcbarrier1  pid=$PID role=child me=$ME them=$THEM pipe=$PIPE n=0 state=none", -EINVAL},
        {"ipcbarrier1 pid=$PID role=child them=$ME me=$THEM pipe=$PIPE n=0 state=none", -EINVAL},
        {"ipcbarrier1 pid=0$PID role=child me=$ME them=$THEM pipe=$PIPE n=0 state=none", -EINVAL},
        {"ipcbarrier1 pid=+$PID role=child me=$ME them=$THEM pipe=$PIPE n=0 state=none", -EINVAL},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$THEM pipe=$PIPE n=-0 state=none", -EINVAL},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$THEM pipe=$PIPE n=9223372036854775808 "
         "state=none",
         -EINVAL},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$THEM pipe=$PIPE n=-9223372036854775808 "
         "state=none",
         -EINVAL},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$THEM pipe=$PIPE n=1 state=we", -EINVAL},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$THEM pipe=$PIPE n=0 state=all", -EINVAL},
        {"ipcbarrier1 pid=$PID role=uncle me=$ME them=$THEM pipe=$PIPE n=0 state=none", -EINVAL},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$THEM pipe=$PIPE2147483648 n=0 state=none",
         -EINVAL},
        {"ipcbarrier1 pid=99999999999$PID role=child me=$ME them=$THEM pipe=$PIPE n=0 state=none",
         -EINVAL},
        {"ipcbarrier1 pid=1 role=child me=$ME them=$THEM pipe=$PIPE n=0 state=none", -ESRCH},
        /* the fds: closed, of the wrong kind, of the wrong direction */
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$THEM pipe=$CLOSED n=0 state=none", -EBADF},
        {"ipcbarrier1 pid=$PID role=child me=0 them=$THEM pipe=$PIPE n=0 state=none", -EBADFD},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$PIPE pipe=$THEM n=0 state=none", -EBADFD},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$PIPE pipe=$PIPE n=0 state=none", -EINVAL},
        {"ipcbarrier1 pid=$PID role=child me=$ME them=$ME pipe=$PIPE n=0 state=none", -EINVAL},
        {"ipcbarrier1 pid=$PID role=parent me=$ME them=$THEM pipe=$PIPE n=0 state=none", -EBADFD},
        {"ipcbarrier1 pid=$PID role=child me=$PIPE them=$THEM pipe=$ME n=0 state=none", -EBADFD},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *record = substitute(cases[i].record, pid, &b, closed);
        Barrier out = {-7, -7, 7, {-7, -7}};
        g_test_message("record: \"%s\"", record);
        g_assert_cmpint(barrier_deserialize(&out, record, 0), ==, cases[i].error);
        g_assert_cmpint(out.me, ==, -7);
        g_assert_true(out.barriers == 7);
        g_assert_true(cloexec(b.me) && cloexec(b.them) && cloexec(b.pipe[1]));
        g_free(record);
    }
    Barrier out = BARRIER_NULL;
    g_assert_cmpint(barrier_deserialize(&out, long_record, 0), ==, -E2BIG);
    g_assert_cmpint(barrier_deserialize(&out, NULL, 0), ==, -ENOENT);
    g_assert_cmpint(barrier_deserialize(&out, good, -1), ==, -EINVAL);
    /* meant for the parent: refused for us, accepted when asked for it */
    g_assert_cmpint(barrier_deserialize(&out, good, getppid()), ==, -ESRCH);
    g_assert_cmpint(barrier_deserialize(&out, good, getpid()), ==, 0);
    barrier_destroy(&b);
}

static void test_record_environment(void) {
    Barrier b = BARRIER_NULL, copy = BARRIER_NULL;
    char small[8];

    g_assert_cmpint(barrier_serialize(&b, small, sizeof small), ==, -EBADF);
    g_assert_cmpint(barrier_create(&b), ==, 0);
    g_assert_cmpint(barrier_serialize_env(&b, NULL), ==, -EBADF); /* no role yet */
    g_assert_cmpint(barrier_set_role(&b, BARRIER_PARENT), ==, 0);
    g_assert_cmpint(barrier_serialize(&b, small, sizeof small), ==, -ENOBUFS);
    g_assert_true(cloexec(b.me));

    g_assert_cmpint(barrier_serialize_env(&b, "A=B"), ==, -EINVAL);
    g_assert_cmpint(barrier_serialize_env(&b, ""), ==, -EINVAL);
    g_assert_cmpint(barrier_deserialize_env(&copy, "A=B"), ==, -EINVAL);
    g_assert_null(getenv("IPCBARRIER_TEST_RECORD"));
    g_assert_cmpint(barrier_deserialize_env(&copy, "IPCBARRIER_TEST_RECORD"), ==, -ENOENT);

    g_assert_cmpint(barrier_serialize_env(&b, "IPCBARRIER_TEST_RECORD"), ==, 0);
    g_assert_nonnull(getenv("IPCBARRIER_TEST_RECORD"));
    g_assert_false(cloexec(b.them));
    g_assert_cmpint(barrier_deserialize_env(&copy, "IPCBARRIER_TEST_RECORD"), ==, 0);
    g_assert_null(getenv("IPCBARRIER_TEST_RECORD"));
    g_assert_true(cloexec(b.them));
    assert_same(&copy, &b);

    g_assert_null(getenv(BARRIER_ENV));
    g_assert_cmpint(barrier_serialize_env(&b, NULL), ==, 0);
    g_assert_nonnull(getenv(BARRIER_ENV));
    g_assert_cmpint(barrier_deserialize_env(&copy, NULL), ==, 0);
    g_assert_null(getenv(BARRIER_ENV));
    barrier_destroy(&b);
}

static void test_pollfds(void) {
    Barrier b = BARRIER_NULL;
    struct pollfd pfd[2];
    g_assert_cmpint(barrier_get_pollfds(&b, pfd), ==, -EBADF);
    g_assert_cmpint(barrier_create(&b), ==, 0);
    g_assert_cmpint(barrier_get_pollfds(&b, pfd), ==, -EBADF);
    /* Stands in for the peer's end of the pipe, so that nobody is gone. */
    int peer_end = fcntl(b.pipe[0], F_DUPFD_CLOEXEC, 3);
    g_assert_cmpint(peer_end, >=, 0);
    g_assert_cmpint(barrier_set_role(&b, BARRIER_CHILD), ==, 0);
    g_assert_cmpint(barrier_get_pollfds(&b, pfd), ==, 0);
    g_assert_cmpint(pfd[0].fd, ==, b.them);
    g_assert_true(pfd[0].events & POLLIN);
    g_assert_cmpint(pfd[1].fd, ==, b.pipe[1]);
    /* nothing arrived: not readable, and the wait does not block */
    g_assert_cmpint(poll(pfd, 2, 0), ==, 0);
    g_assert_cmpint(barrier_wait_next_timeout(&b, 0), ==, -ETIMEDOUT);
    /* the peer goes: now the pipe end reports it, and the wait sees it */
    close(peer_end);
    g_assert_cmpint(poll(pfd, 2, 0), ==, 1);
    g_assert_true(pfd[1].revents & (POLLERR | POLLHUP));
    g_assert_cmpint(barrier_wait_next_timeout(&b, 0), ==, 0);
    barrier_destroy(&b);
}

int main(int argc, char **argv) {
    harness_handle_exec(argc, argv, &c_backend);
    g_test_init(&argc, &argv, NULL);
    harness_add_tests(&c_backend, "/barrier-c");
    g_test_add_func("/barrier-c/cleanup-attribute", test_cleanup_attribute);
    g_test_add_func("/barrier-c/record/round-trip", test_record_round_trip);
    g_test_add_func("/barrier-c/record/refusals", test_record_refusals);
    g_test_add_func("/barrier-c/record/environment", test_record_environment);
    g_test_add_func("/barrier-c/pollfds", test_pollfds);
    return g_test_run();
}
