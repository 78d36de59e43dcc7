/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The barrier's C++ interface against the documented cases (played by
 * barrier-harness.c), plus what only the C++ interface has. */

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <utility>

#include <fcntl.h>
#include <glib.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>

#include <sys/prctl.h>
#include <sys/wait.h>

#include <ipcbarrier/barrier.hh>
#include <ipcbarrier/fd-util.hh>

#include "barrier-harness.h"
#include "test-util.h"

namespace {

/* Inside the namespace: at global scope the name would meet the C struct. */
using ipcbarrier::Barrier;
using ipcbarrier::BarrierRole;

Barrier *as(void *b) {
    return static_cast<Barrier *>(b);
}
const Barrier *as(const void *b) {
    return static_cast<const Barrier *>(b);
}

const BarrierBackend cxx_backend = {
    .alloc = []() -> void * { return new Barrier(); },
    .free = [](void *b) { delete as(b); },
    .create = [](void *b) { return Barrier::create(as(b)); },
    .is_empty = [](const void *b) { return !as(b)->valid(); },
    .set_role =
        [](void *b, bool child) {
            return as(b)->set_role(child ? BarrierRole::child : BarrierRole::parent);
        },
    .destroy = [](void *b) { as(b)->destroy(); },
    .place = [](void *b) { return as(b)->place(); },
    .abort = [](void *b) { return as(b)->abort(); },
    .abort_errno = [](void *b, int err) { return as(b)->abort_errno(err); },
    .get_abort_errno = [](const void *b) { return as(b)->get_abort_errno(); },
    .wait_next = [](void *b) { return as(b)->wait_next(); },
    .wait_abortion = [](void *b) { return as(b)->wait_abortion(); },
    .sync_next = [](void *b) { return as(b)->sync_next(); },
    .sync = [](void *b) { return as(b)->sync(); },
    .place_and_sync = [](void *b) { return as(b)->place_and_sync(); },
    .i_aborted = [](const void *b) { return as(b)->i_aborted(); },
    .they_aborted = [](const void *b) { return as(b)->they_aborted(); },
    .we_aborted = [](const void *b) { return as(b)->we_aborted(); },
    .is_aborted = [](const void *b) { return as(b)->is_aborted(); },
    /* Both C++ forms are used: Deadline where there is no limit, durations
     * for the rest. */
    .wait_next_timeout =
        [](void *b, uint64_t usec) {
            return usec == UINT64_MAX ? as(b)->wait_next_until(ipcbarrier::Deadline::never())
                                      : as(b)->wait_next_for(std::chrono::microseconds(usec));
        },
    .wait_abortion_timeout =
        [](void *b, uint64_t usec) {
            return usec == UINT64_MAX ? as(b)->wait_abortion_until(ipcbarrier::Deadline::never())
                                      : as(b)->wait_abortion_for(std::chrono::microseconds(usec));
        },
    .sync_next_timeout =
        [](void *b, uint64_t usec) {
            return usec == UINT64_MAX ? as(b)->sync_next_until(ipcbarrier::Deadline::never())
                                      : as(b)->sync_next_for(std::chrono::microseconds(usec));
        },
    .sync_timeout =
        [](void *b, uint64_t usec) {
            return usec == UINT64_MAX ? as(b)->sync_until(ipcbarrier::Deadline::never())
                                      : as(b)->sync_until(ipcbarrier::Deadline::after(usec));
        },
    .get_pollfds = [](const void *b, struct pollfd ret[2]) { return as(b)->get_pollfds(ret); },
    .serialize = [](void *b, char *buf, size_t size) { return as(b)->serialize(buf, size); },
    .serialize_env = [](void *b, const char *name) { return as(b)->serialize_env(name); },
    .deserialize_env = [](void *b,
                          const char *name) { return Barrier::deserialize_env(as(b), name); },
    .deserialize = [](void *b, const char *record,
                      pid_t owner) { return Barrier::deserialize(as(b), record, owner); },
};

bool fd_open(int fd) {
    return fcntl(fd, F_GETFD) >= 0;
}

/* Asked of the kernel, not of the object under test. */
int open_fd_count() {
    int n = 0;
    for (int fd = 0; fd < FD_SNAPSHOT_MAX; fd++) n += fd_open(fd);
    return n;
}

/* Ownership: moves transfer the fds, the moved-from object is empty, and
 * replacing or destroying a barrier closes exactly its three fds. */
void test_cxx_ownership() {
    FdSnapshot before, after;
    fd_snapshot(&before);
    int base = open_fd_count();
    {
        Barrier a;
        g_assert_false(a.valid());
        g_assert_cmpint(Barrier::create(&a), ==, 0);
        g_assert_true(a.valid());
        g_assert_cmpint(open_fd_count(), ==, base + 4);

        Barrier b(std::move(a));
        g_assert_false(a.valid()); /* a moved-from barrier is empty */
        g_assert_true(b.valid());
        g_assert_cmpint(open_fd_count(), ==, base + 4);
        g_assert_false(a.place());

        Barrier c;
        g_assert_cmpint(Barrier::create(&c), ==, 0);
        g_assert_cmpint(open_fd_count(), ==, base + 8);
        c = std::move(b); /* c's own fds are closed */
        g_assert_cmpint(open_fd_count(), ==, base + 4);
        g_assert_false(b.valid());

        /* create() into a live barrier replaces it, closing the old one */
        g_assert_cmpint(Barrier::create(&c), ==, 0);
        g_assert_cmpint(open_fd_count(), ==, base + 4);

        auto &alias = c;
        c = std::move(alias); /* self-move keeps the barrier */
        g_assert_true(c.valid());
        g_assert_cmpint(c.set_role(BarrierRole::parent), ==, 0);
        g_assert_cmpint(open_fd_count(), ==, base + 3);
        c.destroy();
        g_assert_false(c.valid());
        g_assert_cmpint(open_fd_count(), ==, base);
    }
    fd_snapshot(&after);
    g_assert_cmpint(fd_snapshot_diff(&before, &after), ==, -1);
}

/* The record round trip through the C++ interface, in a child: the copy
 * shares the original's fds, and only _exit() keeps two owners from
 * closing them twice. */
void test_cxx_record() {
    pid_t pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        Barrier a, b;
        char record[BARRIER_RECORD_MAX];
        if (Barrier::create(&a) < 0 || a.set_role(BarrierRole::child) < 0)
            child_fail("create failed");
        if (!a.place()) child_fail("place failed");
        if (a.serialize(record, 4) != -ENOBUFS) child_fail("a short buffer was accepted");
        if (a.serialize(record, sizeof record) <= 0) child_fail("serialize failed");
        if (Barrier::deserialize(&b, "ipcbarrier1", 0) != -EINVAL || b.valid())
            child_fail("a malformed record was accepted");
        if (Barrier::deserialize(&b, record, getppid()) != -ESRCH || b.valid())
            child_fail("a record for another process was accepted");
        if (Barrier::deserialize(&b, record) != 0 || !b.valid())
            child_fail("the record was refused");
        if (a.serialize_env() < 0) child_fail("serialize_env failed");
        if (Barrier::deserialize_env(&b) != 0 || getenv(BARRIER_ENV))
            child_fail("deserialize_env failed");
        _exit(0);
    }
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* usec_from_duration(): rounded up, clamped at both ends. */
void test_cxx_durations() {
    using namespace std::chrono_literals;
    using ipcbarrier::usec_from_duration;
    using ipcbarrier::USEC_INFINITY;
    g_assert_cmpuint(usec_from_duration(0s), ==, 0);
    g_assert_cmpuint(usec_from_duration(-5ms), ==, 0);
    g_assert_cmpuint(usec_from_duration(1ns), ==, 1);
    g_assert_cmpuint(usec_from_duration(1001ns), ==, 2);
    g_assert_cmpuint(usec_from_duration(3ms), ==, 3000);
    g_assert_cmpuint(usec_from_duration(std::chrono::duration<double>(0.5)), ==, 500000);
    g_assert_cmpuint(usec_from_duration(std::chrono::hours::max()), ==, USEC_INFINITY);
    g_assert_cmpuint(usec_from_duration(std::chrono::nanoseconds::max()), ==,
                     static_cast<uint64_t>(std::chrono::nanoseconds::max().count() / 1000 + 1));
}

/* What a child of the manager below reports through the report pipe. */
struct Report {
    int what; /* 'r' met the manager, 'a' saw it die (an int: no padding to leave unset) */
    int index;
    pid_t pid;
};

void report(int fd, char what, int index) {
    Report r = {what, index, getpid()};
    static_assert(sizeof r == 3 * sizeof(int));
    if (write(fd, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) child_fail("report");
}

/* A child of the manager: keeps only its own barrier's fds, stdio and the
 * report pipe (and, for the youngest, the pipe it idles on), meets the
 * manager, then waits for its next point, which never comes. */
[[noreturn]] void manager_child(Barrier *b, int index, int report_fd, int idle_fd) {
    if (b->set_role(BarrierRole::child) < 0) child_fail("set_role");
    int keep[3 + 3 + 2] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, report_fd};
    int n_keep = 4;
    if (idle_fd >= 0) keep[n_keep++] = idle_fd;
    int n = b->get_fds(keep + n_keep);
    if (n != 3) child_fail("get_fds");
    n_keep += n;
    std::sort(keep, keep + n_keep);
    if (ipcbarrier::close_all_fds_sorted(std::span<const int>(keep, n_keep)) < 0)
        child_fail("close_all_fds_sorted");
    if (!b->place_and_sync()) child_fail("the manager did not meet us");
    report(report_fd, 'r', index);
    if (idle_fd >= 0) {
        /* The youngest idles elsewhere while the others learn of the
         * manager's death; the test then lets it look too. */
        char c;
        while (read(idle_fd, &c, 1) < 0 && errno == EINTR) {
        }
    }
    if (b->wait_next()) child_fail("a point came from a dead manager");
    if (!b->they_aborted()) child_fail("no abortion");
    report(report_fd, 'a', index);
    _exit(0);
}

/* A manager with three children, each with its own barrier, is killed
 * while its youngest child idles: every child sees the abortion, the older
 * ones while the youngest still lives. That holds because each child closed
 * the manager's ends of its older siblings' barriers, which it inherited. */
void test_children_see_their_manager_die() {
    constexpr int N = 3;
    int reports[2], idle[2];
    g_assert_cmpint(pipe2(reports, O_CLOEXEC), ==, 0);
    g_assert_cmpint(pipe2(idle, O_CLOEXEC), ==, 0);
    /* The children are orphaned when the manager dies: they come back to
     * this process, which reaps them. */
    g_assert_cmpint(prctl(PR_SET_CHILD_SUBREAPER, 1), ==, 0);

    pid_t manager = fork_test_child();
    if (manager == 0) {
        close(reports[0]);
        close(idle[1]);
        Barrier barriers[N];
        for (int k = 0; k < N; k++) {
            if (Barrier::create(&barriers[k]) < 0) child_fail("create");
            pid_t pid = fork();
            if (pid < 0) child_fail("fork");
            if (pid == 0) manager_child(&barriers[k], k, reports[1], k == N - 1 ? idle[0] : -1);
            if (barriers[k].set_role(BarrierRole::parent) < 0) child_fail("set_role");
            if (!barriers[k].place_and_sync()) child_fail("a child did not meet us");
        }
        for (;;) pause(); /* until killed */
    }
    close(reports[1]);
    close(idle[0]);

    pid_t pids[N] = {};
    auto next_report = [&](char expected) {
        Report r;
        if (!wait_readable(reports[0], watchdog_ms())) {
            for (pid_t pid : pids)
                if (pid > 0) kill(pid, SIGKILL);
            g_error("watchdog: no report '%c' from the manager's children", expected);
        }
        g_assert_cmpint(read(reports[0], &r, sizeof r), ==, static_cast<ssize_t>(sizeof r));
        g_assert_cmpint(r.what, ==, expected);
        g_assert_cmpint(r.index, >=, 0);
        g_assert_cmpint(r.index, <, N);
        return r;
    };
    for (int i = 0; i < N; i++) {
        Report r = next_report('r');
        pids[r.index] = r.pid;
    }

    g_assert_cmpint(kill(manager, SIGKILL), ==, 0);
    g_assert_cmpint(wait_exit_status(manager), ==, 128 + SIGKILL);
    bool seen[N] = {};
    for (int i = 0; i < N - 1; i++) seen[next_report('a').index] = true;
    g_assert_false(seen[N - 1]);
    /* the youngest is alive all the while: it has not exited */
    siginfo_t info = {};
    g_assert_cmpint(waitid(P_PID, pids[N - 1], &info, WEXITED | WNOHANG | WNOWAIT), ==, 0);
    g_assert_cmpint(info.si_pid, ==, 0);
    close(idle[1]);
    g_assert_cmpint(next_report('a').index, ==, N - 1);

    for (pid_t pid : pids) g_assert_cmpint(wait_exit_status(pid), ==, 0);
    close(reports[0]);
    g_assert_cmpint(prctl(PR_SET_CHILD_SUBREAPER, 0), ==, 0);
}

}  // namespace

int main(int argc, char **argv) {
    harness_handle_exec(argc, argv, &cxx_backend);
    g_test_init(&argc, &argv, nullptr);
    harness_add_tests(&cxx_backend, "/barrier");
    g_test_add_func("/barrier/cxx-ownership", test_cxx_ownership);
    g_test_add_func("/barrier/cxx-record", test_cxx_record);
    g_test_add_func("/barrier/cxx-durations", test_cxx_durations);
    test_add_fd_checked("/barrier/children-see-their-manager-die",
                        test_children_see_their_manager_die);
    return g_test_run();
}
