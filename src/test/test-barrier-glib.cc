/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The GLib adapter: a GSource per barrier, driven by a real GMainLoop,
 * against real child processes. Every order is made by a handshake (the
 * barrier itself, or a pipe); timeouts are only watchdogs. */

#include <cerrno>
#include <cstdint>
#include <vector>

#include <glib.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ipcbarrier/barrier-glib.h>

#include "barrier-peer.h"
#include "test-util.h"

namespace {

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

/* The adapter's functions as C callers see them (barrier-peer.h). */
const auto source_new_from_c = as_called_from_c<GSource *(*)(Barrier *, int)>(barrier_source_new);
const auto add_watch_from_c =
    as_called_from_c<guint (*)(Barrier *, int, BarrierSourceFunc, gpointer)>(barrier_add_watch);

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

struct Crowd {
    GMainLoop *loop = nullptr;
    int n_done = 0;
    int n_peers = 0;
};

struct Peer : CrowdPeer {
    Crowd *crowd = nullptr;
    GSource *source = nullptr;
};

gboolean on_peer(Barrier *b, int result, gpointer data) {
    auto *p = static_cast<Peer *>(data);
    const bool go_on = crowd_peer_answer(p, b, result);
    /* done is new: the answer asserts that it was not set before */
    if (p->done && ++p->crowd->n_done == p->crowd->n_peers) g_main_loop_quit(p->crowd->loop);
    return go_on ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* One loop, 200 barriers, 200 children at once, each child playing one of
 * the patterns; one of them is killed mid-way. Every source delivers
 * exactly the results of its pattern; the victim's ends with 0 (the
 * implicit abortion), and nobody else notices. */
void test_many_children() {
    constexpr int N = 200;
    constexpr int VICTIM = 100;
    static_assert(VICTIM % N_PATTERNS == NEXT_THEN_ABORT);

    struct rlimit old_limit;
    if (!crowd_fd_limit_raise(N, &old_limit)) return;
    Loop loop;
    int fds_before = count_open_fds();
    Crowd crowd;
    crowd.loop = loop.loop();
    crowd.n_peers = N;
    std::vector<Peer> peers(N);
    for (int i = 0; i < N; i++) {
        Peer &p = peers[i];
        p.crowd = &crowd;
        crowd_peer_start(&p, i, VICTIM);
        p.source = barrier_source_new(&p.b, pattern_kind[p.pattern]);
        g_assert_nonnull(p.source);
        g_source_set_callback(p.source, G_SOURCE_FUNC(on_peer), &p, nullptr);
        g_source_attach(p.source, loop.ctx());
    }

    loop.run();
    g_assert_cmpint(crowd.n_done, ==, N);
    loop.drain();

    for (int i = 0; i < N; i++) crowd_peer_check(&peers[i], i);

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
    Barrier b = BARRIER_NULL;
    int report;
    pid_t pid = fork_peer_with_pipe(
        &b,
        [](Barrier *cb, int report_fd) {
            CHILD_ASSERT(barrier_wait_abortion(cb));
            CHILD_ASSERT(write(report_fd, "A", 1) == 1);
        },
        PeerPipe::CHILD_WRITES, &report);

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
    assert_no_new_fds(&before); /* the barrier's fds and the duplicates are closed */

    assert_peer_reported(report, 'A');
    g_assert_false(g_source_is_destroyed(source));

    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);
    drop(source);
    close(report);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* barrier_wait_kind_timeout() calls the wait each kind names: told apart
 * by what each returns in the same state. The child acts only on the
 * parent's word through a pipe, so the parent alone decides the state. */
void test_wait_kind() {
    Barrier b = BARRIER_NULL;
    int go;
    pid_t pid = fork_peer_with_pipe(
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
        PeerPipe::CHILD_READS, &go);
    const uint64_t watchdog = static_cast<uint64_t>(watchdog_ms()) * 1000;

    /* not ahead, nothing arrived: only the sync waits are over */
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_NEXT, 0), -ETIMEDOUT);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_ABORTION, 0), -ETIMEDOUT);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_SYNC_NEXT, 0), 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_SYNC, 0), 1);

    /* two ahead, one answered: SYNC_NEXT is over, SYNC is not */
    g_assert_true(barrier_place(&b));
    g_assert_true(barrier_place(&b));
    g_assert_cmpint(write(go, "g", 1), ==, 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_SYNC_NEXT, watchdog), 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_SYNC, 0), -ETIMEDOUT);

    /* a new point ends NEXT; only the abortion ends ABORTION */
    g_assert_cmpint(write(go, "g", 1), ==, 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_NEXT, watchdog), 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_ABORTION, 0), -ETIMEDOUT);
    g_assert_cmpint(write(go, "g", 1), ==, 1);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_ABORTION, watchdog), 1);
    for (BarrierWaitKind kind : {BARRIER_WAIT_NEXT, BARRIER_WAIT_SYNC_NEXT, BARRIER_WAIT_SYNC})
        ASSERT_RET(barrier_wait_kind_timeout(&b, kind, 0), 0);

    ASSERT_RET(wait_kind_from_c(&b, 4, 0), -EINVAL);
    ASSERT_RET(wait_kind_from_c(&b, -1, 0), -EINVAL);
    barrier_destroy(&b);
    ASSERT_RET(barrier_wait_kind_timeout(&b, BARRIER_WAIT_NEXT, 0), -EBADF);
    close(go);
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
