/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sd-event adapter: barrier event sources driven by a real sd-event
 * loop, against real child processes. Every order is made by a handshake
 * (the barrier itself, or a pipe); timeouts are only watchdogs. */

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ipcbarrier/barrier-sd-event.h>
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

/* The functions as C callers see them, who may pass any int as a kind:
 * in C++ a value outside the enumerators cannot even be formed. */
template <typename C, typename F>
C as_called_from_c(F *fn) {
    return reinterpret_cast<C>(reinterpret_cast<void (*)()>(fn));
}
const auto wait_kind_from_c =
    as_called_from_c<int (*)(Barrier *, int, uint64_t)>(barrier_wait_kind_timeout);
const auto event_add_from_c =
    as_called_from_c<int (*)(sd_event *, BarrierEventSource **, Barrier *, int,
                             barrier_event_handler_t, void *)>(barrier_event_add);

void assert_same_fds(const FdSnapshot *before) {
    FdSnapshot now;
    fd_snapshot(&now);
    g_assert_cmpint(fd_snapshot_diff(before, &now), ==, -1);
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
    /* two places and an abortion; the handler stops at the 1 */
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
};

struct Crowd {
    sd_event *e = nullptr;
    int n_done = 0;
    int n_peers = 0;
};

void peer_done(Peer *p) {
    g_assert_false(p->done);
    p->done = true;
    if (++p->crowd->n_done == p->crowd->n_peers) ASSERT_OK(sd_event_exit(p->crowd->e, 0));
}

int on_peer(BarrierEventSource *, Barrier *b, int result, void *userdata) {
    auto *p = static_cast<Peer *>(userdata);
    g_assert_false(p->done);
    g_assert_cmpint(p->n, <, 8);
    p->results[p->n++] = result;
    if (result <= 0) {
        peer_done(p);
        return 0; /* must change nothing */
    }
    if (p->victim) {
        /* mid-way: the child waits in its first place_and_sync */
        g_assert_cmpint(kill(p->pid, SIGKILL), ==, 0);
        return 0;
    }
    if (p->pattern == ABORTION) {
        peer_done(p);
        return -ECANCELED;
    }
    g_assert_true(barrier_place(b));
    return 0;
}

int count_open_fds() {
    DIR *d = opendir("/proc/self/fd");
    g_assert_nonnull(d);
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
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
    int fds_before = count_open_fds();

    sd_event *e = nullptr;
    ASSERT_OK(sd_event_new(&e));
    sd_event_source *watchdog = nullptr;
    ASSERT_OK(sd_event_add_time_relative(
        e, &watchdog, CLOCK_MONOTONIC, static_cast<uint64_t>(watchdog_ms()) * 1000, 0,
        [](sd_event_source *, uint64_t, void *) -> int {
            g_test_message("watchdog: the loop waited for more than %d ms", watchdog_ms());
            g_assert_not_reached();
        },
        nullptr));

    Crowd crowd;
    crowd.e = e;
    crowd.n_peers = N;
    std::vector<Peer> peers(N);
    std::vector<BarrierEventSource *> sources(N, nullptr);
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
        ASSERT_OK(barrier_event_add(e, i % 2 ? &sources[i] : nullptr, &p.b, pattern_kind[p.pattern],
                                    on_peer, &p));
    }

    ASSERT_OK(sd_event_loop(e));
    g_assert_cmpint(crowd.n_done, ==, N);

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

    for (int i = 0; i < N; i++) {
        g_assert_null(barrier_event_source_unref(sources[i]));
        barrier_destroy(&peers[i].b);
    }
    sd_event_source_disable_unref(watchdog);
    sd_event_unref(e);
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
    calls.stop_after = false;
    BarrierEventSource *s = add(loop, &b, BARRIER_WAIT_NEXT, &calls);
    loop.drain();
    g_assert_cmpint(calls.n, ==, 0);

    barrier_destroy(&b);
    loop.run_until(&calls.quit);
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

    loop.drain();
    g_assert_cmpint(calls.n, ==, 1);
    g_assert_null(barrier_event_source_unref(s));
    close(report[0]);
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
