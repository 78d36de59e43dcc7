/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sd-event adapter: barrier event sources driven by a real sd-event
 * loop, against real child processes. Every order is made by a handshake
 * (the barrier itself, or a pipe); timeouts are only watchdogs. */

#include <cerrno>
#include <cstdint>
#include <ctime>
#include <vector>

#include <glib.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ipcbarrier/barrier-sd-event.h>

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
    bool stop_after = true;    /* return < 0 after the first call */
    bool place_on_one = false; /* answer each 1 with a sync point */
    bool unref_self = false;   /* drop the source from its own handler */
    int quit_at = 1;           /* set quit when n reaches it */
    bool quit = false;
};

int record(BarrierEventSource *s, Barrier *b, int result, void *userdata) {
    auto *c = static_cast<Calls *>(userdata);
    g_assert_cmpint(c->n, <, 8);
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

/* barrier_event_add() as C callers see it (barrier-peer.h). */
const auto event_add_from_c =
    as_called_from_c<int (*)(sd_event *, BarrierEventSource **, Barrier *, int,
                             barrier_event_handler_t, void *)>(barrier_event_add);

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
 * more comes, and the duplicates are closed before the source is
 * unreferenced. */
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

/* Destroying the barrier first: the source calls back once with -EBADF,
 * and has let go of its duplicates by then: the child, blocked in
 * barrier_wait_abortion(), sees the abortion while this process lives and
 * the source is not unreferenced. Unreferencing it afterwards is safe. */
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
    assert_no_new_fds(&before); /* the barrier's fds and the duplicates are closed */

    assert_peer_reported(report, 'A');

    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_null(barrier_event_source_unref(s));
    close(report);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* Floating sources (ret NULL) belong to the loop: one that stops frees
 * itself at once (its fds are closed before the loop goes), one that is
 * still waiting is freed with the loop. valgrind and ASan see the rest. */
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
    }
    assert_same_fds(&before);

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
    ASSERT_RET(event_add_from_c(loop.get(), &s, &b, 4, record, &calls), -EINVAL);
    ASSERT_RET(event_add_from_c(loop.get(), &s, &b, -1, record, &calls), -EINVAL);
    g_assert_null(s);
    g_assert_null(barrier_event_source_unref(nullptr));
    ASSERT_RET(wait_kind_from_c(&b, 4, 0), -EINVAL);
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
    test_add_fd_checked("/barrier-sd-event/abortion", test_abortion);
    test_add_fd_checked("/barrier-sd-event/many-children", test_many_children);
    test_add_fd_checked("/barrier-sd-event/drop-source-first", test_drop_source_first);
    test_add_fd_checked("/barrier-sd-event/destroy-barrier-first", test_destroy_barrier_first);
    test_add_fd_checked("/barrier-sd-event/floating", test_floating);
    test_add_fd_checked("/barrier-sd-event/unref-in-handler", test_unref_in_handler);
    test_add_fd_checked("/barrier-sd-event/errors", test_errors);
    return g_test_run();
}
