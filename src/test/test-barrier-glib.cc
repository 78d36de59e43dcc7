/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The GLib adapter: a GSource per barrier, driven by a real GMainLoop,
 * against real child processes. Every order is made by a handshake (the
 * barrier itself, or a pipe); timeouts are only watchdogs. */

#include <cerrno>
#include <cstdint>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ipcbarrier/barrier-glib.h>
#include <ipcbarrier/barrier.hh>
#ifdef TEST_WITH_SD_EVENT
#include <ipcbarrier/barrier-sd-event.h>
#endif

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
    Barrier *barriers[8] = {}; /* the b of each call */
};

gboolean record(Barrier *b, int result, gpointer data) {
    auto *c = static_cast<Calls *>(data);
    g_assert_cmpint(c->n, <, 8);
    c->barriers[c->n] = b;
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

/* A reader of the barrier that another event loop would attach. */
void other_reader(Barrier *, BarrierWatchEvent, void *) {}
BarrierWatch other_watch;

/* A child that only waits until the parent closes its end of the barrier's
 * pipe (its barrier_destroy(), exit, or fatal error), without reading. */
void await_parent_gone(Barrier *b) {
    int fds[3];
    CHILD_ASSERT(barrier_get_fds(b, fds) == 3);
    /* Our end is the write end: it reports an error once the read end is
     * closed. */
    struct pollfd pfd = {.fd = fds[2], .events = 0, .revents = 0};
    CHILD_ASSERT(poll(&pfd, 1, watchdog_ms()) == 1);
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
 * more comes. The source opens no fd, and has let go of the barrier at its
 * last result, while it is still attached: another source is accepted. */
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
    Calls again;
    GSource *next = attach(loop, &b, BARRIER_WAIT_NEXT, &again);
    g_assert_true(g_main_context_iteration(loop.ctx(), FALSE));
    g_assert_cmpint(again.n, ==, 1);
    g_assert_cmpint(again.results[0], ==, 0);
    g_source_unref(next);
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
 * readable) is not delivered once the source is gone, and the barrier goes
 * on synchronously. */
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

/* Destroying the barrier first: the source calls back once with -EBADF and
 * no barrier; the child, blocked in barrier_wait_abortion(), sees the
 * abortion while this process and the source (attached, referenced) are
 * still alive. Destroying the source afterwards is safe. */
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
    g_assert_null(calls.barriers[0]);
    assert_no_new_fds(&before); /* the barrier's fds are closed */

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

    ASSERT_RET(c_wait_kind_timeout(&b, 4, 0), -EINVAL);
    ASSERT_RET(c_wait_kind_timeout(&b, -1, 0), -EINVAL);
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
    g_assert_null(c_source_new(&b, 4));
    g_assert_cmpint(errno, ==, EINVAL);
    errno = 0;
    g_assert_cmpuint(barrier_add_watch(&b, BARRIER_WAIT_NEXT, nullptr, nullptr), ==, 0);
    g_assert_cmpint(errno, ==, EINVAL);
    errno = 0;
    g_assert_cmpuint(c_add_watch(&b, -1, record, nullptr), ==, 0);
    g_assert_cmpint(errno, ==, EINVAL);
    int notified = 0;
    auto count = [](gpointer data) { ++*static_cast<int *>(data); };
    errno = 0;
    g_assert_cmpuint(
        barrier_add_watch_full(G_PRIORITY_HIGH, &b, BARRIER_WAIT_NEXT, nullptr, &notified, count),
        ==, 0);
    g_assert_cmpint(errno, ==, EINVAL);
    errno = 0;
    g_assert_cmpuint(barrier_add_watch_full(G_PRIORITY_HIGH, nullptr, BARRIER_WAIT_NEXT, record,
                                            &notified, count),
                     ==, 0);
    g_assert_cmpint(errno, ==, EINVAL);
    g_assert_cmpint(notified, ==, 0); /* a failure takes nothing over */

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

/* The source watches the barrier's own fds: creating, attaching and running
 * it opens none, so nothing of it keeps the barrier's pipe open, in this
 * process or in a child forked afterwards. */
void test_no_duplicates() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(&b, idle_child, 0);
    Loop loop;
    FdSnapshot before;
    fd_snapshot(&before);
    Calls calls;
    GSource *source = attach(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    assert_same_fds(&before);
    g_assert_cmpint(calls.n, ==, 0);
    drop(source);
    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* Which goes first when a service manager lets a child go without running
 * its loop again: the barrier, or the source. */
enum class Order { barrier_first, source_first };
constexpr Order barrier_first = Order::barrier_first;
constexpr Order source_first = Order::source_first;

/* Quit the loop, destroy the barrier, reap the child: the child, blocked in
 * an untimed barrier_sync(), sees the departure at once, although the loop
 * never runs again and the source still exists (barrier first) or is gone
 * (source first). */
void test_destroy_loop_stopped(const void *data) {
    const Order order = *static_cast<const Order *>(data);
    Barrier b = BARRIER_NULL;
    int report;
    pid_t pid = fork_peer_with_pipe(
        &b,
        [](Barrier *cb, int report_fd) {
            CHILD_ASSERT(barrier_place(cb));
            CHILD_ASSERT(write(report_fd, "P", 1) == 1);
            /* One ahead for ever: only the parent's departure ends it. */
            CHILD_ASSERT(!barrier_sync(cb));
            CHILD_ASSERT(write(report_fd, "S", 1) == 1);
        },
        PeerPipe::CHILD_WRITES, &report);

    Loop loop;
    Calls calls;
    calls.loop = loop.loop();
    calls.keep = G_SOURCE_CONTINUE;
    GSource *source = attach(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.run();
    g_assert_cmpint(calls.results[0], ==, 1);
    assert_peer_reported(report, 'P');

    /* The loop does not run again. */
    if (order == barrier_first) {
        barrier_destroy(&b);
        assert_peer_reported(report, 'S');
        g_assert_cmpint(wait_exit_status(pid), ==, 0);
        drop(source);
    } else {
        drop(source);
        barrier_destroy(&b);
        assert_peer_reported(report, 'S');
        g_assert_cmpint(wait_exit_status(pid), ==, 0);
    }
    g_assert_cmpint(calls.n, ==, 1);
    close(report);
}

/* One Barrier variable for one child after the other, while the first
 * child's source still exists: the first child sees the destroy at once;
 * the second barrier gets a source of its own, which only the second
 * child's sync point wakes; the old source delivers -EBADF without a
 * barrier, once, and never reads the new one. */
void test_recreate() {
    Barrier b = BARRIER_NULL;
    int report;
    pid_t first = fork_peer_with_pipe(
        &b,
        [](Barrier *cb, int report_fd) {
            CHILD_ASSERT(!barrier_wait_next(cb)); /* the parent destroys its barrier */
            CHILD_ASSERT(write(report_fd, "H", 1) == 1);
        },
        PeerPipe::CHILD_WRITES, &report);
    Loop loop;
    Calls old_calls;
    old_calls.keep = G_SOURCE_CONTINUE;
    GSource *old_source = attach(loop, &b, BARRIER_WAIT_NEXT, &old_calls);
    loop.drain();
    g_assert_cmpint(old_calls.n, ==, 0);

    barrier_destroy(&b);
    assert_peer_reported(report, 'H'); /* without the loop */
    g_assert_cmpint(wait_exit_status(first), ==, 0);
    close(report);

    pid_t second = fork_peer(
        &b,
        [](Barrier *cb, int) {
            CHILD_ASSERT(barrier_wait_next(cb)); /* the go */
            CHILD_ASSERT(barrier_place(cb));
            CHILD_ASSERT(barrier_wait_abortion(cb));
        },
        0);
    Calls calls;
    calls.loop = loop.loop();
    GSource *source = attach(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(old_calls.n, ==, 1);
    g_assert_cmpint(old_calls.results[0], ==, -EBADF);
    g_assert_null(old_calls.barriers[0]);
    g_assert_cmpint(calls.n, ==, 0);

    g_assert_true(barrier_place(&b)); /* the go */
    loop.run();                       /* nothing else can wake it */
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, 1);
    g_assert_true(calls.barriers[0] == &b);
    loop.drain();
    g_assert_cmpint(old_calls.n, ==, 1);

    drop(old_source);
    drop(source);
    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(second), ==, 0);
}

#ifdef TEST_WITH_SD_EVENT
int sd_event_reader(BarrierEventSource *, Barrier *, int, void *) {
    return 0;
}
#endif

void assert_refused(Barrier *b) {
    for (BarrierWaitKind kind :
         {BARRIER_WAIT_NEXT, BARRIER_WAIT_SYNC_NEXT, BARRIER_WAIT_SYNC, BARRIER_WAIT_ABORTION}) {
        errno = 0;
        g_assert_null(barrier_source_new(b, kind));
        g_assert_cmpint(errno, ==, EBUSY);
    }
    errno = 0;
    g_assert_cmpuint(barrier_add_watch(b, BARRIER_WAIT_ABORTION, record, nullptr), ==, 0);
    g_assert_cmpint(errno, ==, EBUSY);
}

/* A barrier has one reader: a second source, of either adapter, or the
 * reader of another loop, is refused while the first exists; once it is
 * gone, a new one is accepted. */
void test_one_reader() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(&b, idle_child, 0);

    GSource *first = barrier_source_new(&b, BARRIER_WAIT_NEXT);
    g_assert_nonnull(first);
    assert_refused(&b);
    ASSERT_RET(barrier_watch(&b, &other_watch, other_reader, nullptr), -EBUSY);
#ifdef TEST_WITH_SD_EVENT
    sd_event *e = nullptr;
    ASSERT_OK(sd_event_new(&e));
    BarrierEventSource *es = nullptr;
    ASSERT_RET(barrier_event_add(e, &es, &b, BARRIER_WAIT_ABORTION, sd_event_reader, nullptr),
               -EBUSY);
#endif
    g_source_unref(first); /* never attached: finalized */

    ASSERT_OK(barrier_watch(&b, &other_watch, other_reader, nullptr));
    assert_refused(&b);
    ASSERT_OK(barrier_unwatch(&b, &other_watch));
#ifdef TEST_WITH_SD_EVENT
    ASSERT_OK(barrier_event_add(e, &es, &b, BARRIER_WAIT_NEXT, sd_event_reader, nullptr));
    assert_refused(&b);
    g_assert_null(barrier_event_source_unref(es));
    sd_event_unref(e);
#endif

    Loop loop;
    Calls calls;
    GSource *second = attach(loop, &b, BARRIER_WAIT_ABORTION, &calls);
    assert_refused(&b);
    drop(second);
    GSource *third = attach(loop, &b, BARRIER_WAIT_NEXT, &calls);
    drop(third);
    g_assert_cmpint(calls.n, ==, 0);

    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* A SYNC source whose callback goes on without changing anything is called
 * again, in each iteration, and never blocks the loop. */
void test_sync_continues() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(&b, idle_child, 0);
    Loop loop;
    Calls calls;
    calls.keep = G_SOURCE_CONTINUE;
    GSource *source = attach(loop, &b, BARRIER_WAIT_SYNC, &calls);
    for (int i = 1; i <= 3; i++) {
        g_assert_true(g_main_context_iteration(loop.ctx(), FALSE));
        g_assert_cmpint(calls.n, ==, i);
        g_assert_cmpint(calls.results[i - 1], ==, 1);
    }
    calls.keep = G_SOURCE_REMOVE;
    g_assert_true(g_main_context_iteration(loop.ctx(), FALSE));
    g_assert_true(g_source_is_destroyed(source));
    g_source_unref(source);
    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* This side's own abortion ends the wait without news on the fds (the
 * child does not even look at the barrier): 0 in the next iteration. */
void test_local_abort() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b, [](Barrier *cb, int) { await_parent_gone(cb); }, 0);
    Loop loop;
    Calls calls;
    calls.keep = G_SOURCE_CONTINUE;
    GSource *source = attach(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    g_assert_true(barrier_abort(&b));
    g_assert_true(g_main_context_iteration(loop.ctx(), FALSE));
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, 0);
    g_assert_true(calls.barriers[0] == &b);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);

    drop(source);
    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* The fatal errors: a place() that fails (the child filled the eventfd we
 * write), then either delivered (0) or followed by a destroy before the
 * loop runs (-EBADF and no barrier); and a read of a count no barrier
 * writes (-EPROTO). In each case the child sees our pipe end closed. */
enum class Fatal { in_place, in_place_then_destroy, in_read };
constexpr Fatal fatal_in_place = Fatal::in_place;
constexpr Fatal fatal_in_place_then_destroy = Fatal::in_place_then_destroy;
constexpr Fatal fatal_in_read = Fatal::in_read;

/* The child writes a value into the eventfd the parent writes (fds[1]: as
 * full as an eventfd gets, so the parent's next place() fails) or reads
 * (fds[0]: more sync points than a barrier ever has queued), reports 'F',
 * and waits for the parent's pipe end to close. */
void fatal_child(Barrier *b, int report_fd, bool in_read) {
    int fds[3];
    CHILD_ASSERT(barrier_get_fds(b, fds) == 3);
    const uint64_t value = in_read ? UINT64_C(1) << 50 : UINT64_MAX - 1;
    CHILD_ASSERT(write(fds[in_read ? 0 : 1], &value, sizeof value) == sizeof value);
    CHILD_ASSERT(write(report_fd, "F", 1) == 1);
    await_parent_gone(b);
}

void test_fatal_error(const void *data) {
    const Fatal how = *static_cast<const Fatal *>(data);
    Barrier b = BARRIER_NULL;
    int report;
    ChildFn child = [](Barrier *cb, int fd) { fatal_child(cb, fd, false); };
    if (how == Fatal::in_read) child = [](Barrier *cb, int fd) { fatal_child(cb, fd, true); };
    pid_t pid = fork_peer_with_pipe(&b, child, PeerPipe::CHILD_WRITES, &report);
    Loop loop;
    Calls calls;
    calls.keep = G_SOURCE_CONTINUE;
    GSource *source = attach(loop, &b, BARRIER_WAIT_NEXT, &calls);
    assert_peer_reported(report, 'F');

    if (how != Fatal::in_read) {
        g_assert_false(barrier_place(&b));
        g_assert_true(barrier_we_aborted(&b));
        if (how == Fatal::in_place_then_destroy) barrier_destroy(&b);
    }
    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);
    switch (how) {
        case Fatal::in_place:
            g_assert_cmpint(calls.results[0], ==, 0);
            g_assert_true(calls.barriers[0] == &b);
            break;
        case Fatal::in_place_then_destroy:
            g_assert_cmpint(calls.results[0], ==, -EBADF);
            g_assert_null(calls.barriers[0]);
            break;
        case Fatal::in_read:
            g_assert_cmpint(calls.results[0], ==, -EPROTO);
            g_assert_true(calls.barriers[0] == &b);
            break;
    }
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    if (how != Fatal::in_place_then_destroy) {
        /* The source has let go: a new one sees the abortion at once. */
        g_assert_true(barrier_we_aborted(&b));
        Calls again;
        GSource *next = attach(loop, &b, BARRIER_WAIT_SYNC, &again);
        g_assert_true(g_main_context_iteration(loop.ctx(), FALSE));
        g_assert_cmpint(again.n, ==, 1);
        g_assert_cmpint(again.results[0], ==, 0);
        g_source_unref(next);
    }
    drop(source);
    barrier_destroy(&b);
    close(report);
}

/* The order of delivery of two sources that are ready in one iteration,
 * and the GDestroyNotify of barrier_add_watch_full(). */
struct Ordered {
    GMainLoop *loop = nullptr;
    int n = 0;
    int who[2] = {};
    int notified = 0;
};

struct Tag {
    Ordered *ordered;
    int id;
};

gboolean on_ordered(Barrier *, int result, gpointer data) {
    auto *t = static_cast<Tag *>(data);
    g_assert_cmpint(result, ==, 1);
    g_assert_cmpint(t->ordered->n, <, 2);
    t->ordered->who[t->ordered->n++] = t->id;
    if (t->ordered->n == 2) g_main_loop_quit(t->ordered->loop);
    return G_SOURCE_REMOVE;
}

void on_ordered_destroyed(gpointer data) {
    static_cast<Tag *>(data)->ordered->notified++;
}

void test_priority() {
    Barrier low = BARRIER_NULL, high = BARRIER_NULL;
    pid_t low_pid = fork_peer(&low, active_child, 0);
    pid_t high_pid = fork_peer(&high, active_child, 0);
    /* Both points are there before the loop looks. */
    for (Barrier *b : {&low, &high}) {
        struct pollfd pfd[2];
        ASSERT_OK(barrier_get_pollfds(b, pfd));
        g_assert_true(wait_readable(pfd[0].fd, watchdog_ms()));
    }

    Loop loop(true);
    Ordered ordered;
    ordered.loop = loop.loop();
    Tag low_tag = {&ordered, 1}, high_tag = {&ordered, 2};
    /* The low one first, so that the order is not that of attaching. */
    g_assert_cmpuint(barrier_add_watch_full(G_PRIORITY_LOW, &low, BARRIER_WAIT_NEXT, on_ordered,
                                            &low_tag, on_ordered_destroyed),
                     >, 0);
    g_assert_cmpuint(barrier_add_watch_full(G_PRIORITY_HIGH, &high, BARRIER_WAIT_NEXT, on_ordered,
                                            &high_tag, on_ordered_destroyed),
                     >, 0);
    loop.run();
    g_assert_cmpint(ordered.who[0], ==, 2);
    g_assert_cmpint(ordered.who[1], ==, 1);
    g_assert_cmpint(ordered.notified, ==, 2);

    barrier_destroy(&low);
    barrier_destroy(&high);
    g_assert_cmpint(wait_exit_status(low_pid), ==, 0);
    g_assert_cmpint(wait_exit_status(high_pid), ==, 0);
}

/* A source for the C barrier inside an ipcbarrier::Barrier (c_barrier())
 * follows it through moves; destroying the moved-from objects changes
 * nothing, destroying the last owner ends the source with -EBADF. */
void test_move_cxx() {
    int go[2];
    g_assert_cmpint(pipe2(go, O_CLOEXEC), ==, 0);
    ipcbarrier::Barrier first;
    pid_t pid = fork_cxx_peer(
        &first,
        [](Barrier *cb, int go_fd) {
            char c;
            CHILD_ASSERT(read(go_fd, &c, 1) == 1);
            CHILD_ASSERT(barrier_place(cb));
            CHILD_ASSERT(barrier_wait_abortion(cb));
        },
        go[0]);
    close(go[0]);

    Loop loop;
    Calls calls;
    calls.loop = loop.loop();
    calls.keep = G_SOURCE_CONTINUE;
    GSource *source = attach(loop, first.c_barrier(), BARRIER_WAIT_NEXT, &calls);
    ipcbarrier::Barrier second(std::move(first));
    ipcbarrier::Barrier third;
    third = std::move(second);
    g_assert_false(first.valid());
    g_assert_false(second.valid());
    first = ipcbarrier::Barrier();

    g_assert_cmpint(write(go[1], "g", 1), ==, 1);
    loop.run();
    g_assert_cmpint(calls.results[0], ==, 1);
    g_assert_true(calls.barriers[0] == third.c_barrier());

    third = ipcbarrier::Barrier();
    calls.quit_at = 2;
    loop.run();
    g_assert_cmpint(calls.results[1], ==, -EBADF);
    g_assert_null(calls.barriers[1]);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    drop(source);
    close(go[1]);
}

/* The cost per event, in a traced child (see trace_syscalls()): many
 * sources for idle children, a few sync points, and an idle source that
 * makes the loop iterate COST_N_WAKEUPS times. */
struct CostLoop {
    GMainLoop *loop = nullptr;
    int points = 0;
    int wakeups = 0;
};

gboolean on_cost_point(Barrier *, int result, gpointer data) {
    auto *c = static_cast<CostLoop *>(data);
    CHILD_ASSERT(result == 1);
    if (++c->points == COST_N_ACTIVE && c->wakeups == COST_N_WAKEUPS) g_main_loop_quit(c->loop);
    return G_SOURCE_CONTINUE;
}

gboolean on_cost_wakeup(gpointer data) {
    auto *c = static_cast<CostLoop *>(data);
    if (++c->wakeups < COST_N_WAKEUPS) return G_SOURCE_CONTINUE;
    if (c->points == COST_N_ACTIVE) g_main_loop_quit(c->loop);
    return G_SOURCE_REMOVE;
}

void cost_scenario(void *) {
    std::vector<Barrier> barriers(COST_N_PEERS, Barrier BARRIER_NULL);
    std::vector<pid_t> pids(COST_N_PEERS);
    for (int i = 0; i < COST_N_PEERS; i++)
        pids[i] = fork_peer(&barriers[i], i < COST_N_ACTIVE ? active_child : idle_child, 0);

    Loop loop;
    CostLoop cost;
    cost.loop = loop.loop();
    std::vector<GSource *> sources;
    FdSnapshot marked = {};
    for (Barrier &b : barriers) {
        GSource *source = barrier_source_new(&b, BARRIER_WAIT_NEXT);
        CHILD_ASSERT(source);
        g_source_set_callback(source, G_SOURCE_FUNC(on_cost_point), &cost, nullptr);
        g_source_attach(source, loop.ctx());
        sources.push_back(source);
        fd_mark_barrier(&marked, &b);
    }
    GSource *wakeup = g_idle_source_new();
    g_source_set_callback(wakeup, on_cost_wakeup, &cost, nullptr);
    g_source_attach(wakeup, loop.ctx());
    g_source_unref(wakeup);

    trace_begin();
    loop.run();
    trace_end(&marked);

    CHILD_ASSERT(cost.points == COST_N_ACTIVE);
    for (GSource *source : sources) drop(source);
    for (int i = 0; i < COST_N_PEERS; i++) {
        barrier_destroy(&barriers[i]);
        CHILD_ASSERT(wait_exit_status(pids[i]) == 0);
    }
}

void test_cost_per_event() {
    struct rlimit old_limit;
    if (!crowd_fd_limit_raise(COST_N_PEERS, &old_limit)) return;
    SyscallCounts counts;
    if (trace_syscalls(cost_scenario, nullptr, &counts)) assert_cost_per_event(&counts);
    g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &old_limit), ==, 0);
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
    test_add_fd_checked("/barrier-glib/sync-continues", test_sync_continues);
    test_add_fd_checked("/barrier-glib/abortion", test_abortion);
    test_add_fd_checked("/barrier-glib/local-abort", test_local_abort);
    test_add_fd_checked("/barrier-glib/many-children", test_many_children);
    test_add_fd_checked("/barrier-glib/no-duplicates", test_no_duplicates);
    test_add_fd_checked("/barrier-glib/drop-source-first", test_drop_source_first);
    test_add_fd_checked("/barrier-glib/destroy-barrier-first", test_destroy_barrier_first);
    test_add_data_fd_checked("/barrier-glib/destroy-loop-stopped/barrier-first", &barrier_first,
                             test_destroy_loop_stopped);
    test_add_data_fd_checked("/barrier-glib/destroy-loop-stopped/source-first", &source_first,
                             test_destroy_loop_stopped);
    test_add_fd_checked("/barrier-glib/recreate", test_recreate);
    test_add_fd_checked("/barrier-glib/one-reader", test_one_reader);
    test_add_data_fd_checked("/barrier-glib/fatal-error/in-place", &fatal_in_place,
                             test_fatal_error);
    test_add_data_fd_checked("/barrier-glib/fatal-error/in-place-then-destroy",
                             &fatal_in_place_then_destroy, test_fatal_error);
    test_add_data_fd_checked("/barrier-glib/fatal-error/in-read", &fatal_in_read, test_fatal_error);
    test_add_fd_checked("/barrier-glib/priority", test_priority);
    test_add_fd_checked("/barrier-glib/move-cxx", test_move_cxx);
    test_add_fd_checked("/barrier-glib/cost-per-event", test_cost_per_event);
    test_add_fd_checked("/barrier-glib/wait-kind", test_wait_kind);
    test_add_fd_checked("/barrier-glib/errors", test_errors);
    return g_test_run();
}
