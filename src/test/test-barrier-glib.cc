/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The GLib adapter: a GSource per barrier, driven by a real GMainLoop,
 * against real child processes. Every order is made by a handshake (the
 * barrier itself, or a pipe); timeouts are only watchdogs. */

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ipcbarrier/barrier-glib.h>
#include <ipcbarrier/fd-util.hh>

#include "test-util.h"

namespace {

using ChildFn = void (*)(Barrier *b, int arg);

/* Creates b, forks a child that sets its role, runs fn(b, arg) and
 * _exit(0)s, and sets the parent's role. Returns the child's pid. */
pid_t fork_peer(Barrier *b, ChildFn fn, int arg) {
    ASSERT_OK(barrier_create(b));
    pid_t pid = fork_test_child();
    if (pid == 0) {
        if (barrier_set_role(b, BARRIER_CHILD) < 0) child_fail("barrier_set_role failed");
        fn(b, arg);
        _exit(0);
    }
    ASSERT_OK(barrier_set_role(b, BARRIER_PARENT));
    return pid;
}

/* A main loop on its own context (or the default one), with a watchdog
 * that turns a hang into a failure. */
class Loop {
  public:
    explicit Loop(bool default_context = false)
        : ctx_(default_context ? g_main_context_ref(g_main_context_default())
                               : g_main_context_new()),
          loop_(g_main_loop_new(ctx_, FALSE)),
          watchdog_(g_timeout_source_new(static_cast<guint>(watchdog_ms()))) {
        g_source_set_callback(
            watchdog_,
            [](gpointer) -> gboolean {
                g_test_message("watchdog: the loop waited for more than %d ms", watchdog_ms());
                g_assert_not_reached();
            },
            nullptr, nullptr);
        g_source_attach(watchdog_, ctx_);
    }
    ~Loop() {
        g_source_destroy(watchdog_);
        g_source_unref(watchdog_);
        g_main_loop_unref(loop_);
        g_main_context_unref(ctx_);
    }
    Loop(const Loop &) = delete;
    Loop &operator=(const Loop &) = delete;

    GMainContext *ctx() const { return ctx_; }
    GMainLoop *loop() const { return loop_; }
    void run() const { g_main_loop_run(loop_); }

    /* Iterates without blocking until three iterations in a row dispatch
     * nothing: whatever was ready has been dispatched, and a source that
     * spun would keep it from ending. */
    void drain() const {
        for (int idle = 0; idle < 3;) idle = g_main_context_iteration(ctx_, FALSE) ? 0 : idle + 1;
    }

  private:
    GMainContext *ctx_;
    GMainLoop *loop_;
    GSource *watchdog_;
};

/* What a source delivered, and how its callback answers. */
struct Calls {
    GMainLoop *loop = nullptr; /* quit when n reaches quit_at */
    int quit_at = 1;
    gboolean keep = G_SOURCE_REMOVE;
    bool place_on_one = false; /* answer each 1 with a sync point */
    int n = 0;
    int results[8] = {};
};

gboolean record(Barrier *b, int result, gpointer data) {
    auto *c = static_cast<Calls *>(data);
    g_assert_cmpint(c->n, <, 8);
    c->results[c->n++] = result;
    if (result == 1 && c->place_on_one) g_assert_true(barrier_place(b));
    if (c->loop && c->n == c->quit_at) g_main_loop_quit(c->loop);
    return c->keep;
}

GSource *attach(Loop &loop, Barrier *b, BarrierWaitKind kind, Calls *calls) {
    GSource *source = barrier_source_new(b, kind);
    g_assert_nonnull(source);
    g_source_set_callback(source, G_SOURCE_FUNC(record), calls, nullptr);
    g_source_attach(source, loop.ctx());
    return source;
}

void drop(GSource *source) {
    g_source_destroy(source);
    g_source_unref(source);
}

/* The functions as C callers see them, who may pass any int as a kind:
 * in C++ a value outside the enumerators cannot even be formed. */
template <typename C, typename F>
C as_called_from_c(F *fn) {
    return reinterpret_cast<C>(reinterpret_cast<void (*)()>(fn));
}
const auto wait_kind_from_c =
    as_called_from_c<int (*)(Barrier *, int, uint64_t)>(barrier_wait_kind_timeout);
const auto source_new_from_c = as_called_from_c<GSource *(*)(Barrier *, int)>(barrier_source_new);
const auto add_watch_from_c =
    as_called_from_c<guint (*)(Barrier *, int, BarrierSourceFunc, gpointer)>(barrier_add_watch);

void assert_same_fds(const FdSnapshot *before) {
    FdSnapshot now;
    fd_snapshot(&now);
    g_assert_cmpint(fd_snapshot_diff(before, &now), ==, -1);
}

/* ---- the cases ---- */

/* The child places one sync point, but only after the parent's go: the
 * callback comes with 1 then, and not before. Uses barrier_add_watch() on
 * the default context. */
void test_sync_point() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b,
        [](Barrier *cb, int) {
            CHILD_ASSERT(barrier_wait_next(cb)); /* the go */
            CHILD_ASSERT(barrier_place(cb));
            CHILD_ASSERT(barrier_wait_abortion(cb)); /* until the parent lets go */
        },
        0);

    Loop loop(true);
    Calls calls;
    calls.loop = loop.loop();
    guint id = barrier_add_watch(&b, BARRIER_WAIT_NEXT, record, &calls);
    g_assert_cmpuint(id, >, 0);

    loop.drain();
    g_assert_cmpint(calls.n, ==, 0); /* nothing was placed yet */
    g_assert_true(barrier_place(&b));
    loop.run();
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, 1);
    /* G_SOURCE_REMOVE destroyed the source */
    g_assert_null(g_main_context_find_source_by_id(loop.ctx(), id));

    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* BARRIER_WAIT_NEXT, continuing: each sync point of the child is delivered
 * on its own (the child places the next only after the parent's answer),
 * and the child's abortion ends it with 0. */
void test_wait_next_continues() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b,
        [](Barrier *cb, int) {
            for (int i = 0; i < 3; i++) CHILD_ASSERT(barrier_place_and_sync(cb));
            CHILD_ASSERT(barrier_abort(cb));
        },
        0);

    Loop loop;
    Calls calls;
    calls.loop = loop.loop();
    calls.quit_at = 4;
    calls.keep = G_SOURCE_CONTINUE;
    calls.place_on_one = true;
    GSource *source = attach(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.run();
    const int expected[] = {1, 1, 1, 0};
    for (int i = 0; i < 4; i++) g_assert_cmpint(calls.results[i], ==, expected[i]);

    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 4);
    drop(source);
    barrier_destroy(&b);
}

/* A wait that is already over when the source is attached is delivered in
 * the first iteration, which does not block: the child, blocked in
 * barrier_wait_abortion(), does nothing that an fd could report. */
void test_satisfied_at_attach() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b, [](Barrier *cb, int) { CHILD_ASSERT(barrier_wait_abortion(cb)); }, 0);

    Loop loop;
    for (BarrierWaitKind kind : {BARRIER_WAIT_SYNC, BARRIER_WAIT_SYNC_NEXT}) {
        Calls calls;
        GSource *source = attach(loop, &b, kind, &calls);
        g_assert_true(g_main_context_iteration(loop.ctx(), FALSE));
        g_assert_cmpint(calls.n, ==, 1);
        g_assert_cmpint(calls.results[0], ==, 1);
        g_assert_true(g_source_is_destroyed(source));
        g_source_unref(source);
    }

    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* An explicit abortion is delivered as 0, once: although the callback asks
 * to go on and the child's exit leaves the pipe hung up for ever, nothing
 * more comes, and the duplicates are closed while the source is still
 * attached. */
void test_abortion() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b,
        [](Barrier *cb, int) {
            CHILD_ASSERT(barrier_wait_next(cb)); /* the go */
            CHILD_ASSERT(barrier_abort(cb));
        },
        0);

    Loop loop;
    FdSnapshot before;
    fd_snapshot(&before);
    Calls calls;
    calls.loop = loop.loop();
    calls.keep = G_SOURCE_CONTINUE;
    GSource *source = attach(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    g_assert_true(barrier_place(&b));
    loop.run();
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, 0);
    g_assert_true(barrier_they_aborted(&b));
    assert_same_fds(&before);

    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_false(g_source_is_destroyed(source));
    drop(source);
    barrier_destroy(&b);
}

/* The pattern each child of the crowd plays, and what its source waits
 * for. The parent answers every 1 with a sync point (but for the victim,
 * which it kills instead) and asks to go on. */
enum Pattern {
    /* three place_and_sync, then an explicit abortion: 1, 1, 1, 0 */
    NEXT_THEN_ABORT,
    /* three place_and_sync, then exit: 1, 1, 1, 0 */
    SYNC_THEN_EXIT,
    /* wait for the parent's point, place one, wait for the answer,
     * abort: 1, 0 */
    SYNC_NEXT_THEN_ABORT,
    /* two places and an abortion; the source stops at the 1 */
    ABORTION,
    N_PATTERNS,
};

constexpr BarrierWaitKind pattern_kind[N_PATTERNS] = {
    BARRIER_WAIT_NEXT,
    BARRIER_WAIT_SYNC,
    BARRIER_WAIT_SYNC_NEXT,
    BARRIER_WAIT_ABORTION,
};

void crowd_child(Barrier *b, int pattern) {
    /* Only our own barrier: the parent's ends of the others stay theirs. */
    int keep[3] = {b->me, b->them, b->pipe[1]};
    for (int i = 1; i < 3; i++)
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    if (ipcbarrier::close_all_fds_sorted(keep) < 0) child_fail("close_all_fds_sorted failed");

    switch (pattern) {
        case NEXT_THEN_ABORT:
            for (int i = 0; i < 3; i++) CHILD_ASSERT(barrier_place_and_sync(b));
            CHILD_ASSERT(barrier_abort(b));
            break;
        case SYNC_THEN_EXIT:
            for (int i = 0; i < 3; i++) CHILD_ASSERT(barrier_place_and_sync(b));
            break;
        case SYNC_NEXT_THEN_ABORT:
            /* Not place_and_sync(): its sync could read the answer too,
             * and the wait for it would never end. */
            CHILD_ASSERT(barrier_wait_next(b));
            CHILD_ASSERT(barrier_place(b));
            CHILD_ASSERT(barrier_wait_next(b));
            CHILD_ASSERT(barrier_abort(b));
            break;
        case ABORTION:
            CHILD_ASSERT(barrier_place(b));
            CHILD_ASSERT(barrier_place(b));
            CHILD_ASSERT(barrier_abort(b));
            break;
        default:
            child_fail("unknown pattern");
    }
}

struct Crowd;

struct Peer {
    Crowd *crowd = nullptr;
    Barrier b = BARRIER_NULL;
    pid_t pid = 0;
    int pattern = 0;
    bool victim = false;
    bool done = false;
    int n = 0;
    int results[8] = {};
    GSource *source = nullptr;
};

struct Crowd {
    GMainLoop *loop = nullptr;
    int n_done = 0;
    int n_peers = 0;
};

void peer_done(Peer *p) {
    g_assert_false(p->done);
    p->done = true;
    if (++p->crowd->n_done == p->crowd->n_peers) g_main_loop_quit(p->crowd->loop);
}

gboolean on_peer(Barrier *b, int result, gpointer data) {
    auto *p = static_cast<Peer *>(data);
    g_assert_false(p->done);
    g_assert_cmpint(p->n, <, 8);
    p->results[p->n++] = result;
    if (result <= 0) {
        peer_done(p);
        return G_SOURCE_CONTINUE; /* must change nothing */
    }
    if (p->victim) {
        /* mid-way: the child waits in its first place_and_sync */
        g_assert_cmpint(kill(p->pid, SIGKILL), ==, 0);
        return G_SOURCE_CONTINUE;
    }
    if (p->pattern == ABORTION) {
        peer_done(p);
        return G_SOURCE_REMOVE;
    }
    g_assert_true(barrier_place(b));
    return G_SOURCE_CONTINUE;
}

int count_open_fds() {
    DIR *d = opendir("/proc/self/fd");
    g_assert_nonnull(d);
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* One loop, 200 barriers, 200 children at once, each child playing one of
 * the patterns; one of them is killed mid-way. Every source delivers
 * exactly the results of its pattern; the victim's ends with 0 (the
 * implicit abortion), and nobody else notices. */
void test_many_children() {
    constexpr int N = 200;
    constexpr int VICTIM = 100;
    static_assert(VICTIM % N_PATTERNS == NEXT_THEN_ABORT);

    /* Each barrier holds 3 fds in the parent, each source 2 duplicates. */
    struct rlimit old_limit;
    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &old_limit), ==, 0);
    const rlim_t needed = 5 * N + 64;
    if (old_limit.rlim_cur < needed) {
        if (old_limit.rlim_max < needed) {
            g_test_skip("RLIMIT_NOFILE is too low for 200 barriers");
            return;
        }
        struct rlimit raised = {old_limit.rlim_max, old_limit.rlim_max};
        g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &raised), ==, 0);
    }
    Loop loop;
    int fds_before = count_open_fds();
    Crowd crowd;
    crowd.loop = loop.loop();
    crowd.n_peers = N;
    std::vector<Peer> peers(N);
    for (int i = 0; i < N; i++) {
        Peer &p = peers[i];
        p.crowd = &crowd;
        p.pattern = i % N_PATTERNS;
        p.victim = i == VICTIM;
        p.pid = fork_peer(&p.b, crowd_child, p.pattern);
        /* The waits for the parent's side: SYNC and SYNC_NEXT start
         * ahead by one, which the child's first wait consumes. */
        if (p.pattern == SYNC_THEN_EXIT || p.pattern == SYNC_NEXT_THEN_ABORT)
            g_assert_true(barrier_place(&p.b));
        p.source = barrier_source_new(&p.b, pattern_kind[p.pattern]);
        g_assert_nonnull(p.source);
        g_source_set_callback(p.source, G_SOURCE_FUNC(on_peer), &p, nullptr);
        g_source_attach(p.source, loop.ctx());
    }

    loop.run();
    g_assert_cmpint(crowd.n_done, ==, N);
    loop.drain();

    for (int i = 0; i < N; i++) {
        Peer &p = peers[i];
        static const int four[] = {1, 1, 1, 0}, two[] = {1, 0}, one[] = {1};
        const int *expected;
        int n;
        if (p.victim) {
            expected = two, n = 2;
        } else if (p.pattern == NEXT_THEN_ABORT || p.pattern == SYNC_THEN_EXIT) {
            expected = four, n = 4;
        } else if (p.pattern == SYNC_NEXT_THEN_ABORT) {
            expected = two, n = 2;
        } else {
            expected = one, n = 1;
        }
        if (p.n != n) g_test_message("peer %d (pattern %d): %d results", i, p.pattern, p.n);
        g_assert_cmpint(p.n, ==, n);
        for (int k = 0; k < n; k++) g_assert_cmpint(p.results[k], ==, expected[k]);
        g_assert_cmpint(wait_exit_status(p.pid), ==, p.victim ? 128 + SIGKILL : 0);
    }

    for (Peer &p : peers) {
        drop(p.source);
        barrier_destroy(&p.b);
    }
    g_assert_cmpint(count_open_fds(), ==, fds_before);
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &old_limit), ==, 0);
}

/* Dropping the source first: a sync point that has arrived (the eventfd is
 * readable) is not delivered once the source is gone, the duplicates are
 * closed, and the barrier goes on synchronously. */
void test_drop_source_first() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b,
        [](Barrier *cb, int) {
            CHILD_ASSERT(barrier_wait_next(cb)); /* the go */
            CHILD_ASSERT(barrier_place(cb));
            CHILD_ASSERT(barrier_place_and_sync(cb));
            CHILD_ASSERT(barrier_wait_abortion(cb));
        },
        0);

    Loop loop;
    FdSnapshot before;
    fd_snapshot(&before);
    Calls calls;
    GSource *source = attach(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    g_assert_true(barrier_place(&b));
    struct pollfd pfd[2];
    ASSERT_OK(barrier_get_pollfds(&b, pfd));
    g_assert_true(wait_readable(pfd[0].fd, watchdog_ms())); /* the child's point is there */
    drop(source);
    assert_same_fds(&before);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    g_assert_true(barrier_wait_next(&b));
    g_assert_true(barrier_place_and_sync(&b));
    g_assert_cmpint(calls.n, ==, 0);

    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* Destroying the barrier first: the source calls back once with -EBADF,
 * and has let go of its duplicates by then: the child, blocked in
 * barrier_wait_abortion(), sees the abortion while this process and the
 * source (attached, referenced) are still alive. Destroying the source
 * afterwards is safe. */
void test_destroy_barrier_first() {
    int report[2];
    g_assert_cmpint(pipe2(report, O_CLOEXEC), ==, 0);
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b,
        [](Barrier *cb, int report_fd) {
            CHILD_ASSERT(barrier_wait_abortion(cb));
            CHILD_ASSERT(write(report_fd, "A", 1) == 1);
        },
        report[1]);
    close(report[1]);

    Loop loop;
    FdSnapshot before;
    fd_snapshot(&before);
    Calls calls;
    calls.loop = loop.loop();
    calls.keep = G_SOURCE_CONTINUE;
    GSource *source = attach(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    barrier_destroy(&b);
    loop.run();
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, -EBADF);
    /* the barrier's fds and the duplicates are closed */
    FdSnapshot now;
    fd_snapshot(&now);
    for (int fd = 0; fd < FD_SNAPSHOT_MAX; fd++) {
        uint64_t bit = UINT64_C(1) << (fd % 64);
        if (now.open[fd / 64] & bit) g_assert_true(before.open[fd / 64] & bit);
    }

    g_assert_true(wait_readable(report[0], watchdog_ms()));
    char c;
    g_assert_cmpint(read(report[0], &c, 1), ==, 1);
    g_assert_cmpint(c, ==, 'A');
    g_assert_false(g_source_is_destroyed(source));

    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);
    drop(source);
    close(report[0]);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* barrier_wait_kind_timeout() calls the wait each kind names: told apart
 * by what each returns in the same state. The child acts only on the
 * parent's word through a pipe, so the parent alone decides the state. */
void test_wait_kind() {
    int go[2];
    g_assert_cmpint(pipe2(go, O_CLOEXEC), ==, 0);
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b,
        [](Barrier *cb, int go_fd) {
            char c;
            CHILD_ASSERT(read(go_fd, &c, 1) == 1);
            CHILD_ASSERT(barrier_place(cb));
            CHILD_ASSERT(read(go_fd, &c, 1) == 1);
            CHILD_ASSERT(barrier_place(cb));
            CHILD_ASSERT(read(go_fd, &c, 1) == 1);
            CHILD_ASSERT(barrier_abort(cb));
        },
        go[0]);
    close(go[0]);
    const uint64_t watchdog = static_cast<uint64_t>(watchdog_ms()) * 1000;

    /* not ahead, nothing arrived: only the sync waits are over */
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_NEXT, 0), -ETIMEDOUT);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_ABORTION, 0), -ETIMEDOUT);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_SYNC_NEXT, 0), 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_SYNC, 0), 1);

    /* two ahead, one answered: SYNC_NEXT is over, SYNC is not */
    g_assert_true(barrier_place(&b));
    g_assert_true(barrier_place(&b));
    g_assert_cmpint(write(go[1], "g", 1), ==, 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_SYNC_NEXT, watchdog), 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_SYNC, 0), -ETIMEDOUT);

    /* a new point ends NEXT; only the abortion ends ABORTION */
    g_assert_cmpint(write(go[1], "g", 1), ==, 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_NEXT, watchdog), 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_ABORTION, 0), -ETIMEDOUT);
    g_assert_cmpint(write(go[1], "g", 1), ==, 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_ABORTION, watchdog), 1);
    for (BarrierWaitKind kind : {BARRIER_WAIT_NEXT, BARRIER_WAIT_SYNC_NEXT, BARRIER_WAIT_SYNC})
        ASSERT_RET(barrier_wait_kind_timeout(&b, kind, 0), 0);

    ASSERT_RET(wait_kind_from_c(&b, 4, 0), -EINVAL);
    ASSERT_RET(wait_kind_from_c(&b, -1, 0), -EINVAL);
    barrier_destroy(&b);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_NEXT, 0), -EBADF);
    close(go[1]);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* Misuse is refused with errno set, and opens nothing. */
void test_errors() {
    Barrier b = BARRIER_NULL;
    errno = 0;
    g_assert_null(barrier_source_new(nullptr, BARRIER_WAIT_NEXT));
    g_assert_cmpint(errno, ==, EINVAL);
    errno = 0;
    g_assert_null(barrier_source_new(&b, BARRIER_WAIT_NEXT));
    g_assert_cmpint(errno, ==, EBADF);

    ASSERT_OK(barrier_create(&b));
    errno = 0;
    g_assert_null(barrier_source_new(&b, BARRIER_WAIT_NEXT)); /* no role yet */
    g_assert_cmpint(errno, ==, EBADF);
    ASSERT_OK(barrier_set_role(&b, BARRIER_PARENT));
    errno = 0;
    g_assert_null(source_new_from_c(&b, 4));
    g_assert_cmpint(errno, ==, EINVAL);
    errno = 0;
    g_assert_cmpuint(barrier_add_watch(&b, BARRIER_WAIT_NEXT, nullptr, nullptr), ==, 0);
    g_assert_cmpint(errno, ==, EINVAL);
    errno = 0;
    g_assert_cmpuint(add_watch_from_c(&b, -1, record, nullptr), ==, 0);
    g_assert_cmpint(errno, ==, EINVAL);

    /* A source never attached, and one without a callback: the wait is
     * over at once (SYNC, nothing placed), and the source goes away. */
    g_source_unref(barrier_source_new(&b, BARRIER_WAIT_SYNC));
    Loop loop;
    GSource *source = barrier_source_new(&b, BARRIER_WAIT_SYNC);
    g_source_attach(source, loop.ctx());
    g_assert_true(g_main_context_iteration(loop.ctx(), FALSE));
    g_assert_true(g_source_is_destroyed(source));
    g_source_unref(source);
    barrier_destroy(&b);
}

}  // namespace

int main(int argc, char **argv) {
    g_test_init(&argc, &argv, nullptr);
    /* The default context opens its wakeup fd on first use: before the fd
     * checks start. */
    (void)g_main_context_default();
    test_add_fd_checked("/barrier-glib/sync-point", test_sync_point);
    test_add_fd_checked("/barrier-glib/wait-next-continues", test_wait_next_continues);
    test_add_fd_checked("/barrier-glib/satisfied-at-attach", test_satisfied_at_attach);
    test_add_fd_checked("/barrier-glib/abortion", test_abortion);
    test_add_fd_checked("/barrier-glib/many-children", test_many_children);
    test_add_fd_checked("/barrier-glib/drop-source-first", test_drop_source_first);
    test_add_fd_checked("/barrier-glib/destroy-barrier-first", test_destroy_barrier_first);
    test_add_fd_checked("/barrier-glib/wait-kind", test_wait_kind);
    test_add_fd_checked("/barrier-glib/errors", test_errors);
    return g_test_run();
}
