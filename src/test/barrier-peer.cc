/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "barrier-peer.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcbarrier/fd-util.hh>

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

pid_t fork_cxx_peer(ipcbarrier::Barrier *b, ChildFn fn, int arg) {
    ASSERT_OK(ipcbarrier::Barrier::create(b));
    pid_t pid = fork_test_child();
    if (pid == 0) {
        if (b->set_role(ipcbarrier::BarrierRole::child) < 0) child_fail("set_role failed");
        fn(b->c_barrier(), arg);
        _exit(0);
    }
    ASSERT_OK(b->set_role(ipcbarrier::BarrierRole::parent));
    return pid;
}

pid_t fork_peer_with_pipe(Barrier *b, ChildFn fn, PeerPipe child_end, int *ret_fd) {
    int p[2];
    g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
    const int child = child_end == PeerPipe::CHILD_READS ? 0 : 1;
    pid_t pid = fork_peer(b, fn, p[child]);
    close(p[child]);
    *ret_fd = p[1 - child];
    return pid;
}

void assert_peer_reported(int fd, char expected) {
    g_assert_true(wait_readable(fd, watchdog_ms()));
    char c;
    g_assert_cmpint(read(fd, &c, 1), ==, 1);
    g_assert_cmpint(c, ==, expected);
}

void assert_same_fds(const FdSnapshot *before) {
    FdSnapshot now;
    fd_snapshot(&now);
    g_assert_cmpint(fd_snapshot_diff(before, &now), ==, -1);
}

void assert_no_new_fds(const FdSnapshot *before) {
    FdSnapshot now;
    fd_snapshot(&now);
    for (int fd = 0; fd < FD_SNAPSHOT_MAX; fd++) {
        uint64_t bit = UINT64_C(1) << (fd % 64);
        if (now.open[fd / 64] & bit) g_assert_true(before->open[fd / 64] & bit);
    }
}

int count_open_fds() {
    DIR *d = opendir("/proc/self/fd");
    g_assert_nonnull(d);
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

void keep_only_barrier_fds(Barrier *b, int extra) {
    int keep[4];
    int n = barrier_get_fds(b, keep);
    /* at most 3, which also tells the compiler that keep is large enough */
    if (n < 0 || n > 3) child_fail("barrier_get_fds failed");
    if (extra >= 0) keep[n++] = extra;
    std::sort(keep, keep + n);
    if (ipcbarrier::close_all_fds_sorted({keep, static_cast<size_t>(n)}) < 0)
        child_fail("close_all_fds_sorted failed");
}

void idle_child(Barrier *b, int) {
    keep_only_barrier_fds(b);
    CHILD_ASSERT(barrier_wait_abortion(b));
}

void active_child(Barrier *b, int) {
    keep_only_barrier_fds(b);
    CHILD_ASSERT(barrier_place(b));
    CHILD_ASSERT(barrier_wait_abortion(b));
}

void assert_cost_per_event(const SyscallCounts *counts) {
    g_test_message(
        "%d sources, %d sync points, %d other wake-ups: %ld syscalls, %ld ppoll(), "
        "%ld polls of barrier fds, "
        "%ld read() of barrier fds",
        COST_N_PEERS, COST_N_ACTIVE, COST_N_WAKEUPS, counts->total, counts->ppoll,
        counts->marked_polls, counts->marked_reads);
    g_assert_cmpint(counts->marked_polls, >=, COST_N_ACTIVE);
    g_assert_cmpint(counts->marked_polls, <=, COST_PER_EVENT * COST_N_ACTIVE);
    g_assert_cmpint(counts->marked_reads, >=, COST_N_ACTIVE);
    g_assert_cmpint(counts->marked_reads, <=, COST_PER_EVENT * COST_N_ACTIVE);
}

namespace {

/* The tracee's end of the pipe that carries the marked fds to the tracer. */
int trace_report_fd = -1;

/* ptrace(2), which must work. */
long ptrace_checked(enum __ptrace_request request, pid_t pid, void *addr, long data) {
    long r = ptrace(request, pid, addr, data);
    if (r < 0) {
        g_test_message("ptrace(%d) failed: %s", static_cast<int>(request), g_strerror(errno));
        g_assert_not_reached();
    }
    return r;
}

/* What the tracer learns while the tracee runs; which fds count is known
 * only at its end. */
struct Trace {
    SyscallCounts counts;
    long reads_by_fd[FD_SNAPSHOT_MAX] = {};
    std::vector<std::pair<int, int>> two_fd_polls; /* the fds of each poll of two */
};

/* The fds of a poll() or ppoll() of two fds, read from the tracee. */
bool read_two_pollfds(pid_t pid, uint64_t address, std::pair<int, int> *ret) {
    struct pollfd pfd[2];
    struct iovec local = {pfd, sizeof pfd};
    struct iovec remote = {reinterpret_cast<void *>(address), sizeof pfd};
    if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != sizeof pfd) return false;
    *ret = {pfd[0].fd, pfd[1].fd};
    return true;
}

/* Follows the tracee from its first stop (trace_begin()) to its second
 * (trace_end()), counting syscall entries, and lets it go. Returns -1 then,
 * or the wait status of a tracee that ended before (it is reaped). */
int count_syscalls(pid_t pid, Trace *trace) {
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    if (!WIFSTOPPED(status)) return status;
    g_assert_cmpint(WSTOPSIG(status), ==, SIGSTOP);
    ptrace_checked(PTRACE_SETOPTIONS, pid, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL);
    long deliver = 0; /* the first SIGSTOP is only the tracee's marker */
    for (;;) {
        ptrace_checked(PTRACE_SYSCALL, pid, nullptr, deliver);
        deliver = 0;
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        if (!WIFSTOPPED(status)) return status;
        const int sig = WSTOPSIG(status);
        if (sig == SIGSTOP) break; /* trace_end() */
        if (sig != (SIGTRAP | 0x80)) {
            deliver = sig; /* a signal meant for the tracee */
            continue;
        }
        struct __ptrace_syscall_info info;
        /* valgrind does not know this request: what the kernel writes
         * would count as uninitialized. */
        memset(&info, 0, sizeof info);
        ptrace_checked(PTRACE_GET_SYSCALL_INFO, pid, reinterpret_cast<void *>(sizeof info),
                       reinterpret_cast<long>(&info));
        if (info.op != PTRACE_SYSCALL_INFO_ENTRY) continue;
        const auto nr = info.entry.nr;
        const auto *args = info.entry.args;
        trace->counts.total++;
        if (nr == SYS_ppoll) trace->counts.ppoll++;
        if ((nr == SYS_poll || nr == SYS_ppoll) && args[1] == 2) {
            std::pair<int, int> fds;
            g_assert_true(read_two_pollfds(pid, args[0], &fds));
            trace->two_fd_polls.push_back(fds);
        }
        if (nr == SYS_read && args[0] < FD_SNAPSHOT_MAX) trace->reads_by_fd[args[0]]++;
    }
    ptrace_checked(PTRACE_DETACH, pid, nullptr, 0);
    return -1;
}

}  // namespace

bool trace_syscalls(void (*scenario)(void *arg), void *arg, SyscallCounts *ret) {
    int report[2];
    g_assert_cmpint(pipe2(report, O_CLOEXEC), ==, 0);
    pid_t pid = fork_test_child();
    if (pid == 0) {
        close(report[0]);
        trace_report_fd = report[1];
        if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) child_fail("dup2 failed");
        scenario(arg);
        _exit(0);
    }
    close(report[1]);

    auto trace = std::make_unique<Trace>();
    const int ended = count_syscalls(pid, trace.get());
    if (ended != -1) {
        close(report[0]);
        if (WIFEXITED(ended) && WEXITSTATUS(ended) == 77) {
            g_test_skip("this process may not trace its child (ptrace(2) is not permitted)");
            return false;
        }
        g_test_message("the traced child ended early, with wait status %#x", ended);
        g_assert_not_reached();
    }
    FdSnapshot marked;
    g_assert_true(wait_readable(report[0], watchdog_ms()));
    g_assert_cmpint(read(report[0], &marked, sizeof marked), ==, sizeof marked);
    close(report[0]);
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    auto is_marked = [&marked](int fd) {
        return fd >= 0 && fd < FD_SNAPSHOT_MAX && ((marked.open[fd / 64] >> (fd % 64)) & 1);
    };
    for (int fd = 0; fd < FD_SNAPSHOT_MAX; fd++)
        if (is_marked(fd)) trace->counts.marked_reads += trace->reads_by_fd[fd];
    for (const auto &[a, b] : trace->two_fd_polls)
        if (is_marked(a) && is_marked(b)) trace->counts.marked_polls++;
    *ret = trace->counts;
    return true;
}

void trace_begin() {
    if (ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) < 0) {
        static const char msg[] = "test child: PTRACE_TRACEME failed: skipped\n";
        (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
        _exit(77);
    }
    /* The tracer sees the stop and follows from here. */
    if (raise(SIGSTOP) != 0) child_fail("raise(SIGSTOP) failed");
}

void trace_end(const FdSnapshot *marked) {
    CHILD_ASSERT(write(trace_report_fd, marked, sizeof *marked) == sizeof *marked);
    close(trace_report_fd);
    /* The tracer lets go at this stop. */
    if (raise(SIGSTOP) != 0) child_fail("raise(SIGSTOP) failed");
}

void fd_mark_barrier(FdSnapshot *snapshot, const Barrier *b) {
    int fds[3];
    int n = barrier_get_fds(b, fds);
    g_assert_cmpint(n, >=, 2);
    for (int i = 0; i < n; i++) {
        g_assert_cmpint(fds[i], <, FD_SNAPSHOT_MAX);
        snapshot->open[fds[i] / 64] |= UINT64_C(1) << (fds[i] % 64);
    }
}

void crowd_child(Barrier *b, int pattern) {
    /* Only our own barrier: the parent's ends of the others stay theirs. */
    keep_only_barrier_fds(b);

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

void crowd_peer_start(CrowdPeer *p, int i, int victim) {
    p->pattern = i % N_PATTERNS;
    p->victim = i == victim;
    p->pid = fork_peer(&p->b, crowd_child, p->pattern);
    /* The waits for the parent's side: SYNC and SYNC_NEXT start ahead by
     * one, which the child's first wait consumes. */
    if (p->pattern == SYNC_THEN_EXIT || p->pattern == SYNC_NEXT_THEN_ABORT)
        g_assert_true(barrier_place(&p->b));
}

bool crowd_fd_limit_raise(int n_peers, struct rlimit *ret_old) {
    struct rlimit old_limit;
    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &old_limit), ==, 0);
    const rlim_t needed = 5 * static_cast<rlim_t>(n_peers) + 64;
    if (old_limit.rlim_cur < needed) {
        if (old_limit.rlim_max < needed) {
            char *msg = g_strdup_printf("RLIMIT_NOFILE is too low for %d barriers", n_peers);
            g_test_skip(msg);
            g_free(msg);
            return false;
        }
        struct rlimit raised = {old_limit.rlim_max, old_limit.rlim_max};
        g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &raised), ==, 0);
    }
    *ret_old = old_limit;
    return true;
}

bool crowd_peer_answer(CrowdPeer *p, Barrier *b, int result) {
    g_assert_false(p->done);
    g_assert_cmpint(p->n, <, 8);
    p->results[p->n++] = result;
    if (result <= 0) {
        p->done = true;
        return true; /* must change nothing */
    }
    if (p->victim) {
        /* mid-way: the child waits in its first place_and_sync */
        g_assert_cmpint(kill(p->pid, SIGKILL), ==, 0);
        return true;
    }
    if (p->pattern == ABORTION) {
        p->done = true;
        return false;
    }
    g_assert_true(barrier_place(b));
    return true;
}

void crowd_peer_check(const CrowdPeer *p, int i) {
    static const int four[] = {1, 1, 1, 0}, two[] = {1, 0}, one[] = {1};
    const int *expected;
    int n;
    if (p->victim) {
        expected = two, n = 2;
    } else if (p->pattern == NEXT_THEN_ABORT || p->pattern == SYNC_THEN_EXIT) {
        expected = four, n = 4;
    } else if (p->pattern == SYNC_NEXT_THEN_ABORT) {
        expected = two, n = 2;
    } else {
        expected = one, n = 1;
    }
    if (p->n != n) g_test_message("peer %d (pattern %d): %d results", i, p->pattern, p->n);
    g_assert_cmpint(p->n, ==, n);
    for (int k = 0; k < n; k++) g_assert_cmpint(p->results[k], ==, expected[k]);
    g_assert_cmpint(wait_exit_status(p->pid), ==, p->victim ? 128 + SIGKILL : 0);
}
