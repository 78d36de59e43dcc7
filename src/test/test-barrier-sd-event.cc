/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sd-event adapter: barrier event sources driven by a real sd-event
 * loop, against real child processes. Every order is made by a handshake
 * (the barrier itself, or a pipe); timeouts are only watchdogs. */

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ipcbarrier/barrier-sd-event.h>
#include <ipcbarrier/barrier.hh>
#ifdef TEST_WITH_GLIB
#include <ipcbarrier/barrier-glib.h>
#endif

#include "barrier-peer.h"
#include "test-util.h"

namespace {

/* An sd-event loop with a watchdog that turns a hang into a failure. */
class Loop {
  public:
    Loop() {
        ASSERT_OK(sd_event_new(&e_));
        ASSERT_OK(sd_event_add_time_relative(
            e_, &watchdog_, CLOCK_MONOTONIC, static_cast<uint64_t>(watchdog_ms()) * 1000, 0,
            [](sd_event_source *, uint64_t, void *) -> int {
                g_test_message("watchdog: the loop waited for more than %d ms", watchdog_ms());
                g_assert_not_reached();
            },
            nullptr));
    }
    ~Loop() {
        sd_event_source_disable_unref(watchdog_);
        sd_event_unref(e_);
    }
    Loop(const Loop &) = delete;
    Loop &operator=(const Loop &) = delete;

    sd_event *get() const { return e_; }

    /* Runs iterations until *flag is true. */
    void run_until(const bool *flag) const {
        while (!*flag) ASSERT_OK(sd_event_run(e_, UINT64_MAX));
    }

    /* Runs iterations without blocking until three in a row dispatch
     * nothing: whatever was ready has been dispatched, and a source that
     * spun would keep it from ending. */
    void drain() const {
        for (int idle = 0; idle < 3;) {
            int r = sd_event_run(e_, 0);
            ASSERT_OK(r);
            idle = r > 0 ? 0 : idle + 1;
        }
    }

  private:
    sd_event *e_ = nullptr;
    sd_event_source *watchdog_ = nullptr;
};

/* What a source delivered, and how its handler answers. */
struct Calls {
    int n = 0;
    int results[8] = {};
    Barrier *barriers[8] = {}; /* the b of each call */
    BarrierEventSource *sources[8] = {};
    bool stop_after = true;    /* return < 0 after the first call */
    bool place_on_one = false; /* answer each 1 with a sync point */
    bool unref_self = false;   /* drop the source from its own handler */
    int quit_at = 1;           /* set quit when n reaches it */
    bool quit = false;
};

int record(BarrierEventSource *s, Barrier *b, int result, void *userdata) {
    auto *c = static_cast<Calls *>(userdata);
    g_assert_cmpint(c->n, <, 8);
    c->barriers[c->n] = b;
    c->sources[c->n] = s;
    c->results[c->n++] = result;
    if (result == 1 && c->place_on_one) g_assert_true(barrier_place(b));
    if (c->n == c->quit_at) c->quit = true;
    if (c->unref_self) g_assert_null(barrier_event_source_unref(s));
    return c->stop_after ? -ECANCELED : 0;
}

BarrierEventSource *add(const Loop &loop, Barrier *b, BarrierWaitKind kind, Calls *calls) {
    BarrierEventSource *s = nullptr;
    ASSERT_OK(barrier_event_add(loop.get(), &s, b, kind, record, calls));
    g_assert_nonnull(s);
    return s;
}

/* A reader of the barrier that another event loop would attach. */
void other_reader(Barrier *, BarrierWatchEvent, void *) {}
BarrierWatch other_watch;

/* Whether b has no reader: another can be attached. */
bool has_no_reader(Barrier *b) {
    if (barrier_watch(b, &other_watch, other_reader, nullptr) < 0) return false;
    ASSERT_OK(barrier_unwatch(b, &other_watch));
    return true;
}

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

/* A child that places a sync point for each byte it reads from go_fd, and
 * waits for the parent to go once go_fd reaches its end. */
void point_per_go_child(Barrier *b, int go_fd) {
    keep_only_barrier_fds(b, go_fd); /* the write end too: the end comes */
    char c;
    while (read(go_fd, &c, 1) == 1) CHILD_ASSERT(barrier_place(b));
    CHILD_ASSERT(barrier_wait_abortion(b));
}

/* Waits until the sync point the child placed has arrived (the eventfd we
 * read is readable), without reading it. */
void await_point(Barrier *b) {
    struct pollfd pfd[2];
    ASSERT_OK(barrier_get_pollfds(b, pfd));
    g_assert_true(wait_readable(pfd[0].fd, watchdog_ms()));
}

/* Whether a point is there that nobody has read. */
bool point_unread(Barrier *b) {
    struct pollfd pfd[2];
    ASSERT_OK(barrier_get_pollfds(b, pfd));
    return wait_readable(pfd[0].fd, 0);
}

/* ---- the cases ---- */

/* The child places one sync point, but only after the parent's go: the
 * handler is called with 1 then, and not before. */
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

    Loop loop;
    Calls calls;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0); /* nothing was placed yet */

    g_assert_true(barrier_place(&b));
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, 1);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 1); /* the handler stopped it */

    g_assert_null(barrier_event_source_unref(s));
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
    calls.stop_after = false;
    calls.place_on_one = true;
    calls.quit_at = 4;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.run_until(&calls.quit);
    const int expected[] = {1, 1, 1, 0};
    for (int i = 0; i < 4; i++) g_assert_cmpint(calls.results[i], ==, expected[i]);

    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 4);
    g_assert_null(barrier_event_source_unref(s));
    barrier_destroy(&b);
}

/* A wait that is already over when the source is added is delivered in the
 * first iteration, which does not block: the child, blocked in
 * barrier_wait_abortion(), does nothing that an fd could report. */
void test_satisfied_at_attach() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b, [](Barrier *cb, int) { CHILD_ASSERT(barrier_wait_abortion(cb)); }, 0);

    Loop loop;
    for (BarrierWaitKind kind : {BARRIER_WAIT_SYNC, BARRIER_WAIT_SYNC_NEXT}) {
        Calls calls;
        BarrierEventSource *s = add(loop, &b, kind, &calls);
        g_assert_cmpint(sd_event_run(loop.get(), 0), ==, 1);
        g_assert_cmpint(calls.n, ==, 1);
        g_assert_cmpint(calls.results[0], ==, 1);
        g_assert_null(barrier_event_source_unref(s));
    }

    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* An explicit abortion is delivered as 0, once: although the handler asks
 * to go on and the child's exit leaves the pipe hung up for ever, nothing
 * more comes. The source opens no fd, and has let go of the barrier at its
 * last result, before it is unreferenced: another source is accepted. */
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
    calls.stop_after = false;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    g_assert_true(barrier_place(&b));
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, 0);
    g_assert_true(barrier_they_aborted(&b));
    assert_same_fds(&before);

    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);
    Calls again;
    BarrierEventSource *next = add(loop, &b, BARRIER_WAIT_NEXT, &again);
    g_assert_cmpint(sd_event_run(loop.get(), 0), ==, 1);
    g_assert_cmpint(again.n, ==, 1);
    g_assert_cmpint(again.results[0], ==, 0);
    g_assert_null(barrier_event_source_unref(next));
    g_assert_null(barrier_event_source_unref(s));
    barrier_destroy(&b);
}

struct Crowd {
    sd_event *e = nullptr;
    int n_done = 0;
    int n_peers = 0;
};

struct Peer : CrowdPeer {
    Crowd *crowd = nullptr;
};

int on_peer(BarrierEventSource *, Barrier *b, int result, void *userdata) {
    auto *p = static_cast<Peer *>(userdata);
    const bool go_on = crowd_peer_answer(p, b, result);
    /* done is new: the answer asserts that it was not set before */
    if (p->done && ++p->crowd->n_done == p->crowd->n_peers)
        ASSERT_OK(sd_event_exit(p->crowd->e, 0));
    return go_on ? 0 : -ECANCELED;
}

/* One loop (sd_event_loop()), 200 barriers, 200 children at once, each
 * child playing one of the patterns; one of them is killed mid-way. Every
 * source delivers exactly the results of its pattern; the victim's ends
 * with 0 (the implicit abortion), and nobody else notices. Half of the
 * sources are floating and free themselves once stopped. */
void test_many_children() {
    constexpr int N = 200;
    constexpr int VICTIM = 100;
    static_assert(VICTIM % N_PATTERNS == NEXT_THEN_ABORT);

    struct rlimit old_limit;
    if (!crowd_fd_limit_raise(N, &old_limit)) return;
    int fds_before = count_open_fds();

    {
        Loop loop;
        Crowd crowd;
        crowd.e = loop.get();
        crowd.n_peers = N;
        std::vector<Peer> peers(N);
        std::vector<BarrierEventSource *> sources(N, nullptr);
        for (int i = 0; i < N; i++) {
            Peer &p = peers[i];
            p.crowd = &crowd;
            crowd_peer_start(&p, i, VICTIM);
            ASSERT_OK(barrier_event_add(loop.get(), i % 2 ? &sources[i] : nullptr, &p.b,
                                        pattern_kind[p.pattern], on_peer, &p));
        }

        ASSERT_OK(sd_event_loop(loop.get()));
        g_assert_cmpint(crowd.n_done, ==, N);

        for (int i = 0; i < N; i++) crowd_peer_check(&peers[i], i);

        for (int i = 0; i < N; i++) {
            g_assert_null(barrier_event_source_unref(sources[i]));
            barrier_destroy(&peers[i].b);
        }
    } /* the loop and its watchdog go before the count */
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
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    g_assert_true(barrier_place(&b));
    struct pollfd pfd[2];
    ASSERT_OK(barrier_get_pollfds(&b, pfd));
    g_assert_true(wait_readable(pfd[0].fd, watchdog_ms())); /* the child's point is there */
    g_assert_null(barrier_event_source_unref(s));
    assert_same_fds(&before);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    g_assert_true(barrier_wait_next(&b));
    g_assert_true(barrier_place_and_sync(&b));
    g_assert_cmpint(calls.n, ==, 0);

    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* Destroying the barrier first: the source calls the handler once with
 * -EBADF and no barrier; the child, blocked in barrier_wait_abortion(),
 * sees the abortion while this process lives and the source is not
 * unreferenced. Unreferencing it afterwards is safe. */
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
    calls.stop_after = false;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    barrier_destroy(&b);
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, -EBADF);
    g_assert_null(calls.barriers[0]);
    assert_no_new_fds(&before); /* the barrier's fds are closed */

    assert_peer_reported(report, 'A');

    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_null(barrier_event_source_unref(s));
    close(report);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* Floating sources (ret NULL) belong to the loop: one that stops frees
 * itself at once, one that is still waiting is freed with the loop and
 * lets go of the barrier then (another source is accepted, and destroying
 * the barrier afterwards touches nothing freed). valgrind and ASan see the
 * rest. */
void test_floating() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b, [](Barrier *cb, int) { CHILD_ASSERT(barrier_wait_abortion(cb)); }, 0);

    FdSnapshot before;
    fd_snapshot(&before);
    {
        Loop loop;
        FdSnapshot with_loop;
        fd_snapshot(&with_loop);
        Calls stopping; /* SYNC with nothing placed: over at once */
        ASSERT_OK(barrier_event_add(loop.get(), nullptr, &b, BARRIER_WAIT_SYNC, record, &stopping));
        loop.run_until(&stopping.quit);
        loop.drain();
        g_assert_cmpint(stopping.n, ==, 1);
        assert_same_fds(&with_loop);

        Calls waiting; /* never over: the child places nothing */
        ASSERT_OK(barrier_event_add(loop.get(), nullptr, &b, BARRIER_WAIT_NEXT, record, &waiting));
        loop.drain();
        g_assert_cmpint(waiting.n, ==, 0);
        ASSERT_RET(barrier_watch(&b, &other_watch, other_reader, nullptr), -EBUSY);
    }
    assert_same_fds(&before);
    ASSERT_OK(barrier_watch(&b, &other_watch, other_reader, nullptr));
    ASSERT_OK(barrier_unwatch(&b, &other_watch));

    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* A handler may drop its own source; nothing is delivered afterwards. */
void test_unref_in_handler() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(
        &b,
        [](Barrier *cb, int) {
            CHILD_ASSERT(barrier_place(cb));
            CHILD_ASSERT(barrier_wait_abortion(cb));
        },
        0);

    Loop loop;
    Calls calls;
    calls.stop_after = false;
    calls.unref_self = true;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    (void)s; /* dropped by the handler */
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.results[0], ==, 1);
    barrier_destroy(&b);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* The source watches the barrier's own fds: adding and running it opens
 * none, so nothing of it keeps the barrier's pipe open, in this process or
 * in a child forked afterwards. */
void test_no_duplicates() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(&b, idle_child, 0);
    Loop loop;
    FdSnapshot before;
    fd_snapshot(&before);
    Calls calls;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    assert_same_fds(&before);
    g_assert_cmpint(calls.n, ==, 0);
    g_assert_null(barrier_event_source_unref(s));
    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* Which goes first when a service manager lets a child go without running
 * its loop again: the barrier, or the source. */
enum class Order { barrier_first, source_first };
constexpr Order barrier_first = Order::barrier_first;
constexpr Order source_first = Order::source_first;

/* Leave the loop, destroy the barrier, reap the child: the child, blocked
 * in an untimed barrier_sync(), sees the departure at once, although the
 * loop never runs again and the source still exists (barrier first) or is
 * gone (source first). */
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
    calls.stop_after = false;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.results[0], ==, 1);
    assert_peer_reported(report, 'P');

    /* The loop does not run again. */
    if (order == barrier_first) {
        barrier_destroy(&b);
        assert_peer_reported(report, 'S');
        g_assert_cmpint(wait_exit_status(pid), ==, 0);
        g_assert_null(barrier_event_source_unref(s));
    } else {
        g_assert_null(barrier_event_source_unref(s));
        barrier_destroy(&b);
        assert_peer_reported(report, 'S');
        g_assert_cmpint(wait_exit_status(pid), ==, 0);
    }
    g_assert_cmpint(calls.n, ==, 1);
    close(report);
}

/* One Barrier variable for one child after the other, while the first
 * child's source (floating here) still exists: the first child sees the
 * destroy at once; the second barrier gets a source of its own, which only
 * the second child's sync point wakes; the old source delivers -EBADF
 * without a barrier, once, never reads the new one, and frees itself. */
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
    old_calls.stop_after = false;
    ASSERT_OK(barrier_event_add(loop.get(), nullptr, &b, BARRIER_WAIT_NEXT, record, &old_calls));
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
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(old_calls.n, ==, 1);
    g_assert_cmpint(old_calls.results[0], ==, -EBADF);
    g_assert_null(old_calls.barriers[0]);
    g_assert_cmpint(calls.n, ==, 0);

    g_assert_true(barrier_place(&b)); /* the go */
    loop.run_until(&calls.quit);      /* nothing else can wake it */
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, 1);
    g_assert_true(calls.barriers[0] == &b);
    loop.drain();
    g_assert_cmpint(old_calls.n, ==, 1);

    g_assert_null(barrier_event_source_unref(s));
    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(second), ==, 0);
}

void assert_refused(const Loop &loop, Barrier *b) {
    Calls calls;
    BarrierEventSource *s = nullptr;
    for (BarrierWaitKind kind :
         {BARRIER_WAIT_NEXT, BARRIER_WAIT_SYNC_NEXT, BARRIER_WAIT_SYNC, BARRIER_WAIT_ABORTION}) {
        ASSERT_RET(barrier_event_add(loop.get(), &s, b, kind, record, &calls), -EBUSY);
        ASSERT_RET(barrier_event_add(loop.get(), nullptr, b, kind, record, &calls), -EBUSY);
    }
    g_assert_null(s);
}

/* A barrier has one reader: a second source, of either adapter, or the
 * reader of another loop, is refused while the first exists; once it is
 * gone, a new one is accepted. */
void test_one_reader() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(&b, idle_child, 0);
    Loop loop;
    Calls calls;

    BarrierEventSource *first = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    assert_refused(loop, &b);
    ASSERT_RET(barrier_watch(&b, &other_watch, other_reader, nullptr), -EBUSY);
#ifdef TEST_WITH_GLIB
    errno = 0;
    g_assert_null(barrier_source_new(&b, BARRIER_WAIT_ABORTION));
    g_assert_cmpint(errno, ==, EBUSY);
#endif
    g_assert_null(barrier_event_source_unref(first));

    ASSERT_OK(barrier_watch(&b, &other_watch, other_reader, nullptr));
    assert_refused(loop, &b);
    ASSERT_OK(barrier_unwatch(&b, &other_watch));
#ifdef TEST_WITH_GLIB
    GSource *source = barrier_source_new(&b, BARRIER_WAIT_NEXT);
    g_assert_nonnull(source);
    assert_refused(loop, &b);
    g_source_unref(source);
#endif

    ASSERT_OK(barrier_event_add(loop.get(), nullptr, &b, BARRIER_WAIT_ABORTION, record, &calls));
    assert_refused(loop, &b);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);
    barrier_destroy(&b);
    loop.drain(); /* the floating one delivers -EBADF and goes */
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, -EBADF);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* A SYNC source whose handler goes on without changing anything is called
 * again, in each iteration, and never blocks the loop. */
void test_sync_continues() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(&b, idle_child, 0);
    Loop loop;
    Calls calls;
    calls.stop_after = false;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_SYNC, &calls);
    for (int i = 1; i <= 3; i++) {
        g_assert_cmpint(sd_event_run(loop.get(), 0), ==, 1);
        g_assert_cmpint(calls.n, ==, i);
        g_assert_cmpint(calls.results[i - 1], ==, 1);
    }
    g_assert_null(barrier_event_source_unref(s));
    loop.drain();
    g_assert_cmpint(calls.n, ==, 3);
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
    calls.stop_after = false;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    g_assert_true(barrier_abort(&b));
    g_assert_cmpint(sd_event_run(loop.get(), 0), ==, 1);
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_cmpint(calls.results[0], ==, 0);
    g_assert_true(calls.barriers[0] == &b);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);

    g_assert_null(barrier_event_source_unref(s));
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
    calls.stop_after = false;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
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
        BarrierEventSource *next = add(loop, &b, BARRIER_WAIT_SYNC, &again);
        g_assert_cmpint(sd_event_run(loop.get(), 0), ==, 1);
        g_assert_cmpint(again.n, ==, 1);
        g_assert_cmpint(again.results[0], ==, 0);
        g_assert_null(barrier_event_source_unref(next));
    }
    g_assert_null(barrier_event_source_unref(s));
    barrier_destroy(&b);
    close(report);
}

/* Two sources ready in one iteration are delivered by priority, whatever
 * order they were added in. */
struct Ordered {
    int n = 0;
    int who[2] = {};
};

int on_ordered(BarrierEventSource *s, Barrier *, int result, void *userdata) {
    auto *ordered = static_cast<Ordered *>(userdata);
    g_assert_cmpint(result, ==, 1);
    g_assert_cmpint(ordered->n, <, 2);
    int64_t priority;
    ASSERT_OK(barrier_event_source_get_priority(s, &priority));
    ordered->who[ordered->n++] = static_cast<int>(priority);
    return -ECANCELED;
}

void test_priority() {
    Barrier low = BARRIER_NULL, high = BARRIER_NULL;
    pid_t low_pid = fork_peer(&low, active_child, 0);
    pid_t high_pid = fork_peer(&high, active_child, 0);
    await_point(&low);
    await_point(&high);

    Loop loop;
    Ordered ordered;
    BarrierEventSource *sl = nullptr, *sh = nullptr;
    ASSERT_OK(barrier_event_add(loop.get(), &sl, &low, BARRIER_WAIT_NEXT, on_ordered, &ordered));
    ASSERT_OK(barrier_event_add(loop.get(), &sh, &high, BARRIER_WAIT_NEXT, on_ordered, &ordered));
    int64_t priority;
    ASSERT_OK(barrier_event_source_get_priority(sl, &priority));
    g_assert_cmpint(priority, ==, SD_EVENT_PRIORITY_NORMAL);
    ASSERT_OK(barrier_event_source_set_priority(sl, SD_EVENT_PRIORITY_IDLE));
    ASSERT_OK(barrier_event_source_set_priority(sh, SD_EVENT_PRIORITY_IMPORTANT));
    ASSERT_OK(barrier_event_source_get_priority(sh, &priority));
    g_assert_cmpint(priority, ==, SD_EVENT_PRIORITY_IMPORTANT);

    while (ordered.n < 2) ASSERT_OK(sd_event_run(loop.get(), UINT64_MAX));
    g_assert_cmpint(ordered.who[0], ==, SD_EVENT_PRIORITY_IMPORTANT);
    g_assert_cmpint(ordered.who[1], ==, SD_EVENT_PRIORITY_IDLE);

    g_assert_null(barrier_event_source_unref(sl));
    g_assert_null(barrier_event_source_unref(sh));
    barrier_destroy(&low);
    barrier_destroy(&high);
    g_assert_cmpint(wait_exit_status(low_pid), ==, 0);
    g_assert_cmpint(wait_exit_status(high_pid), ==, 0);
}

/* The description is the caller's string, copied. */
void test_description() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(&b, idle_child, 0);
    Loop loop;
    Calls calls;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    const char *got = nullptr;
    ASSERT_RET(barrier_event_source_get_description(s, &got), -ENXIO);
    char name[] = "child-7";
    ASSERT_OK(barrier_event_source_set_description(s, name));
    name[6] = '8';
    ASSERT_OK(barrier_event_source_get_description(s, &got));
    g_assert_cmpstr(got, ==, "child-7");
    ASSERT_OK(barrier_event_source_set_description(s, "child-9"));
    ASSERT_OK(barrier_event_source_get_description(s, &got));
    g_assert_cmpstr(got, ==, "child-9");
    ASSERT_RET(barrier_event_source_get_description(s, nullptr), -EINVAL);
    ASSERT_OK(barrier_event_source_set_description(s, nullptr));
    ASSERT_RET(barrier_event_source_get_description(s, &got), -ENXIO);
    g_assert_true(barrier_event_source_get_event(s) == loop.get());
    g_assert_null(barrier_event_source_unref(s));
    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* Enabled, as for sd-event sources: OFF delivers nothing and reads
 * nothing (the point stays unread), ON delivers, ONESHOT delivers once and
 * turns OFF; what was recorded while OFF (a destroy) comes once ON again,
 * and a stopped source cannot be enabled. */
void test_enabled() {
    Barrier b = BARRIER_NULL;
    int go;
    pid_t pid = fork_peer_with_pipe(&b, point_per_go_child, PeerPipe::CHILD_READS, &go);
    Loop loop;
    Calls calls;
    calls.stop_after = false;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    int state = -1;
    g_assert_cmpint(barrier_event_source_get_enabled(s, &state), ==, 1);
    g_assert_cmpint(state, ==, SD_EVENT_ON);
    g_assert_cmpint(barrier_event_source_get_enabled(s, nullptr), ==, 1);
    ASSERT_RET(barrier_event_source_set_enabled(s, 7), -EINVAL);

    ASSERT_OK(barrier_event_source_set_enabled(s, SD_EVENT_OFF));
    g_assert_cmpint(barrier_event_source_get_enabled(s, &state), ==, 0);
    g_assert_cmpint(state, ==, SD_EVENT_OFF);
    g_assert_cmpint(write(go, "g", 1), ==, 1);
    await_point(&b);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);
    g_assert_true(point_unread(&b));

    ASSERT_OK(barrier_event_source_set_enabled(s, SD_EVENT_ON));
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.results[0], ==, 1);
    g_assert_false(point_unread(&b));

    ASSERT_OK(barrier_event_source_set_enabled(s, SD_EVENT_ONESHOT));
    g_assert_cmpint(barrier_event_source_get_enabled(s, &state), ==, 1);
    g_assert_cmpint(state, ==, SD_EVENT_ONESHOT);
    g_assert_cmpint(write(go, "g", 1), ==, 1);
    calls.quit = false;
    calls.quit_at = 2;
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.results[1], ==, 1);
    g_assert_cmpint(barrier_event_source_get_enabled(s, &state), ==, 0);
    g_assert_cmpint(state, ==, SD_EVENT_OFF);
    g_assert_cmpint(write(go, "g", 1), ==, 1);
    await_point(&b);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 2);
    g_assert_true(point_unread(&b));

    ASSERT_OK(barrier_event_source_set_enabled(s, SD_EVENT_ON));
    calls.quit = false;
    calls.quit_at = 3;
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.results[2], ==, 1);

    /* Destroyed while off: the child sees it at once, the source only
     * when enabled. */
    ASSERT_OK(barrier_event_source_set_enabled(s, SD_EVENT_OFF));
    barrier_destroy(&b);
    close(go);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 3);
    ASSERT_OK(barrier_event_source_set_enabled(s, SD_EVENT_ONESHOT));
    loop.drain();
    g_assert_cmpint(calls.n, ==, 4);
    g_assert_cmpint(calls.results[3], ==, -EBADF);
    g_assert_null(calls.barriers[3]);

    /* Stopped for good. */
    g_assert_cmpint(barrier_event_source_get_enabled(s, &state), ==, 0);
    ASSERT_RET(barrier_event_source_set_enabled(s, SD_EVENT_ON), -ESTALE);
    ASSERT_OK(barrier_event_source_set_enabled(s, SD_EVENT_OFF));
    g_assert_null(barrier_event_source_disable_unref(s));
}

/* References: the last one stops the source (nothing delivered after, the
 * barrier free for another); barrier_event_source_unrefp() with
 * __attribute__((cleanup)); barrier_event_source_disable_unref(). */
void test_ref_unref() {
    Barrier b = BARRIER_NULL;
    int go;
    pid_t pid = fork_peer_with_pipe(&b, point_per_go_child, PeerPipe::CHILD_READS, &go);
    Loop loop;
    Calls calls;
    calls.stop_after = false;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    g_assert_true(barrier_event_source_ref(s) == s);
    g_assert_null(barrier_event_source_unref(s)); /* one left */
    g_assert_false(has_no_reader(&b));
    g_assert_cmpint(write(go, "g", 1), ==, 1);
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.results[0], ==, 1);
    g_assert_null(barrier_event_source_unref(s)); /* the last */
    g_assert_true(has_no_reader(&b));
    g_assert_cmpint(write(go, "g", 1), ==, 1);
    await_point(&b);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_true(barrier_wait_next(&b)); /* nobody read it */

    {
        __attribute__((cleanup(barrier_event_source_unrefp))) BarrierEventSource *scoped =
            add(loop, &b, BARRIER_WAIT_NEXT, &calls);
        __attribute__((cleanup(barrier_event_source_unrefp))) BarrierEventSource *none = nullptr;
        g_assert_false(has_no_reader(&b));
        g_assert_true(barrier_event_source_get_event(scoped) == loop.get());
        g_assert_null(none);
    }
    g_assert_true(has_no_reader(&b));

    s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    barrier_event_source_ref(s);
    g_assert_null(barrier_event_source_disable_unref(s));
    /* Still referenced, but off: reads nothing. */
    g_assert_false(has_no_reader(&b));
    g_assert_cmpint(barrier_event_source_get_enabled(s, nullptr), ==, 0);
    g_assert_cmpint(write(go, "g", 1), ==, 1);
    await_point(&b);
    loop.drain();
    g_assert_true(point_unread(&b));
    g_assert_null(barrier_event_source_disable_unref(s));
    g_assert_true(has_no_reader(&b));
    g_assert_cmpint(calls.n, ==, 1);

    barrier_destroy(&b);
    close(go);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* Floating as a state: made floating, the source lives on the loop's
 * reference and delivers after the caller let go; its handler makes it
 * non-floating again with a reference of its own; a stopped source cannot
 * be made floating. */
int on_unfloat(BarrierEventSource *s, Barrier *, int result, void *userdata) {
    auto **kept = static_cast<BarrierEventSource **>(userdata);
    g_assert_cmpint(result, ==, 1);
    g_assert_cmpint(barrier_event_source_get_floating(s), ==, 1);
    *kept = barrier_event_source_ref(s);
    g_assert_cmpint(barrier_event_source_set_floating(s, 0), ==, 1);
    return 0;
}

void test_floating_toggle() {
    Barrier b = BARRIER_NULL;
    int go;
    pid_t pid = fork_peer_with_pipe(&b, point_per_go_child, PeerPipe::CHILD_READS, &go);
    Loop loop;
    BarrierEventSource *s = nullptr, *kept = nullptr;
    ASSERT_OK(barrier_event_add(loop.get(), &s, &b, BARRIER_WAIT_NEXT, on_unfloat, &kept));
    g_assert_cmpint(barrier_event_source_get_floating(s), ==, 0);
    g_assert_cmpint(barrier_event_source_set_floating(s, 0), ==, 0);
    g_assert_cmpint(barrier_event_source_set_floating(s, 1), ==, 1);
    g_assert_cmpint(barrier_event_source_set_floating(s, 1), ==, 0);
    g_assert_cmpint(barrier_event_source_get_floating(s), ==, 1);
    g_assert_null(barrier_event_source_unref(s)); /* the loop's is left */

    g_assert_cmpint(write(go, "g", 1), ==, 1);
    while (!kept) ASSERT_OK(sd_event_run(loop.get(), UINT64_MAX));
    g_assert_true(kept == s);
    g_assert_cmpint(barrier_event_source_get_floating(kept), ==, 0);
    g_assert_false(has_no_reader(&b));

    ASSERT_OK(barrier_event_source_set_enabled(kept, SD_EVENT_OFF));
    barrier_destroy(&b);
    ASSERT_OK(barrier_event_source_set_floating(kept, 0));
    g_assert_null(barrier_event_source_unref(kept)); /* stopped, freed */
    close(go);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);

    /* A stopped source stays what it is. */
    pid = fork_peer(&b, idle_child, 0);
    Calls calls;
    s = add(loop, &b, BARRIER_WAIT_SYNC, &calls);
    loop.run_until(&calls.quit); /* 1, and the handler stops it */
    ASSERT_RET(barrier_event_source_set_floating(s, 1), -ESTALE);
    g_assert_cmpint(barrier_event_source_get_floating(s), ==, 0);
    g_assert_null(barrier_event_source_unref(s));
    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* A source the caller holds keeps its loop alive (as sd-event's do), and
 * may outlive the caller's reference to the loop. */
void test_keeps_loop() {
    Barrier b = BARRIER_NULL;
    pid_t pid = fork_peer(&b, active_child, 0);
    sd_event *e = nullptr;
    ASSERT_OK(sd_event_new(&e));
    Calls calls;
    BarrierEventSource *s = nullptr;
    ASSERT_OK(barrier_event_add(e, &s, &b, BARRIER_WAIT_NEXT, record, &calls));
    g_assert_null(sd_event_unref(e)); /* the source holds it */
    g_assert_true(barrier_event_source_get_event(s) == e);
    while (!calls.quit) ASSERT_OK(sd_event_run(e, UINT64_MAX));
    g_assert_cmpint(calls.results[0], ==, 1);
    g_assert_null(barrier_event_source_unref(s)); /* frees the loop */
    g_assert_true(has_no_reader(&b));
    barrier_destroy(&b);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* A source for the C barrier inside an ipcbarrier::Barrier (c_barrier())
 * follows it through moves; destroying the moved-from objects changes
 * nothing, destroying the last owner ends the source with -EBADF. */
void test_move_cxx() {
    int go[2];
    g_assert_cmpint(pipe2(go, O_CLOEXEC), ==, 0);
    ipcbarrier::Barrier first;
    pid_t pid = fork_cxx_peer(&first, point_per_go_child, go[0]);
    close(go[0]);

    Loop loop;
    Calls calls;
    calls.stop_after = false;
    BarrierEventSource *s = add(loop, first.c_barrier(), BARRIER_WAIT_NEXT, &calls);
    ipcbarrier::Barrier second(std::move(first));
    ipcbarrier::Barrier third;
    third = std::move(second);
    g_assert_false(first.valid());
    g_assert_false(second.valid());
    first = ipcbarrier::Barrier();

    g_assert_cmpint(write(go[1], "g", 1), ==, 1);
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.results[0], ==, 1);
    g_assert_true(calls.barriers[0] == third.c_barrier());

    third = ipcbarrier::Barrier();
    calls.quit = false;
    calls.quit_at = 2;
    loop.run_until(&calls.quit);
    g_assert_cmpint(calls.results[1], ==, -EBADF);
    g_assert_null(calls.barriers[1]);
    close(go[1]);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    g_assert_null(barrier_event_source_unref(s));
}

/* The cost per event, in a traced child (see trace_syscalls()): many
 * sources for idle children, a few sync points, and a defer source that
 * makes the loop iterate COST_N_WAKEUPS times. */
struct CostLoop {
    sd_event *e = nullptr;
    sd_event_source *wakeup = nullptr;
    int points = 0;
    int wakeups = 0;
};

int on_cost_point(BarrierEventSource *, Barrier *, int result, void *userdata) {
    auto *c = static_cast<CostLoop *>(userdata);
    CHILD_ASSERT(result == 1);
    if (++c->points == COST_N_ACTIVE && c->wakeups == COST_N_WAKEUPS)
        CHILD_ASSERT(sd_event_exit(c->e, 0) >= 0);
    return 0;
}

int on_cost_wakeup(sd_event_source *source, void *userdata) {
    auto *c = static_cast<CostLoop *>(userdata);
    if (++c->wakeups < COST_N_WAKEUPS) return 0;
    CHILD_ASSERT(sd_event_source_set_enabled(source, SD_EVENT_OFF) >= 0);
    if (c->points == COST_N_ACTIVE) CHILD_ASSERT(sd_event_exit(c->e, 0) >= 0);
    return 0;
}

void cost_scenario(void *) {
    std::vector<Barrier> barriers(COST_N_PEERS, Barrier BARRIER_NULL);
    std::vector<pid_t> pids(COST_N_PEERS);
    for (int i = 0; i < COST_N_PEERS; i++)
        pids[i] = fork_peer(&barriers[i], i < COST_N_ACTIVE ? active_child : idle_child, 0);

    {
        Loop loop;
        CostLoop cost;
        cost.e = loop.get();
        FdSnapshot marked = {};
        for (Barrier &b : barriers) {
            CHILD_ASSERT(barrier_event_add(loop.get(), nullptr, &b, BARRIER_WAIT_NEXT,
                                           on_cost_point, &cost) >= 0);
            fd_mark_barrier(&marked, &b);
        }
        CHILD_ASSERT(sd_event_add_defer(loop.get(), &cost.wakeup, on_cost_wakeup, &cost) >= 0);
        CHILD_ASSERT(sd_event_source_set_enabled(cost.wakeup, SD_EVENT_ON) >= 0);

        trace_begin();
        CHILD_ASSERT(sd_event_loop(loop.get()) == 0);
        trace_end(&marked);

        CHILD_ASSERT(cost.points == COST_N_ACTIVE);
        sd_event_source_unref(cost.wakeup);
    } /* the floating sources go with the loop */
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

/* Misuse is refused with -errno, and adds and opens nothing. */
void test_errors() {
    Loop loop;
    Barrier b = BARRIER_NULL;
    Calls calls;
    BarrierEventSource *s = nullptr;
    ASSERT_RET(barrier_event_add(nullptr, &s, &b, BARRIER_WAIT_NEXT, record, &calls), -EINVAL);
    ASSERT_RET(barrier_event_add(loop.get(), &s, nullptr, BARRIER_WAIT_NEXT, record, &calls),
               -EINVAL);
    ASSERT_RET(barrier_event_add(loop.get(), &s, &b, BARRIER_WAIT_NEXT, nullptr, &calls), -EINVAL);
    ASSERT_RET(barrier_event_add(loop.get(), &s, &b, BARRIER_WAIT_NEXT, record, &calls), -EBADF);
    ASSERT_OK(barrier_create(&b));
    ASSERT_RET(barrier_event_add(loop.get(), &s, &b, BARRIER_WAIT_NEXT, record, &calls), -EBADF);
    ASSERT_OK(barrier_set_role(&b, BARRIER_PARENT));
    ASSERT_RET(c_event_add(loop.get(), &s, &b, 4, record, &calls), -EINVAL);
    ASSERT_RET(c_event_add(loop.get(), &s, &b, -1, record, &calls), -EINVAL);
    g_assert_null(s);
    g_assert_null(barrier_event_source_unref(nullptr));
    g_assert_null(barrier_event_source_ref(nullptr));
    g_assert_null(barrier_event_source_disable_unref(nullptr));
    g_assert_null(barrier_event_source_get_event(nullptr));
    int64_t priority;
    const char *description;
    int enabled;
    ASSERT_RET(barrier_event_source_set_priority(nullptr, 0), -EINVAL);
    ASSERT_RET(barrier_event_source_get_priority(nullptr, &priority), -EINVAL);
    ASSERT_RET(barrier_event_source_set_description(nullptr, "x"), -EINVAL);
    ASSERT_RET(barrier_event_source_get_description(nullptr, &description), -EINVAL);
    ASSERT_RET(barrier_event_source_set_enabled(nullptr, SD_EVENT_OFF), -EINVAL);
    ASSERT_RET(barrier_event_source_get_enabled(nullptr, &enabled), -EINVAL);
    ASSERT_RET(barrier_event_source_set_floating(nullptr, 1), -EINVAL);
    ASSERT_RET(barrier_event_source_get_floating(nullptr), -EINVAL);
    ASSERT_RET(c_wait_kind_timeout(&b, 4, 0), -EINVAL);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);
    barrier_destroy(&b);
}

}  // namespace

int main(int argc, char **argv) {
    g_test_init(&argc, &argv, nullptr);
    test_add_fd_checked("/barrier-sd-event/sync-point", test_sync_point);
    test_add_fd_checked("/barrier-sd-event/wait-next-continues", test_wait_next_continues);
    test_add_fd_checked("/barrier-sd-event/satisfied-at-attach", test_satisfied_at_attach);
    test_add_fd_checked("/barrier-sd-event/sync-continues", test_sync_continues);
    test_add_fd_checked("/barrier-sd-event/abortion", test_abortion);
    test_add_fd_checked("/barrier-sd-event/local-abort", test_local_abort);
    test_add_fd_checked("/barrier-sd-event/many-children", test_many_children);
    test_add_fd_checked("/barrier-sd-event/no-duplicates", test_no_duplicates);
    test_add_fd_checked("/barrier-sd-event/drop-source-first", test_drop_source_first);
    test_add_fd_checked("/barrier-sd-event/destroy-barrier-first", test_destroy_barrier_first);
    test_add_data_fd_checked("/barrier-sd-event/destroy-loop-stopped/barrier-first", &barrier_first,
                             test_destroy_loop_stopped);
    test_add_data_fd_checked("/barrier-sd-event/destroy-loop-stopped/source-first", &source_first,
                             test_destroy_loop_stopped);
    test_add_fd_checked("/barrier-sd-event/recreate", test_recreate);
    test_add_fd_checked("/barrier-sd-event/one-reader", test_one_reader);
    test_add_data_fd_checked("/barrier-sd-event/fatal-error/in-place", &fatal_in_place,
                             test_fatal_error);
    test_add_data_fd_checked("/barrier-sd-event/fatal-error/in-place-then-destroy",
                             &fatal_in_place_then_destroy, test_fatal_error);
    test_add_data_fd_checked("/barrier-sd-event/fatal-error/in-read", &fatal_in_read,
                             test_fatal_error);
    test_add_fd_checked("/barrier-sd-event/priority", test_priority);
    test_add_fd_checked("/barrier-sd-event/description", test_description);
    test_add_fd_checked("/barrier-sd-event/enabled", test_enabled);
    test_add_fd_checked("/barrier-sd-event/ref-unref", test_ref_unref);
    test_add_fd_checked("/barrier-sd-event/floating", test_floating);
    test_add_fd_checked("/barrier-sd-event/floating-toggle", test_floating_toggle);
    test_add_fd_checked("/barrier-sd-event/keeps-loop", test_keeps_loop);
    test_add_fd_checked("/barrier-sd-event/unref-in-handler", test_unref_in_handler);
    test_add_fd_checked("/barrier-sd-event/move-cxx", test_move_cxx);
    test_add_fd_checked("/barrier-sd-event/cost-per-event", test_cost_per_event);
    test_add_fd_checked("/barrier-sd-event/errors", test_errors);
    return g_test_run();
}
