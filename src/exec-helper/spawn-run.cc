/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "spawn-plan.hh"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <ctime>
#include <initializer_list>

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "raw-syscall.hh"

/* Everything here runs in the child between clone() and execve(), on every
 * path: no allocation, no lock, no exception, no libc call that stores
 * errno (raw-syscall.hh says why), and nothing written but the stack and
 * what SpawnPlan says may be written. The barrier calls are the exception
 * to "no libc-style call": they exist only on the paths where the child has
 * memory of its own. */

namespace ipcbarrier::detail {
namespace {

int sys_close(int fd) noexcept {
    /* Never retried: the number is released even when close() says EINTR. */
    return static_cast<int>(raw_syscall(SYS_close, fd));
}

int sys_fcntl(int fd, int cmd, long arg) noexcept {
    return static_cast<int>(raw_syscall(SYS_fcntl, fd, cmd, arg));
}

/* A close-on-exec copy of fd at floor or above, where no child fd is. */
int dup_above(int fd, int floor) noexcept {
    return sys_fcntl(fd, F_DUPFD_CLOEXEC, floor);
}

/* fd moved to floor or above (closing the old number), or left where it
 * is if it is there already. Returns the number, or -errno. */
int move_above(int fd, int floor) noexcept {
    if (fd >= floor) return fd;
    int copy = dup_above(fd, floor);
    if (copy < 0) return copy;
    (void)sys_close(fd);
    return copy;
}

/* The fds the child holds for the start itself, sorted, all at fd_floor or
 * above (so above every kept child fd). */
struct OwnFds {
    int fd[5];
    size_t n = 0;

    void add(int f) noexcept {
        size_t i = n++;
        for (; i > 0 && fd[i - 1] > f; i--) fd[i] = fd[i - 1];
        fd[i] = f;
    }
    [[nodiscard]] bool contains(int f) const noexcept { return std::find(fd, fd + n, f) != fd + n; }
};

struct Child {
    const SpawnPlan *plan;
    Barrier *barrier; /* NULL on the vfork path */
    OwnFds own;
    int exec_fd = -1; /* the close-on-exec copy of plan->exec_fd */
};

/* Turns a callback's negative result into a positive errno. */
int errno_of(int r) noexcept {
    return r < 0 && r >= -BARRIER_ABORT_ERRNO_MAX ? -r : EINVAL;
}

void fail(Child *c, IpcbSpawnStep step, int error) noexcept {
    if (error <= 0 || error > BARRIER_ABORT_ERRNO_MAX) error = EINVAL;
    c->plan->status->fail_errno = error;
    c->plan->status->fail_step = step;
    /* The parent learns it at once, with the reason, instead of at our
     * exit. */
    if (c->barrier) (void)barrier_abort_errno(c->barrier, error);
}

/* The parent may hold the start's fds at numbers the mapping gives to
 * child fds, or at 0-2: move them to fd_floor or above before anything
 * is put in place. exec_fd is the caller's and may be a parent fd of the
 * mapping too, so it is copied rather than moved. */
int move_own_fds(Child *c) noexcept {
    const SpawnPlan *p = c->plan;
    if (c->barrier) {
        int r = barrier_move_fds(c->barrier, p->fd_floor);
        if (r < 0) return r;
        int fds[3];
        int n = barrier_get_fds(c->barrier, fds);
        if (n < 0) return n;
        for (int i = 0; i < n; i++) c->own.add(fds[i]);
    }
    if (p->report_fd >= 0) {
        int moved = move_above(p->report_fd, p->fd_floor);
        if (moved < 0) return moved;
        c->own.add(moved);
    }
    if (p->exec_fd >= 0) {
        c->exec_fd = dup_above(p->exec_fd, p->fd_floor);
        if (c->exec_fd < 0) return c->exec_fd;
        c->own.add(c->exec_fd);
    }
    return 0;
}

/* A handler cannot survive execve(), and until then it would run in the
 * child (on the vfork path: on the parent's memory) if a signal came once
 * the mask is restored. So caught signals always go back to SIG_DFL;
 * ignored ones too unless the caller keeps them. The kernel's signals are
 * 1..64; SIGKILL and SIGSTOP cannot be changed. */
int reset_signals(bool keep_ignored) noexcept {
    for (int sig = 1; sig <= 64; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        Disposition d = Disposition::dfl;
        int r = raw_signal_get(sig, &d);
        /* A signal reserved by a supervisor (valgrind) cannot be caught by
         * us either. */
        if (r == -EINVAL) continue;
        if (r < 0) return r;
        if (d == Disposition::dfl || (d == Disposition::ign && keep_ignored)) continue;
        r = raw_signal_reset(sig);
        if (r < 0) return r;
    }
    return 0;
}

/* Sets the parent-death signal and checks that the parent is still the
 * one that started us: if it died first, the signal will never come. */
int set_parent_death_signal(const SpawnPlan *p) noexcept {
    long r = raw_syscall(SYS_prctl, PR_SET_PDEATHSIG, p->parent_death_signal, 0, 0, 0);
    if (r < 0) return static_cast<int>(r);
    if (raw_syscall(SYS_getppid) != p->parent_pid) return -ESRCH;
    return 0;
}

int join_cgroup(int cgroup_fd) noexcept {
    int fd = static_cast<int>(
        raw_syscall(SYS_openat, cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC, 0));
    if (fd < 0) return fd;
    /* "0" is the writing process itself. */
    long n = raw_syscall(SYS_write, fd, "0", 1);
    (void)sys_close(fd);
    if (n < 0) return static_cast<int>(n);
    return n == 1 ? 0 : -EIO;
}

int set_rlimits(const SpawnPlan *p) noexcept {
    for (size_t i = 0; i < p->n_rlimits; i++) {
        /* The kernel's struct rlimit64, which PlanRlimit holds already. */
        const uint64_t limit[2] = {p->rlimits[i].cur, p->rlimits[i].max};
        long r = raw_syscall(SYS_prlimit64, 0, p->rlimits[i].resource, limit, nullptr);
        if (r < 0) return static_cast<int>(r);
    }
    return 0;
}

int run_fd_moves(const SpawnPlan *p) noexcept {
    int saved = -1, null = -1;
    for (size_t i = 0; i < p->n_fd_moves; i++) {
        const PlanFdMove &m = p->fd_moves[i];
        long r = 0;
        switch (m.op) {
            case FdOp::dup:
                /* dup3() without O_CLOEXEC: the copy is inherited. */
                r = raw_syscall(SYS_dup3, m.from, m.to, 0);
                break;
            case FdOp::inherit:
                r = sys_fcntl(m.to, F_SETFD, 0);
                break;
            case FdOp::save:
                r = saved = dup_above(m.from, p->fd_floor);
                break;
            case FdOp::restore:
                r = raw_syscall(SYS_dup3, saved, m.to, 0);
                (void)sys_close(saved);
                saved = -1;
                break;
            case FdOp::open_null:
                /* open() takes the lowest free number, which may be a child
                 * fd that a later move writes: move it above them all. */
                r = raw_syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_NOCTTY | O_CLOEXEC,
                                0);
                if (r >= 0) r = null = move_above(static_cast<int>(r), p->fd_floor);
                break;
            case FdOp::null:
                r = raw_syscall(SYS_dup3, null, m.to, 0);
                break;
            case FdOp::close_null:
                (void)sys_close(null);
                null = -1;
                break;
        }
        if (r < 0) return static_cast<int>(r);
    }
    return 0;
}

/* The fds that survive closing: 0-2 and the child fds (sorted, below
 * fd_floor), then the start's own (sorted, at fd_floor or above). With
 * IPCB_SPAWN_KEEP_FDS only the start's own are spared, and only
 * close-on-exec fds are closed. */
struct CloseSet {
    const SpawnPlan *plan;
    const OwnFds *own;
    bool only_cloexec;

    [[nodiscard]] bool kept(int fd) const noexcept {
        if (own->contains(fd)) return true;
        if (only_cloexec) return false;
        return fd <= STDERR_FILENO ||
               std::binary_search(plan->keep_fds, plan->keep_fds + plan->n_keep_fds, fd);
    }
    /* Whether fd, which is not kept, must go. */
    [[nodiscard]] bool closes(int fd) const noexcept {
        if (!only_cloexec) return true;
        int flags = sys_fcntl(fd, F_GETFD, 0);
        return flags >= 0 && (flags & FD_CLOEXEC);
    }
};

/* close_range() over the gaps between the kept fds: its cost does not
 * depend on how many fds the parent has. */
int close_by_range(const CloseSet &set) noexcept {
    unsigned start = STDERR_FILENO + 1;
    auto keep = [&start](int fd) noexcept -> int {
        unsigned u = static_cast<unsigned>(fd);
        if (u < start) return 0;
        if (u > start) {
            long r = raw_syscall(SYS_close_range, start, u - 1, 0U);
            if (r < 0) return static_cast<int>(r);
        }
        start = u + 1;
        return 0;
    };
    const SpawnPlan *p = set.plan;
    for (size_t i = 0; i < p->n_keep_fds; i++)
        if (int r = keep(p->keep_fds[i]); r < 0) return r;
    for (size_t i = 0; i < set.own->n; i++)
        if (int r = keep(set.own->fd[i]); r < 0) return r;
    return static_cast<int>(raw_syscall(SYS_close_range, start, ~0U, 0U));
}

/* The open fds as /proc lists them, read with getdents64() into the stack
 * (opendir() would allocate). */
int close_by_proc(const CloseSet &set) noexcept {
    int dir = static_cast<int>(
        raw_syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0));
    if (dir < 0) return dir;
    alignas(8) char buf[1024];
    for (;;) {
        long n = raw_syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n < 0) {
            (void)sys_close(dir);
            return static_cast<int>(n);
        }
        if (n == 0) break;
        for (long off = 0; off < n;) {
            auto *d = reinterpret_cast<struct dirent64 *>(buf + off);
            off += d->d_reclen;
            const char *c = d->d_name;
            if (*c < '0' || *c > '9') continue;
            long fd = 0;
            for (; *c >= '0' && *c <= '9' && fd <= INT_MAX; c++) fd = fd * 10 + (*c - '0');
            if (*c != '\0' || fd > INT_MAX || fd == dir) continue;
            int f = static_cast<int>(fd);
            /* Closing while reading is fine: the directory is indexed by
             * number, so the entries not read yet stay where they are. */
            if (!set.kept(f) && set.closes(f)) (void)sys_close(f);
        }
    }
    (void)sys_close(dir);
    return 0;
}

/* Without /proc nothing lists the open fds: try every number below the
 * hard RLIMIT_NOFILE (the open ones are below it unless it was lowered
 * while they were open). */
int close_by_loop(const CloseSet &set) noexcept {
    uint64_t limit[2];
    long r = raw_syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, nullptr, limit);
    if (r < 0) return static_cast<int>(r);
    uint64_t max = std::min<uint64_t>(limit[1], INT_MAX);
    for (uint64_t fd = 0; fd < max; fd++) {
        int f = static_cast<int>(fd);
        if (!set.kept(f) && set.closes(f)) (void)sys_close(f);
    }
    return 0;
}

/* Before the child waits at the barrier, so that it holds nothing that
 * tells others whether the parent lives: another child's barrier, the
 * parent's event-loop fds. */
int close_other_fds(const Child &c) noexcept {
    CloseSet set{c.plan, &c.own, static_cast<bool>(c.plan->flags & IPCB_SPAWN_KEEP_FDS)};
    int r = -ENOSYS;
    if (!set.only_cloexec) {
        r = close_by_range(set);
        /* An old kernel, or a seccomp filter that refuses close_range(). */
        if (r != -ENOSYS && r != -EPERM) return r;
    }
    r = close_by_proc(set);
    /* No /proc (early boot, chroot), or no fd left to read it with. */
    if (r != -ENOENT && r != -EACCES && r != -EMFILE && r != -ENFILE) return r;
    return close_by_loop(set);
}

int set_groups(const SpawnPlan *p) noexcept {
#ifdef SYS_setgroups32
    /* Where the plain call takes 16-bit ids. */
    constexpr long nr = SYS_setgroups32;
#else
    constexpr long nr = SYS_setgroups;
#endif
    return static_cast<int>(raw_syscall(nr, p->n_groups, p->groups));
}

/* The raw calls, not setresgid()/setresuid(): glibc's wrappers make every
 * thread of the process change ids with a signal, and on the vfork path the
 * other threads are the parent's. */
int set_gid(gid_t gid) noexcept {
#ifdef SYS_setresgid32
    constexpr long nr = SYS_setresgid32;
#else
    constexpr long nr = SYS_setresgid;
#endif
    return static_cast<int>(raw_syscall(nr, gid, gid, gid));
}

int set_uid(uid_t uid) noexcept {
#ifdef SYS_setresuid32
    constexpr long nr = SYS_setresuid32;
#else
    constexpr long nr = SYS_setresuid;
#endif
    return static_cast<int>(raw_syscall(nr, uid, uid, uid));
}

/* A POSIX timer that sends SIGKILL at deadline_usec on CLOCK_MONOTONIC:
 * it kills even a child that blocks every signal or is stuck in a step,
 * and execve() deletes it, so the program never sees it. */
int arm_deadline(uint64_t deadline_usec) noexcept {
    struct sigevent event = {};
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGKILL;
    int timer = -1; /* the kernel's timer id is an int */
    long r = raw_syscall(SYS_timer_create, CLOCK_MONOTONIC, &event, &timer);
    if (r < 0) return static_cast<int>(r);
    struct itimerspec at = {};
    at.it_value.tv_sec = static_cast<time_t>(deadline_usec / 1000000);
    at.it_value.tv_nsec = static_cast<long>(deadline_usec % 1000000 * 1000);
    return static_cast<int>(raw_syscall(SYS_timer_settime, timer, TIMER_ABSTIME, &at, nullptr));
}

}  // namespace

void plan_run(const SpawnPlan *p) noexcept {
    Child c{p, p->barrier, {}, -1};
    const uint64_t flags = p->flags;
    int r;
    auto at = [p](IpcbSpawnStep step) noexcept { p->status->step = step; };

    /* First, so that nothing after it can outlast the deadline: a step
     * stuck in the kernel, or a parent (on the vfork path, suspended)
     * that cannot kill us itself. */
    if (p->deadline_usec != 0) {
        at(IPCB_STEP_DEADLINE);
        if ((r = arm_deadline(p->deadline_usec)) < 0) return fail(&c, IPCB_STEP_DEADLINE, -r);
    }

    at(IPCB_STEP_FDS);
    if ((r = move_own_fds(&c)) < 0) return fail(&c, IPCB_STEP_FDS, -r);

    at(IPCB_STEP_SIGNALS);
    if ((r = reset_signals(flags & IPCB_SPAWN_KEEP_SIGNALS)) < 0)
        return fail(&c, IPCB_STEP_SIGNALS, -r);

    if (p->parent_death_signal != 0) {
        at(IPCB_STEP_PARENT_DEATH);
        if ((r = set_parent_death_signal(p)) < 0) return fail(&c, IPCB_STEP_PARENT_DEATH, -r);
    }

    if (flags & IPCB_SPAWN_NEW_SESSION) {
        at(IPCB_STEP_SESSION);
        if ((r = static_cast<int>(raw_syscall(SYS_setsid))) < 0)
            return fail(&c, IPCB_STEP_SESSION, -r);
    } else if (flags & IPCB_SPAWN_NEW_PROCESS_GROUP) {
        /* A new session is a new process group already, and setpgid()
         * refuses a session leader. */
        at(IPCB_STEP_PROCESS_GROUP);
        if ((r = static_cast<int>(raw_syscall(SYS_setpgid, 0, 0))) < 0)
            return fail(&c, IPCB_STEP_PROCESS_GROUP, -r);
    }

    if (p->cgroup_fd >= 0) {
        at(IPCB_STEP_CGROUP);
        if ((r = join_cgroup(p->cgroup_fd)) < 0) return fail(&c, IPCB_STEP_CGROUP, -r);
    }

    /* Before the fds: RLIMIT_NOFILE may have to grow for the child fds. */
    if (p->n_rlimits > 0) {
        at(IPCB_STEP_RLIMITS);
        if ((r = set_rlimits(p)) < 0) return fail(&c, IPCB_STEP_RLIMITS, -r);
    }

    at(IPCB_STEP_FDS);
    if ((r = run_fd_moves(p)) < 0) return fail(&c, IPCB_STEP_FDS, -r);

    /* Before the ids change: a process that dropped its ids may not read
     * its own /proc entries any more, which the fallbacks need. */
    at(IPCB_STEP_CLOSE_FDS);
    if ((r = close_other_fds(c)) < 0) return fail(&c, IPCB_STEP_CLOSE_FDS, -r);

    if (flags & IPCB_SPAWN_SET_GROUPS) {
        at(IPCB_STEP_GROUPS);
        if ((r = set_groups(p)) < 0) return fail(&c, IPCB_STEP_GROUPS, -r);
    }
    if (flags & IPCB_SPAWN_SET_GID) {
        at(IPCB_STEP_GID);
        if ((r = set_gid(p->gid)) < 0) return fail(&c, IPCB_STEP_GID, -r);
    }
    if (flags & IPCB_SPAWN_SET_UID) {
        at(IPCB_STEP_UID);
        if ((r = set_uid(p->uid)) < 0) return fail(&c, IPCB_STEP_UID, -r);
    }
    /* A change of the effective ids clears the parent-death signal: set it
     * again, and check again that the parent did not die meanwhile. */
    if (p->parent_death_signal != 0 && (flags & (IPCB_SPAWN_SET_UID | IPCB_SPAWN_SET_GID))) {
        at(IPCB_STEP_PARENT_DEATH);
        if ((r = set_parent_death_signal(p)) < 0) return fail(&c, IPCB_STEP_PARENT_DEATH, -r);
    }

    if (flags & IPCB_SPAWN_SET_UMASK) {
        at(IPCB_STEP_UMASK);
        (void)raw_syscall(SYS_umask, p->umask);
    }

    if (p->cwd) {
        at(IPCB_STEP_CWD);
        if ((r = static_cast<int>(raw_syscall(SYS_chdir, p->cwd))) < 0)
            return fail(&c, IPCB_STEP_CWD, -r);
    }

    if (flags & IPCB_SPAWN_NO_NEW_PRIVS) {
        at(IPCB_STEP_NO_NEW_PRIVS);
        if ((r = static_cast<int>(raw_syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))) < 0)
            return fail(&c, IPCB_STEP_NO_NEW_PRIVS, -r);
    }

    if (p->child_callback) {
        at(IPCB_STEP_CHILD_CALLBACK);
        if ((r = p->child_callback(p->child_callback_userdata)) < 0)
            return fail(&c, IPCB_STEP_CHILD_CALLBACK, errno_of(r));
    }

    if (c.barrier) {
        at(IPCB_STEP_BARRIER);
        if (!barrier_place_and_sync(c.barrier)) {
            int reason = barrier_get_abort_errno(c.barrier);
            return fail(&c, IPCB_STEP_BARRIER, reason > 0 ? reason : ECANCELED);
        }
    }

    if (flags & IPCB_SPAWN_READY) {
        at(IPCB_STEP_HANDOVER);
        /* Writes the value after "IPCBARRIER=" and makes exactly the
         * barrier's fds survive execve(). */
        r = barrier_serialize(c.barrier, p->record_slot + sizeof BARRIER_ENV, BARRIER_RECORD_MAX);
        if (r < 0) return fail(&c, IPCB_STEP_HANDOVER, -r);
    }

    /* Only now: the parent blocked every signal around creating us, and
     * a signal that arrives from here on meets default dispositions. */
    at(IPCB_STEP_SIGNALS);
    if ((r = raw_sigmask_set(&p->sigmask)) < 0) return fail(&c, IPCB_STEP_SIGNALS, -r);

    at(IPCB_STEP_EXEC);
    if (c.exec_fd >= 0)
        r = static_cast<int>(
            raw_syscall(SYS_execveat, c.exec_fd, "", p->argv, p->envp, AT_EMPTY_PATH));
    else
        r = static_cast<int>(raw_syscall(SYS_execve, p->path, p->argv, p->envp));
    fail(&c, IPCB_STEP_EXEC, -r);
}

}  // namespace ipcbarrier::detail
