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
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcbarrier/barrier.h>
#include <ipcbarrier/barrier-event.h>

#include "barrier-harness.h"
#include "test-util.h"

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
    return b->me < 0 && b->them < 0 && b->pipe[0] < 0 && b->pipe[1] < 0 && !b->watch;
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
static bool c_abort_errno(void *b, int err) {
    return barrier_abort_errno(b, err);
}
static int c_get_abort_errno(const void *b) {
    return barrier_get_abort_errno(b);
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
static int c_deserialize(void *b, const char *record, pid_t owner) {
    return barrier_deserialize(b, record, owner);
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
    .abort_errno = c_abort_errno,
    .get_abort_errno = c_get_abort_errno,
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
    .deserialize = c_deserialize,
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
    g_assert_cmpint(a->abort_errno, ==, b->abort_errno);
}

/* The "eventfd-id" the kernel shows for fd, or 0. */
static unsigned long long eventfd_id(int fd) {
    char path[64], *text = NULL;
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    const char *p = strstr(text, "eventfd-id:");
    unsigned long long id = p ? strtoull(p + strlen("eventfd-id:"), NULL, 10) : 0;
    g_free(text);
    return id;
}

static unsigned long long inode_of(int fd) {
    struct stat st;
    g_assert_cmpint(fstat(fd, &st), ==, 0);
    return (unsigned long long)st.st_ino;
}

/* The record that barrier_serialize() must write for b. */
static char *expected_record(const Barrier *b, const char *state, long long n, int err) {
    bool parent = b->pipe[0] >= 0;
    int kept = parent ? b->pipe[0] : b->pipe[1];
    return g_strdup_printf(
        "ipcbarrier2 pid=%d role=%s me=%d:%llu them=%d:%llu pipe=%d:%llu n=%lld state=%s err=%d",
        (int)getpid(), parent ? "parent" : "child", b->me, eventfd_id(b->me), b->them,
        eventfd_id(b->them), kept, inode_of(kept), n, state, err);
}

/* Serialize and deserialize in one process, for both roles and every
 * abortion state: the record has the documented form, the fds become
 * inheritable and then close-on-exec again, and the copy equals the
 * original. */
static void test_record_round_trip(void) {
    for (unsigned role = BARRIER_PARENT; role <= BARRIER_CHILD; role++)
        for (int state = 0; state < 4; state++) {
            Barrier b = BARRIER_NULL, copy = BARRIER_NULL;
            char record[BARRIER_RECORD_MAX];
            g_assert_cmpint(barrier_create(&b), ==, 0);
            g_assert_cmpint(barrier_set_role(&b, role), ==, 0);
            int kept = role == BARRIER_PARENT ? b.pipe[0] : b.pipe[1];
            const char *state_name = "none";
            long long n = 0;
            int err = 0;
            if (state == 1) {
                g_assert_true(barrier_place(&b));
                g_assert_true(barrier_place(&b));
                n = 2;
            } else if (state == 2) {
                g_assert_true(barrier_abort(&b));
                state_name = "i";
            } else if (state == 3) {
                /* As if the other side had aborted with EACCES: its value
                 * written into the eventfd this side reads. */
                uint64_t abortion =
                    (UINT64_C(1) << 60) + (UINT64_C(1) << 58) + ((uint64_t)EACCES << 44);
                g_assert_cmpint(write(b.them, &abortion, sizeof abortion), ==, 8);
                g_assert_cmpint(barrier_wait_next_timeout(&b, 0), ==, 0);
                g_assert_cmpint(barrier_get_abort_errno(&b), ==, EACCES);
                state_name = "they";
                err = EACCES;
            }
            char *expected = expected_record(&b, state_name, n, err);

            int len = barrier_serialize(&b, record, sizeof record);
            g_assert_cmpstr(record, ==, expected);
            g_assert_cmpint(len, ==, (int)strlen(expected));
            g_assert_false(cloexec(b.me) || cloexec(b.them) || cloexec(kept));

            g_assert_cmpint(barrier_deserialize(&copy, record, 0), ==, 0);
            assert_same(&copy, &b);
            g_assert_true(cloexec(b.me) && cloexec(b.them) && cloexec(kept));
            g_free(expected);
            /* copy shares b's fds: only one of them is destroyed */
            barrier_destroy(&b);
        }
}

static char *replace_all(char *s, const char *what, unsigned long long value) {
    char number[32];
    snprintf(number, sizeof number, "%llu", value);
    char **parts = g_strsplit(s, what, -1);
    char *joined = g_strjoinv(number, parts);
    g_strfreev(parts);
    g_free(s);
    return joined;
}

/* What the refusal records below name with placeholders. */
typedef struct {
    const Barrier *b; /* role child, its fds inheritable */
    int closed;       /* a number that is not open */
    int cloexec;      /* an eventfd that is close-on-exec */
    int dup_me;       /* the eventfd written, under a second number */
    int semaphore;    /* an EFD_SEMAPHORE eventfd */
    int other;        /* an unrelated non-blocking eventfd */
    int fifo;         /* a named FIFO opened for writing */
    int other_pipe;   /* the write end of an unrelated pipe */
    int opath;        /* an O_PATH fd of the barrier's pipe */
} Refusals;

/* The record with the placeholders filled in. The longest names first:
 * $ME is a prefix of $MEID. */
static char *substitute(const char *record, const Refusals *x) {
    const Barrier *b = x->b;
    char *s = g_strdup(record);
    s = replace_all(s, "$PID", (unsigned long long)getpid());
    s = replace_all(s, "$MEID", eventfd_id(b->me));
    s = replace_all(s, "$THEMID", eventfd_id(b->them));
    s = replace_all(s, "$PIPEINO", inode_of(b->pipe[1]));
    s = replace_all(s, "$OTHERID", eventfd_id(x->other));
    s = replace_all(s, "$SEMAPHOREID", eventfd_id(x->semaphore));
    s = replace_all(s, "$OTHERPIPEINO", inode_of(x->other_pipe));
    s = replace_all(s, "$FIFOINO", inode_of(x->fifo));
    s = replace_all(s, "$ME", (unsigned long long)b->me);
    s = replace_all(s, "$THEM", (unsigned long long)b->them);
    s = replace_all(s, "$PIPE", (unsigned long long)b->pipe[1]);
    s = replace_all(s, "$CLOSED", (unsigned long long)x->closed);
    s = replace_all(s, "$CLOEXEC", (unsigned long long)x->cloexec);
    s = replace_all(s, "$DUPME", (unsigned long long)x->dup_me);
    s = replace_all(s, "$SEMAPHORE", (unsigned long long)x->semaphore);
    s = replace_all(s, "$OTHERPIPE", (unsigned long long)x->other_pipe);
    s = replace_all(s, "$OPATH", (unsigned long long)x->opath);
    s = replace_all(s, "$OTHER", (unsigned long long)x->other);
    return replace_all(s, "$FIFO", (unsigned long long)x->fifo);
}

static int inheritable(int fd) {
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fcntl(fd, F_SETFD, 0), ==, 0);
    return fd;
}

/* Every malformed or unfitting record is refused with its errno, and
 * nothing changes: not the result, not the fds' close-on-exec. */
static void test_record_refusals(void) {
    Barrier b = BARRIER_NULL;
    g_assert_cmpint(barrier_create(&b), ==, 0);
    g_assert_cmpint(barrier_set_role(&b, BARRIER_CHILD), ==, 0);
    char good[BARRIER_RECORD_MAX];
    /* serializing makes the fds inheritable, as after execve() */
    g_assert_cmpint(barrier_serialize(&b, good, sizeof good), >, 0);

    Refusals x = {.b = &b};
    x.cloexec = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    g_assert_cmpint(x.cloexec, >=, 0);
    x.dup_me = inheritable(dup(b.me));
    x.semaphore = inheritable(eventfd(0, EFD_NONBLOCK | EFD_SEMAPHORE));
    x.other = inheritable(eventfd(0, EFD_NONBLOCK));
    int other_pipe[2];
    g_assert_cmpint(pipe2(other_pipe, O_NONBLOCK), ==, 0);
    x.other_pipe = other_pipe[1];
    char *dir = g_dir_make_tmp("test-barrier-c-XXXXXX", NULL);
    g_assert_nonnull(dir);
    char *fifo_path = g_build_filename(dir, "fifo", NULL);
    g_assert_cmpint(mkfifo(fifo_path, 0600), ==, 0);
    /* write-only, as a child's pipe end: opening that needs a reader */
    int fifo_reader = open(fifo_path, O_RDONLY | O_NONBLOCK);
    g_assert_cmpint(fifo_reader, >=, 0);
    x.fifo = inheritable(open(fifo_path, O_WRONLY | O_NONBLOCK));
    close(fifo_reader);
    char *opath = g_strdup_printf("/proc/self/fd/%d", b.pipe[1]);
    x.opath = inheritable(open(opath, O_PATH));
    g_free(opath);
    /* last, so that no fd opened above takes the number */
    x.closed = dup(b.me);
    g_assert_cmpint(x.closed, >=, 0);
    close(x.closed);
    char long_record[2 * BARRIER_RECORD_MAX];
    memset(long_record, ' ', sizeof long_record - 1);
    long_record[sizeof long_record - 1] = '\0';

#define R(fields) "ipcbarrier2 pid=$PID role=child " fields
#define FDS "me=$ME:$MEID them=$THEM:$THEMID pipe=$PIPE:$PIPEINO"
    struct {
        const char *record;
        int error;
    } cases[] = {
        {"", -EINVAL},
        {"ipcbarrier2", -EINVAL},
        {"ipcbarrier1 pid=$PID role=child " FDS " n=0 state=none err=0", -EINVAL},
        {R(FDS " n=0 state=none err=0 "), -EINVAL},
        {R(FDS " n=0 state=none err=0\n"), -EINVAL},
        {R(FDS " n=0 state=none"), -EINVAL},
        {"ipcbarrier2  pid=$PID role=child " FDS " n=0 state=none err=0", -EINVAL},
        {R("them=$THEM:$THEMID me=$ME:$MEID pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EINVAL},
        {R("me=$ME them=$THEM pipe=$PIPE n=0 state=none err=0"), -EINVAL},
        {R("me=$ME:0$MEID them=$THEM:$THEMID pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EINVAL},
        {"ipcbarrier2 pid=0$PID role=child " FDS " n=0 state=none err=0", -EINVAL},
        {"ipcbarrier2 pid=+$PID role=child " FDS " n=0 state=none err=0", -EINVAL},
        {R(FDS " n=-0 state=none err=0"), -EINVAL},
        {R(FDS " n=9223372036854775808 state=none err=0"), -EINVAL},
        {R(FDS " n=-9223372036854775808 state=none err=0"), -EINVAL},
        /* the counter stays within what place() allows */
        {R(FDS " n=4398046511104 state=none err=0"), -EINVAL},
        {R(FDS " n=-4398046511104 state=none err=0"), -EINVAL},
        {R(FDS " n=9223372036854775807 state=none err=0"), -EINVAL},
        {R(FDS " n=1 state=we err=0"), -EINVAL},
        {R(FDS " n=0 state=all err=0"), -EINVAL},
        /* only a side that saw them abort knows a reason */
        {R(FDS " n=0 state=none err=13"), -EINVAL},
        {R(FDS " n=0 state=i err=13"), -EINVAL},
        {R(FDS " n=0 state=they err=4096"), -EINVAL},
        {R(FDS " n=0 state=they err=013"), -EINVAL},
        {"ipcbarrier2 pid=$PID role=uncle " FDS " n=0 state=none err=0", -EINVAL},
        {R("me=$ME:$MEID them=$THEM:$THEMID pipe=$PIPE2147483648:1 n=0 state=none err=0"), -EINVAL},
        {"ipcbarrier2 pid=99999999999$PID role=child " FDS " n=0 state=none err=0", -EINVAL},
        {R("me=$ME:$MEID them=$ME:$MEID pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EINVAL},
        {"ipcbarrier2 pid=1 role=child " FDS " n=0 state=none err=0", -ESRCH},
        /* the fds: closed */
        {R("me=$ME:$MEID them=$THEM:$THEMID pipe=$CLOSED:$PIPEINO n=0 state=none err=0"), -EBADF},
        /* stdio, close-on-exec (not inherited) */
        {R("me=0:$MEID them=$THEM:$THEMID pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EBADFD},
        {R("me=$ME:$MEID them=$THEM:$THEMID pipe=1:$PIPEINO n=0 state=none err=0"), -EBADFD},
        {R("me=$CLOEXEC:0 them=$THEM:$THEMID pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EBADFD},
        /* of the wrong kind or direction */
        {R("me=$ME:$MEID them=$PIPE:$THEMID pipe=$THEM:$PIPEINO n=0 state=none err=0"), -EBADFD},
        {"ipcbarrier2 pid=$PID role=parent " FDS " n=0 state=none err=0", -EBADFD},
        {R("me=$PIPE:$MEID them=$THEM:$THEMID pipe=$ME:$PIPEINO n=0 state=none err=0"), -EBADFD},
        {R("me=$SEMAPHORE:0 them=$THEM:$THEMID pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EBADFD},
        /* one eventfd under two numbers, with its id and without */
        {R("me=$ME:$MEID them=$DUPME:$MEID pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EBADFD},
        {R("me=$ME:0 them=$DUPME:0 pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EBADFD},
        /* not the eventfd the record names */
        {R("me=$OTHER:$MEID them=$THEM:$THEMID pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EBADFD},
        {R("me=$ME:$OTHERID them=$THEM:$THEMID pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EBADFD},
        /* not the pipe the record names, or a named FIFO */
        {R("me=$ME:$MEID them=$THEM:$THEMID pipe=$OTHERPIPE:$PIPEINO n=0 state=none err=0"),
         -EBADFD},
        {R("me=$ME:$MEID them=$THEM:$THEMID pipe=$PIPE:$OTHERPIPEINO n=0 state=none err=0"),
         -EBADFD},
        {R("me=$ME:$MEID them=$THEM:$THEMID pipe=$FIFO:$FIFOINO n=0 state=none err=0"), -EBADFD},
        /* an id the kernel does not show for the fd (it shows one) */
        {R("me=$ME:0 them=$THEM:$THEMID pipe=$PIPE:$PIPEINO n=0 state=none err=0"), -EBADFD},
        /* not opened for I/O: an O_PATH fd of the very pipe */
        {R("me=$ME:$MEID them=$THEM:$THEMID pipe=$OPATH:$PIPEINO n=0 state=none err=0"), -EBADFD},
        /* what is accepted: the counter's limits, any state */
        {R(FDS " n=4398046511103 state=none err=0"), 0},
        {R(FDS " n=-4398046511103 state=none err=0"), 0},
        {R(FDS " n=0 state=we err=4095"), 0},
    };
#undef FDS
#undef R
    /* A record that is refused changes nothing; one that is accepted sets
     * close-on-exec, which is taken back for the next. */
    int fds[] = {b.me, b.them, b.pipe[1]};
    char *info_path = g_strdup_printf("/proc/self/fdinfo/%d", x.semaphore), *info = NULL;
    g_assert_true(g_file_get_contents(info_path, &info, NULL, NULL));
    /* Linux shows it from 6.5 on; before, a semaphore cannot be told */
    bool semaphores_shown = strstr(info, "eventfd-semaphore:") != NULL;
    g_free(info);
    g_free(info_path);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        if (!semaphores_shown && strstr(cases[i].record, "$SEMAPHORE")) continue;
        char *record = substitute(cases[i].record, &x);
        Barrier out = {-7, -7, 7, {-7, -7}, 7, NULL};
        g_test_message("record: \"%s\"", record);
        g_assert_cmpint(barrier_deserialize(&out, record, 0), ==, cases[i].error);
        if (cases[i].error < 0) {
            g_assert_cmpint(out.me, ==, -7);
            g_assert_true(out.barriers == 7);
            g_assert_false(cloexec(b.me) || cloexec(b.them) || cloexec(b.pipe[1]));
        } else {
            g_assert_cmpint(out.me, ==, b.me);
            for (size_t k = 0; k < G_N_ELEMENTS(fds); k++) inheritable(fds[k]);
        }
        g_free(record);
    }
    Barrier out = BARRIER_NULL;
    g_assert_cmpint(barrier_deserialize(&out, long_record, 0), ==, -E2BIG);
    long_record[BARRIER_RECORD_MAX - 1] = '\0';
    g_assert_cmpint(barrier_deserialize(&out, long_record, 0), ==, -EINVAL);
    g_assert_cmpint(barrier_deserialize(&out, NULL, 0), ==, -ENOENT);
    g_assert_cmpint(barrier_deserialize(&out, good, -1), ==, -EINVAL);
    /* meant for the parent: refused for us, accepted when asked for it */
    g_assert_cmpint(barrier_deserialize(&out, good, getppid()), ==, -ESRCH);
    g_assert_cmpint(barrier_deserialize(&out, good, getpid()), ==, 0);

    int extra[] = {x.cloexec, x.dup_me, x.semaphore, x.other, x.fifo, other_pipe[0], other_pipe[1]};
    for (size_t k = 0; k < G_N_ELEMENTS(extra); k++) close(extra[k]);
    g_assert_cmpint(unlink(fifo_path), ==, 0);
    g_assert_cmpint(rmdir(dir), ==, 0);
    g_free(fifo_path);
    g_free(dir);
    barrier_destroy(&b);
}

/* barrier_serialize() writes a whole record or nothing: a buffer one byte
 * too small is left as it was. */
static void test_record_no_partial(void) {
    Barrier b = BARRIER_NULL;
    g_assert_cmpint(barrier_create(&b), ==, 0);
    g_assert_cmpint(barrier_set_role(&b, BARRIER_PARENT), ==, 0);
    char record[BARRIER_RECORD_MAX], small[BARRIER_RECORD_MAX];
    int len = barrier_serialize(&b, record, sizeof record);
    g_assert_cmpint(len, >, 0);
    for (size_t size = 0; size <= (size_t)len; size++) {
        memset(small, 'x', sizeof small);
        g_assert_true(fcntl(b.me, F_SETFD, FD_CLOEXEC) == 0);
        g_assert_cmpint(barrier_serialize(&b, small, size), ==, -ENOBUFS);
        for (size_t k = 0; k < sizeof small; k++) g_assert_cmpint(small[k], ==, 'x');
        g_assert_true(cloexec(b.me)); /* the fds are not touched either */
    }
    g_assert_cmpint(barrier_serialize(&b, small, (size_t)len + 1), ==, len);
    g_assert_cmpstr(small, ==, record);
    barrier_destroy(&b);
}

static void test_record_environment(void) {
    Barrier b = BARRIER_NULL, copy = BARRIER_NULL;
    char small[8];

    g_assert_cmpint(barrier_serialize(&b, small, sizeof small), ==, -EBADF);
    g_assert_cmpint(barrier_create(&b), ==, 0);
    g_assert_cmpint(barrier_serialize(&b, small, sizeof small), ==, -EBADF); /* no role yet */
    g_assert_cmpint(barrier_serialize_env(&b, NULL), ==, -EBADF);            /* no role yet */
    g_assert_cmpint(barrier_set_role(&b, BARRIER_PARENT), ==, 0);

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

static void on_watch_ignore(Barrier *b, BarrierWatchEvent event, void *userdata) {
    (void)b, (void)event, (void)userdata;
}

/* A zero-filled Barrier (one inside a struct from calloc()) holds nothing:
 * its "fds" are 0, and nothing may close stdin or use it. */
static void test_zero_filled_is_empty(void) {
    struct Owner {
        int other;
        Barrier b;
    } *owner = g_new0(struct Owner, 1);
    Barrier *b = &owner->b;
    FdSnapshot before, after;
    fd_snapshot(&before);
    g_assert_true(fd_is_open(STDIN_FILENO));

    int fds[3];
    struct pollfd pfd[2];
    char record[BARRIER_RECORD_MAX];
    g_assert_cmpint(barrier_set_role(b, BARRIER_CHILD), ==, -EBADF);
    g_assert_cmpint(barrier_get_fds(b, fds), ==, -EBADF);
    g_assert_cmpint(barrier_get_pollfds(b, pfd), ==, -EBADF);
    g_assert_false(barrier_place(b));
    g_assert_false(barrier_abort(b));
    g_assert_false(barrier_abort_errno(b, EIO));
    g_assert_false(barrier_wait_next(b));
    g_assert_false(barrier_sync_next(b));
    g_assert_false(barrier_sync(b));
    g_assert_false(barrier_wait_abortion(b));
    g_assert_false(barrier_place_and_sync(b));
    g_assert_cmpint(barrier_sync_timeout(b, 0), ==, -EBADF);
    g_assert_cmpint(barrier_wait_kind_peek(b, BARRIER_WAIT_SYNC), ==, -EBADF);
    g_assert_cmpint(barrier_serialize(b, record, sizeof record), ==, -EBADF);
    g_assert_false(barrier_is_aborted(b));
    g_assert_cmpint(barrier_get_abort_errno(b), ==, 0);
    g_assert_null(barrier_destroy(b));
    g_assert_null(barrier_destroy(b));
    g_assert_true(fd_is_open(STDIN_FILENO));
    g_assert_cmpint(b->me, ==, -1); /* now BARRIER_NULL */

    /* and it can be created in place */
    memset(b, 0, sizeof *b);
    g_assert_cmpint(barrier_create(b), ==, 0);
    g_assert_cmpint(barrier_set_role(b, BARRIER_PARENT), ==, 0);
    barrier_destroy(b);
    g_assert_null(barrier_destroy(NULL));
    g_free(owner);
    fd_snapshot(&after);
    g_assert_cmpint(fd_snapshot_diff(&before, &after), ==, -1);
}

/* barrier_get_fds(): what a side holds once its role is set. */
static void test_get_fds(void) {
    Barrier b = BARRIER_NULL;
    int fds[3] = {-7, -7, -7};
    g_assert_cmpint(barrier_get_fds(&b, fds), ==, -EBADF);
    g_assert_cmpint(barrier_create(&b), ==, 0);
    g_assert_cmpint(barrier_get_fds(&b, fds), ==, -EBADF); /* no role yet */
    g_assert_cmpint(fds[0], ==, -7);
    g_assert_cmpint(barrier_set_role(&b, BARRIER_CHILD), ==, 0);
    g_assert_cmpint(barrier_get_fds(&b, fds), ==, 3);
    g_assert_cmpint(fds[0], ==, b.me);
    g_assert_cmpint(fds[1], ==, b.them);
    g_assert_cmpint(fds[2], ==, b.pipe[1]);
    /* an I/O error closes the pipe end: a value no barrier writes */
    uint64_t garbage = UINT64_C(1) << 43;
    g_assert_cmpint(write(b.them, &garbage, sizeof garbage), ==, 8);
    g_assert_cmpint(barrier_wait_next_timeout(&b, 0), ==, -EPROTO);
    g_assert_true(barrier_we_aborted(&b));
    g_assert_cmpint(barrier_get_fds(&b, fds), ==, 2);
    g_assert_cmpint(fds[2], ==, -1);
    barrier_destroy(&b);
}

/* barrier_move_fds(): every fd at the floor or above, the old numbers
 * closed, the barrier as usable as before. */
static void test_move_fds(void) {
    Barrier b = BARRIER_NULL;
    g_assert_cmpint(barrier_move_fds(&b, 100), ==, -EBADF);
    g_assert_cmpint(barrier_create(&b), ==, 0);
    int peer_end = fcntl(b.pipe[0], F_DUPFD_CLOEXEC, 3);
    g_assert_cmpint(barrier_set_role(&b, BARRIER_CHILD), ==, 0);
    int before[3], after[3];
    g_assert_cmpint(barrier_get_fds(&b, before), ==, 3);
    g_assert_cmpint(barrier_move_fds(&b, -1), ==, -EINVAL);
    g_assert_cmpint(barrier_move_fds(&b, 100), ==, 0);
    g_assert_cmpint(barrier_get_fds(&b, after), ==, 3);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(after[i], >=, 100);
        g_assert_true(fd_is_closed(before[i]));
        g_assert_true(cloexec(after[i]));
    }
    g_assert_cmpint(barrier_move_fds(&b, 100), ==, 0); /* there already: stays */
    int again[3];
    g_assert_cmpint(barrier_get_fds(&b, again), ==, 3);
    g_assert_cmpint(memcmp(after, again, sizeof after), ==, 0);
    /* still the same barrier: what this side writes arrives at the other end */
    g_assert_true(barrier_place(&b));
    uint64_t v;
    g_assert_cmpint(read(b.me, &v, sizeof v), ==, 8);
    g_assert_cmpuint(v, ==, 1);
    /* not while a source watches the numbers */
    BarrierWatch w;
    g_assert_cmpint(barrier_watch(&b, &w, on_watch_ignore, NULL), ==, 0);
    g_assert_cmpint(barrier_move_fds(&b, 200), ==, -EBUSY);
    g_assert_cmpint(barrier_unwatch(&b, &w), ==, 0);
    close(peer_end);
    barrier_destroy(&b);
}

/* place() stops before the counter can run out of range, and a peer that
 * claims more points than place() allows is an I/O error. The counter is
 * brought near its limit through a record, as no test can place 2^42. */
static void test_count_limit(void) {
    Barrier b = BARRIER_NULL, near = BARRIER_NULL;
    g_assert_cmpint(barrier_create(&b), ==, 0);
    /* the peer's end of the pipe, so that nobody is gone */
    int peer_end = fcntl(b.pipe[0], F_DUPFD_CLOEXEC, 3);
    g_assert_cmpint(barrier_set_role(&b, BARRIER_CHILD), ==, 0);
    char record[BARRIER_RECORD_MAX];
    g_assert_cmpint(barrier_serialize(&b, record, sizeof record), >, 0);
    char *n = strstr(record, " n=0 ");
    g_assert_nonnull(n);
    char *edited = g_strdup_printf("%.*s n=%lld %s", (int)(n - record), record,
                                   (long long)BARRIER_COUNT_MAX - 1, n + strlen(" n=0 "));
    g_assert_cmpint(barrier_deserialize(&near, edited, 0), ==, 0);
    g_assert_true(barrier_place(&near));
    g_assert_false(barrier_place(&near)); /* at the limit: refused, nothing changes */
    g_assert_false(barrier_is_aborted(&near));
    g_assert_true(near.barriers == BARRIER_COUNT_MAX);
    uint64_t points;
    g_assert_cmpint(read(b.me, &points, sizeof points), ==, 8); /* the one that was placed */
    g_assert_cmpuint(points, ==, 1);
    /* the other side answers all of them: back to 0 */
    uint64_t answer = (uint64_t)BARRIER_COUNT_MAX;
    g_assert_cmpint(write(near.them, &answer, sizeof answer), ==, 8);
    g_assert_cmpint(barrier_sync_timeout(&near, 0), ==, 1);
    g_assert_true(near.barriers == 0);
    /* one more than a barrier ever has queued */
    uint64_t too_many = 2 * (uint64_t)BARRIER_COUNT_MAX + 1;
    g_assert_cmpint(write(near.them, &too_many, sizeof too_many), ==, 8);
    g_assert_cmpint(barrier_wait_next_timeout(&near, 0), ==, -EPROTO);
    g_assert_true(barrier_we_aborted(&near));
    g_free(edited);
    close(peer_end);
    /* near shares b's fds but for the pipe end that the error closed */
    barrier_destroy(&b);
}

/* barrier_wait_kind_peek() decides from memory exactly when the timed wait
 * would not have to read. */
static void test_wait_kind_peek(void) {
    Barrier b = BARRIER_NULL;
    g_assert_cmpint(barrier_create(&b), ==, 0);
    int peer_end = fcntl(b.pipe[0], F_DUPFD_CLOEXEC, 3);
    g_assert_cmpint(barrier_wait_kind_peek(&b, BARRIER_WAIT_NEXT), ==, -EBADF);
    g_assert_cmpint(barrier_set_role(&b, BARRIER_CHILD), ==, 0);
    const int kinds[] = {BARRIER_WAIT_NEXT, BARRIER_WAIT_SYNC_NEXT, BARRIER_WAIT_SYNC,
                         BARRIER_WAIT_ABORTION};
    /* nothing placed: a sync is over, the rest need the fds */
    const int idle[] = {-EAGAIN, 1, 1, -EAGAIN};
    /* one placed: only the fds can tell */
    const int ahead[] = {-EAGAIN, -EAGAIN, -EAGAIN, -EAGAIN};
    /* this side aborted: over, but for the wait for their abortion */
    const int aborted[] = {0, 0, 0, -EAGAIN};
    for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
        BarrierWaitKind kind = (BarrierWaitKind)kinds[i];
        g_assert_cmpint(barrier_wait_kind_peek(&b, kind), ==, idle[i]);
    }
    g_assert_true(barrier_place(&b));
    for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
        BarrierWaitKind kind = (BarrierWaitKind)kinds[i];
        g_assert_cmpint(barrier_wait_kind_peek(&b, kind), ==, ahead[i]);
        /* and the timed wait agrees, having looked at the fds */
        g_assert_cmpint(barrier_wait_kind_timeout(&b, kind, 0), ==, -ETIMEDOUT);
    }
    g_assert_true(barrier_abort(&b));
    for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
        BarrierWaitKind kind = (BarrierWaitKind)kinds[i];
        g_assert_cmpint(barrier_wait_kind_peek(&b, kind), ==, aborted[i]);
    }
    close(peer_end); /* they are gone: now the wait for it is over, and false */
    g_assert_cmpint(barrier_wait_kind_timeout(&b, BARRIER_WAIT_ABORTION, 0), ==, 0);
    g_assert_cmpint(barrier_wait_kind_peek(&b, BARRIER_WAIT_ABORTION), ==, 0);
    g_assert_cmpint(barrier_wait_kind_peek(&b, (BarrierWaitKind)4), ==, -EINVAL);
    barrier_destroy(&b);
}

typedef struct {
    int n;
    BarrierWatchEvent events[8];
    Barrier *where[8];
    bool fds_open[8]; /* whether the barrier's eventfd was still open */
    int report_fd;    /* -1, or a pipe to write the event to */
} Watched;

static void on_watch(Barrier *b, BarrierWatchEvent event, void *userdata) {
    Watched *w = userdata;
    if (w->report_fd >= 0) {
        char c = (char)('0' + event);
        (void)!write(w->report_fd, &c, 1);
    }
    if (w->n >= 8) return;
    w->events[w->n] = event;
    w->where[w->n] = b;
    w->fds_open[w->n] = fd_is_open(b->me);
    w->n++;
}

/* barrier_watch(): one watch per barrier, told of an abortion, a move, a
 * destroy (while the fds are still open, and detached by it) and a fatal
 * error; never called in a forked child, where an inherited watch counts
 * as none. */
static void test_watch(void) {
    Barrier b = BARRIER_NULL, moved = BARRIER_NULL;
    Watched w = {.report_fd = -1}, other = {.report_fd = -1};
    BarrierWatch ww, ow;
    FdSnapshot before, after;
    fd_snapshot(&before);
    g_assert_cmpint(barrier_watch(&b, &ww, on_watch, &w), ==, -EBADF);
    g_assert_cmpint(barrier_create(&b), ==, 0);
    int peer_end = fcntl(b.pipe[0], F_DUPFD_CLOEXEC, 3);
    g_assert_cmpint(barrier_watch(&b, &ww, on_watch, &w), ==, -EBADF); /* no role yet */
    g_assert_cmpint(barrier_set_role(&b, BARRIER_CHILD), ==, 0);
    g_assert_cmpint(barrier_watch(NULL, &ww, on_watch, &w), ==, -EINVAL);
    g_assert_cmpint(barrier_watch(&b, &ww, NULL, &w), ==, -EINVAL);
    g_assert_cmpint(barrier_watch(&b, &ww, on_watch, &w), ==, 0);
    g_assert_cmpint(barrier_watch(&b, &ow, on_watch, &other), ==, -EBUSY); /* one reader */
    g_assert_cmpint(barrier_unwatch(&b, &ow), ==, -ENOENT);

    /* placing never ends a wait by itself: no event */
    g_assert_true(barrier_place(&b));
    g_assert_cmpint(w.n, ==, 0);

    barrier_move(&moved, &b);
    g_assert_cmpint(w.n, ==, 1);
    g_assert_cmpint(w.events[0], ==, BARRIER_WATCH_MOVED);
    g_assert_true(w.where[0] == &moved);
    g_assert_cmpint(barrier_watch(&moved, &ow, on_watch, &other), ==, -EBUSY);

    /* a child forked now has a copy of the watch, which must stay silent */
    int report[2];
    g_assert_cmpint(pipe2(report, O_CLOEXEC), ==, 0);
    w.report_fd = report[1];
    pid_t pid = fork_test_child();
    if (pid == 0) {
        /* for the child the watch is none: it may attach its own */
        BarrierWatch cw;
        CHILD_ASSERT(barrier_watch(&moved, &cw, on_watch, &w) == 0);
        CHILD_ASSERT(barrier_unwatch(&moved, &cw) == 0);
        moved.watch = &ww;
        (void)barrier_abort(&moved);
        (void)barrier_destroy(&moved);
        _exit(0);
    }
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    w.report_fd = -1;
    close(report[1]);
    char c;
    g_assert_cmpint(read(report[0], &c, 1), ==, 0); /* nothing was written */
    close(report[0]);

    g_assert_true(barrier_abort(&moved));
    g_assert_cmpint(w.n, ==, 2);
    g_assert_cmpint(w.events[1], ==, BARRIER_WATCH_CHANGED);
    g_assert_true(barrier_abort(&moved)); /* no-op: no event */
    g_assert_cmpint(w.n, ==, 2);

    g_assert_null(barrier_destroy(&moved));
    g_assert_cmpint(w.n, ==, 3);
    g_assert_cmpint(w.events[2], ==, BARRIER_WATCH_CLOSING);
    g_assert_true(w.fds_open[2]);
    g_assert_null(moved.watch);
    g_assert_cmpint(barrier_unwatch(&moved, &ww), ==, -ENOENT);
    close(peer_end);

    /* a fatal error is told before the pipe end closes; the watch stays
     * until the barrier is destroyed */
    Watched f = {.report_fd = -1};
    BarrierWatch fw;
    g_assert_cmpint(barrier_create(&b), ==, 0);
    g_assert_cmpint(barrier_set_role(&b, BARRIER_PARENT), ==, 0);
    g_assert_cmpint(barrier_watch(&b, &fw, on_watch, &f), ==, 0);
    /* as if the child wrote a value no barrier writes */
    uint64_t garbage = UINT64_C(1) << 43;
    g_assert_cmpint(write(b.them, &garbage, sizeof garbage), ==, 8);
    g_assert_cmpint(barrier_wait_next_timeout(&b, 0), ==, -EPROTO);
    g_assert_cmpint(f.n, ==, 1);
    g_assert_cmpint(f.events[0], ==, BARRIER_WATCH_FAILED);
    g_assert_true(b.watch == &fw);
    g_assert_cmpint(barrier_watch(&b, &ow, on_watch, &other), ==, -EBUSY);
    barrier_destroy(&b);
    g_assert_cmpint(f.n, ==, 2);
    g_assert_cmpint(f.events[1], ==, BARRIER_WATCH_CLOSING);

    /* unwatch by its owner */
    g_assert_cmpint(barrier_create(&b), ==, 0);
    g_assert_cmpint(barrier_set_role(&b, BARRIER_PARENT), ==, 0);
    g_assert_cmpint(barrier_watch(&b, &ow, on_watch, &other), ==, 0);
    g_assert_cmpint(barrier_unwatch(&b, &ow), ==, 0);
    g_assert_cmpint(barrier_watch(&b, &ww, on_watch, &w), ==, 0);
    g_assert_cmpint(barrier_unwatch(&b, &ww), ==, 0);
    barrier_destroy(&b);
    g_assert_cmpint(other.n, ==, 0);
    fd_snapshot(&after);
    g_assert_cmpint(fd_snapshot_diff(&before, &after), ==, -1);
}

int main(int argc, char **argv) {
    harness_handle_exec(argc, argv, &c_backend);
    g_test_init(&argc, &argv, NULL);
    harness_add_tests(&c_backend, "/barrier-c");
    g_test_add_func("/barrier-c/cleanup-attribute", test_cleanup_attribute);
    g_test_add_func("/barrier-c/record/round-trip", test_record_round_trip);
    g_test_add_func("/barrier-c/record/refusals", test_record_refusals);
    g_test_add_func("/barrier-c/record/no-partial-record", test_record_no_partial);
    g_test_add_func("/barrier-c/record/environment", test_record_environment);
    g_test_add_func("/barrier-c/pollfds", test_pollfds);
    g_test_add_func("/barrier-c/zero-filled-is-empty", test_zero_filled_is_empty);
    g_test_add_func("/barrier-c/get-fds", test_get_fds);
    g_test_add_func("/barrier-c/count-limit", test_count_limit);
    g_test_add_func("/barrier-c/move-fds", test_move_fds);
    g_test_add_func("/barrier-c/wait-kind-peek", test_wait_kind_peek);
    g_test_add_func("/barrier-c/watch", test_watch);
    return g_test_run();
}
