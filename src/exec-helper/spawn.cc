/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/spawn.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <new>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcbarrier/fd-util.hh>
#include <ipcbarrier/pipe-util.hh>
#include <ipcbarrier/time-util.hh>

#include "clone3.hh"
#include "raw-syscall.hh"
#include "spawn-format.hh"
#include "spawn-helper.hh"
#include "spawn-plan.hh"

#if defined(__SANITIZE_ADDRESS__)
#define IPCB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IPCB_ASAN 1
#endif
#endif
#ifdef IPCB_ASAN
#include <sanitizer/asan_interface.h>
#endif
/* valgrind's client requests: a few instructions that do nothing when the
 * program does not run under valgrind. */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define IPCB_UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define IPCB_UNDER_VALGRIND() false
#endif

/* How a start goes.
 *
 * Every path compiles the options into a plan first (plan_compile()), in
 * the parent, before any child exists; the child only runs plan_run() on
 * it and _exit()s if that returns. The child tells what it is doing and
 * what failed through a SpawnStatus in memory the two share.
 *
 * vfork path: clone(CLONE_VM|CLONE_VFORK) on a stack of its own. The
 * parent is suspended until the child has executed or ended, so there is
 * nothing to wait for and no barrier; the status lives on the parent's
 * stack, which the child sees.
 *
 * fork path: fork(). The parent runs its setup while the child runs its
 * own, both meet at the barrier, then the parent waits for the end of a
 * close-on-exec report pipe whose write end only the child holds: its EOF
 * means that the child executed or ended, and the status page
 * (MAP_SHARED, so the forked copy writes where the parent reads) says
 * which. Every wait of the parent uses the pre-exec deadline.
 *
 * trampoline path: the fork path's parent with the vfork path's child.
 * The status and the plan's bytes (spawn-format.hh) are in a state file,
 * a memfd of the start's; the vfork child takes its side of the
 * barrier, writes its fd numbers into the helper's arguments, and
 * executes the helper program (exec-helper.cc) by the fd the library keeps
 * open (spawn-helper.hh). The caller is suspended only until then; the
 * helper reads the plan back, runs it and meets the caller, who meanwhile
 * runs its setup and waits for the report pipe's EOF as on the fork path.
 *
 * A child that did not make it to execve() is killed and reaped before
 * ipcb_spawn() returns, through its pidfd: nothing else of the caller's
 * children is ever waited for.
 *
 * AUTO takes the vfork path unless a side must meet the other: then the
 * fork path for a child callback, which needs a copy of the caller, and
 * the trampoline path otherwise (the fork path where the helper cannot be
 * opened). Under valgrind, which cannot share memory with a child, the
 * fork path stands in for the vfork path, and for the trampoline path
 * when AUTO chose it; an explicit trampoline runs as it is there, as
 * nothing of it depends on shared memory but the status page, a
 * MAP_SHARED memfd. */

namespace {

using ipcbarrier::Deadline;
using ipcbarrier::Pipe;
using ipcbarrier::PipeMode;
using ipcbarrier::UniqueFd;
using ipcbarrier::detail::HandedFd;
using ipcbarrier::detail::PlanContext;
using ipcbarrier::detail::PlanStorage;
using ipcbarrier::detail::SpawnPlan;
using ipcbarrier::detail::SpawnStatus;

/* Indexed by IpcbSpawnStep. The names are what the man page lists. */
constexpr const char *step_names[] = {
    "none",
    "prepare",
    "PATH search",
    "clone",
    "helper",
    "deadline",
    "signals",
    "parent death signal",
    "setsid",
    "setpgid",
    "cgroup",
    "setrlimit",
    "fds",
    "close fds",
    "setgroups",
    "setresgid",
    "setresuid",
    "umask",
    "chdir",
    "no_new_privs",
    "child callback",
    "barrier",
    "parent setup",
    "handover",
    "execve",
    "ready",
};
static_assert(std::size(step_names) == _IPCB_STEP_MAX);

const char *step_name(int step) noexcept {
    return step >= IPCB_STEP_NONE && step < _IPCB_STEP_MAX ? step_names[step] : nullptr;
}

/* The vfork child's stack. The plan executor needs less than 2 KiB, but
 * sanitizer builds put red zones around every frame and call into their
 * runtime; untouched pages cost nothing. */
constexpr size_t CHILD_STACK_SIZE = 64 * 1024;

/* The value of an enum a C caller passed: C allows any int there, while
 * C++ must not read a value outside the enumerators' range as the enum
 * type, so the bytes are read as the int they are. */
template <class E>
int enum_value(const E &e) noexcept {
    static_assert(sizeof(E) == sizeof(int));
    int v;
    std::memcpy(&v, &e, sizeof v);
    return v;
}

IpcbSpawnStep step_from(int step) noexcept {
    return step > IPCB_STEP_NONE && step < _IPCB_STEP_MAX ? static_cast<IpcbSpawnStep>(step)
                                                          : IPCB_STEP_NONE;
}

/* A positive errno value, from the child's status or a callback's -errno
 * turned round; anything outside 1..4095 is reported as EINVAL, as the
 * barrier sends it. */
int errno_from(int err) noexcept {
    return err > 0 && err <= BARRIER_ABORT_ERRNO_MAX ? err : EINVAL;
}

/* Fills *ret_error and returns r (a -errno). */
int spawn_failed(IpcbSpawnError *ret_error, IpcbSpawnStep step, int r) noexcept {
    if (ret_error) *ret_error = IpcbSpawnError{step, -r};
    return r;
}

int pidfd_open_fd(pid_t pid) noexcept {
    /* Close-on-exec from birth, as every pidfd is. */
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : static_cast<int>(fd);
}

/* For a child not reaped yet, whose pid therefore cannot name another
 * process. */
int send_signal(pid_t pid, int pidfd, int sig) noexcept {
    if (pidfd >= 0) {
        if (syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0) return 0;
        /* A pidfd from clone() without the call to use it: valgrind 3.19
         * passes CLONE_PIDFD through but knows no pidfd_send_signal(), and
         * a seccomp filter may refuse it. */
        if (errno != ENOSYS) return -errno;
    }
    return kill(pid, sig) < 0 ? -errno : 0;
}

/* waitid() on our child, by pidfd where there is one. flags: WEXITED plus
 * WNOHANG or WNOWAIT. Zeroes *ret first, so that si_pid == 0 tells "not
 * yet" after WNOHANG. */
int child_waitid(pid_t pid, int pidfd, int flags, siginfo_t *ret) noexcept {
    for (;;) {
        std::memset(ret, 0, sizeof *ret);
        int r = pidfd >= 0 ? waitid(P_PIDFD, static_cast<id_t>(pidfd), ret, flags)
                           : waitid(P_PID, static_cast<id_t>(pid), ret, flags);
        if (r == 0) return 0;
        if (errno != EINTR) return -errno;
    }
}

/* Blocks every signal in the calling thread until destroyed. glibc's
 * pthread_sigmask() leaves its internal signals (thread cancellation,
 * set*id() broadcast) unblocked, so the mask is set with the raw system
 * call: a vfork child shares the parent's memory and thread descriptor,
 * and no handler of the parent may run in it before the plan has reset
 * the dispositions. errno is preserved both ways. */
class AllSignalsBlocked {
  public:
    AllSignalsBlocked() noexcept {
        int saved = errno;
        sigset_t all;
        /* not sigfillset(): glibc leaves its internal signals out of it */
        std::memset(&all, 0xff, sizeof all);
        (void)syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &old_, _NSIG / 8);
        errno = saved;
    }
    ~AllSignalsBlocked() {
        int saved = errno;
        (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old_, nullptr, _NSIG / 8);
        errno = saved;
    }
    AllSignalsBlocked(const AllSignalsBlocked &) = delete;
    AllSignalsBlocked &operator=(const AllSignalsBlocked &) = delete;

  private:
    sigset_t old_ = {};
};

/* Thread cancellation off for the whole start: a cancelled ipcb_spawn()
 * would leave its child, its fds and its mappings behind (poll(), read()
 * and waitid() are cancellation points). */
class NoCancel {
  public:
    NoCancel() noexcept { (void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_); }
    ~NoCancel() { (void)pthread_setcancelstate(old_, nullptr); }
    NoCancel(const NoCancel &) = delete;
    NoCancel &operator=(const NoCancel &) = delete;

  private:
    int old_ = PTHREAD_CANCEL_ENABLE;
};

/* The vfork child's stack, with an inaccessible guard page below it (the
 * stack grows down), so that an overflow faults instead of writing over
 * whatever the parent mapped next to it. */
class ChildStack {
  public:
    ChildStack() noexcept = default;
    ChildStack(const ChildStack &) = delete;
    ChildStack &operator=(const ChildStack &) = delete;
    ~ChildStack() {
        if (!base_) return;
#ifdef IPCB_ASAN
        /* The child executed (or ended) inside instrumented frames that
         * never returned, so their red zones are still poisoned; the next
         * start that uses this memory must not inherit them. */
        ASAN_UNPOISON_MEMORY_REGION(base_, size());
#endif
        void *none = nullptr;
        if (!cached_.compare_exchange_strong(none, base_)) (void)munmap(base_, size());
    }

    [[nodiscard]] int map() noexcept {
        void *p = cached_.exchange(nullptr);
        if (p) {
            base_ = p;
            return 0;
        }
        p = mmap(nullptr, size(), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return -errno;
        if (mprotect(p, page_size(), PROT_NONE) < 0) {
            int r = -errno;
            (void)munmap(p, size());
            return r;
        }
        base_ = p;
        return 0;
    }
    [[nodiscard]] void *top() const noexcept {
        return static_cast<char *>(base_) + size();
    }
    /* The lowest address, the guard page's, and the size with it. */
    [[nodiscard]] void *bottom() const noexcept {
        return base_;
    }
    static size_t size() noexcept {
        return CHILD_STACK_SIZE + page_size();
    }

  private:
    static size_t page_size() noexcept {
        return static_cast<size_t>(sysconf(_SC_PAGESIZE));
    }

    /* One stack kept for the next start: mapping, guarding and unmapping
     * one cost every start three system calls and the page faults of
     * fresh memory. A start takes it if no other thread has, and puts its
     * own back unless another start has put one back meanwhile; the vfork
     * child is done with it once clone() has returned. A forked copy of
     * the process has a copy of the mapping, which is as good. */
    static inline std::atomic<void *> cached_{nullptr};

    void *base_ = nullptr;
};

/* The status the fork path's child writes: MAP_SHARED, so that the
 * child's writes land in the parent's view of it (a private page would be
 * copied on the child's first write). */
class StatusPage {
  public:
    StatusPage() noexcept = default;
    StatusPage(const StatusPage &) = delete;
    StatusPage &operator=(const StatusPage &) = delete;
    ~StatusPage() {
        if (status_) (void)munmap(status_, sizeof *status_);
    }

    [[nodiscard]] int map() noexcept {
        void *p = mmap(nullptr, sizeof(SpawnStatus), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return -errno;
        status_ = static_cast<SpawnStatus *>(p);
        status_->step = IPCB_STEP_CLONE;
        status_->fail_step = IPCB_STEP_NONE;
        status_->fail_errno = 0;
        return 0;
    }
    [[nodiscard]] SpawnStatus *get() const noexcept { return status_; }

  private:
    SpawnStatus *status_ = nullptr;
};

/* The trampoline's state file (spawn-format.hh): a memfd made for the
 * start, holding the status that the helper writes, mapped here, and the
 * plan that it reads. One file for both: a start spends more on each
 * memfd it makes than on anything else it prepares. The file is not
 * sealed: the helper reads the plan once into its own memory and checks
 * that copy, so what is checked is what runs, and only this start and
 * its helper hold the file (and, as any of the start's fds, a process
 * that another thread forks meanwhile, until it executes a program). */
class StateFile {
  public:
    StateFile() noexcept = default;
    StateFile(const StateFile &) = delete;
    StateFile &operator=(const StateFile &) = delete;
    ~StateFile() {
        if (status_) (void)munmap(status_, sizeof *status_);
    }

    [[nodiscard]] int open() noexcept {
        UniqueFd fd(memfd_create("ipcbarrier-spawn-state", MFD_CLOEXEC));
        if (!fd) return -errno;
        if (ftruncate(fd.get(), ipcbarrier::detail::kStatePlanOffset) < 0) return -errno;
        void *p =
            mmap(nullptr, sizeof(SpawnStatus), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        if (p == MAP_FAILED) return -errno;
        status_ = static_cast<SpawnStatus *>(p);
        status_->step = IPCB_STEP_CLONE;
        status_->fail_step = IPCB_STEP_NONE;
        status_->fail_errno = 0;
        fd_ = std::move(fd);
        return 0;
    }

    /* Puts the plan's bytes after the status. */
    [[nodiscard]] int write_plan(const std::vector<uint8_t> &bytes) noexcept {
        const size_t offset = ipcbarrier::detail::kStatePlanOffset;
        for (size_t done = 0; done < bytes.size();) {
            ssize_t n = pwrite(fd_.get(), bytes.data() + done, bytes.size() - done,
                               static_cast<off_t>(offset + done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return -errno;
            done += static_cast<size_t>(n);
        }
        return 0;
    }

    [[nodiscard]] SpawnStatus *status() const noexcept { return status_; }
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    /* Once the helper has it: the status stays mapped. */
    void close_fd() noexcept { fd_.reset(); }

  private:
    SpawnStatus *status_ = nullptr;
    UniqueFd fd_;
};

/* A Barrier destroyed at scope exit unless handed on. */
class BarrierOwner {
  public:
    BarrierOwner() noexcept = default;
    BarrierOwner(const BarrierOwner &) = delete;
    BarrierOwner &operator=(const BarrierOwner &) = delete;
    ~BarrierOwner() { barrier_destroy(&b_); }

    [[nodiscard]] Barrier *get() noexcept { return &b_; }
    /* Gives the barrier away: no source is attached, so a copy is a move. */
    [[nodiscard]] Barrier release() noexcept {
        Barrier b = b_;
        b_ = Barrier BARRIER_NULL;
        return b;
    }

  private:
    Barrier b_ = BARRIER_NULL;
};

/* A child that has not executed yet. */
class UnfinishedChild {
  public:
    UnfinishedChild(pid_t pid, const SpawnStatus *status, uint64_t flags) noexcept
        : pid_(pid), status_(status), flags_(flags) {}
    UnfinishedChild(const UnfinishedChild &) = delete;
    UnfinishedChild &operator=(const UnfinishedChild &) = delete;
    /* A path that returns without a verdict loses nothing but time: the
     * child is killed and reaped. */
    ~UnfinishedChild() {
        if (pid_ > 0) (void)abandon();
    }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] int pidfd() const noexcept { return pidfd_.get(); }
    void set_pidfd(int fd) noexcept { pidfd_.reset(fd); }

    /* Kills the child (and the process group it made), reaps it, and
     * returns the step it was in when it died, which is then final. */
    IpcbSpawnStep abandon() noexcept {
        siginfo_t si;
        (void)send_signal(pid_, pidfd_.get(), SIGKILL);
        /* Dead but not reaped: the status it wrote is final, and its pid
         * is still reserved, so -pid names a process group that only the
         * child can have made (setsid() or setpgid() in its setup, before
         * its callback may have started others in it), or none at all:
         * kill(-pid) then fails with ESRCH and can hit nobody else, not
         * even the caller's group, which the child was in before. Killing
         * the group only now also catches what the child started in it
         * between a look at its step and the kill. */
        (void)child_waitid(pid_, pidfd_.get(), WEXITED | WNOWAIT, &si);
        IpcbSpawnStep step = step_from(status_->step);
        if (flags_ & (IPCB_SPAWN_NEW_SESSION | IPCB_SPAWN_NEW_PROCESS_GROUP))
            (void)kill(-pid_, SIGKILL);
        (void)child_waitid(pid_, pidfd_.get(), WEXITED, &si);
        pid_ = 0;
        pidfd_.reset();
        return step;
    }

    /* For a child that executed: hands the pid and pidfd to *ret. */
    void succeed(IpcbProcess *ret) noexcept {
        ret->pid = pid_;
        ret->pidfd = pidfd_.release();
        pid_ = 0;
    }

    /* Whether the child reached execve() without a failure. */
    [[nodiscard]] bool executed() const noexcept {
        return step_from(status_->fail_step) == IPCB_STEP_NONE &&
               step_from(status_->step) >= IPCB_STEP_EXEC;
    }

    /* The verdict once the child executed or ended (the report pipe's EOF,
     * or clone() returning on the vfork path): 0, or the failure. */
    int verdict(IpcbSpawnError *ret_error) noexcept {
        if (executed()) return 0;
        IpcbSpawnStep step = abandon();
        int r = recorded_failure(ret_error);
        /* It ended before execve() without saying why: killed. */
        return r < 0 ? r : spawn_failed(ret_error, step, -ESRCH);
    }

    /* Gives up on the child after a failure at step with -errno r. */
    int fail(IpcbSpawnError *ret_error, IpcbSpawnStep step, int r) noexcept {
        (void)abandon();
        return spawn_failed(ret_error, step, r);
    }

    /* Gives up on the child when the deadline expired. The error names
     * the step the child was stuck in, or, with waited_at_barrier_step,
     * that step when the child was waiting at the barrier; a failure the
     * child recorded before it was killed is the more exact answer. */
    int time_out(IpcbSpawnError *ret_error,
                 IpcbSpawnStep waited_at_barrier_step = IPCB_STEP_BARRIER) noexcept {
        IpcbSpawnStep step = abandon();
        int r = recorded_failure(ret_error);
        if (r < 0) return r;
        if (step == IPCB_STEP_BARRIER) step = waited_at_barrier_step;
        return spawn_failed(ret_error, step, -ETIMEDOUT);
    }

  private:
    /* The failure the child recorded (final once it is dead): fills
     * *ret_error and returns its -errno, or returns 0 if there is none. */
    int recorded_failure(IpcbSpawnError *ret_error) const noexcept {
        IpcbSpawnStep fail_step = step_from(status_->fail_step);
        if (fail_step == IPCB_STEP_NONE) return 0;
        return spawn_failed(ret_error, fail_step, -errno_from(status_->fail_errno));
    }

    pid_t pid_;
    UniqueFd pidfd_;
    const SpawnStatus *status_;
    uint64_t flags_;
};

/* The caller's progress callback, told of each milestone as it is reached.
 * Without one a report costs a test of a null pointer. A start that
 * takes the fork path where the vfork path was chosen (under valgrind)
 * reports what the vfork path reports: the events must not depend on
 * how the library had to run it. */
class Progress {
  public:
    Progress(const IpcbSpawnOptions *options, bool meeting) noexcept
        : callback_(options->progress), userdata_(options->progress_userdata), meeting_(meeting) {}

    void report(IpcbSpawnProgress event, const UnfinishedChild &child) const noexcept {
        if (!callback_) return;
        if (!meeting_ && event != IPCB_PROGRESS_SPAWNED && event != IPCB_PROGRESS_EXECUTED) return;
        const IpcbSpawnChild info = {child.pid(), child.pidfd()};
        callback_(event, &info, userdata_);
    }

  private:
    ipcb_progress_t callback_;
    void *userdata_;
    bool meeting_;
};

/* Gets a pidfd for a child created without one. Returns 0 (the pidfd, or
 * nothing where the kernel has no pidfds, stored in *child) or -errno. */
int child_open_pidfd(UnfinishedChild *child) noexcept {
    int fd = pidfd_open_fd(child->pid());
    if (fd == -ENOSYS) return 0;
    if (fd < 0) return fd;
    child->set_pidfd(fd);
    return 0;
}

/* Waits for EOF on the report pipe: every copy of the write end is closed,
 * so the child executed or ended. Returns 0, -ETIMEDOUT or -errno. */
int wait_report_eof(int fd, Deadline deadline) noexcept {
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
        struct timespec ts;
        int n = ppoll(&pfd, 1, deadline.remaining_timespec(&ts), nullptr);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -ETIMEDOUT;
        /* Nothing is written to it; anything that is gets drained. */
        char buf[64];
        ssize_t k = read(fd, buf, sizeof buf);
        if (k == 0) return 0;
        if (k < 0 && errno != EAGAIN && errno != EINTR) return -errno;
    }
}

/* The vfork child's entry, on its own stack, sharing the parent's memory.
 * Not instrumented for ASan: the call to _exit() would otherwise be
 * preceded by ASan's no-return hook, which expects the stack it knows for
 * this thread and warns (and could unpoison the wrong range) on another. */
__attribute__((no_sanitize("address"))) int vfork_child(void *plan) noexcept {
    ipcbarrier::detail::plan_run(static_cast<const SpawnPlan *>(plan));
    _exit(127);
}

/* The fork child: takes its side of the barrier, runs the plan. */
[[noreturn]] void fork_child(Barrier *barrier, const SpawnPlan *plan) noexcept {
    int r = barrier_set_role(barrier, BARRIER_CHILD);
    if (r < 0) {
        plan->status->fail_errno = -r;
        plan->status->fail_step = IPCB_STEP_BARRIER;
        _exit(127);
    }
    ipcbarrier::detail::plan_run(plan);
    _exit(127);
}

/* The deadline of the pre-exec phase, counted from the call. */
Deadline start_deadline(const IpcbSpawnOptions *options) noexcept {
    return options->setup_timeout_usec > 0 ? Deadline::after(options->setup_timeout_usec)
                                           : Deadline::never();
}

/* Whether clone3() can start a child in a cgroup: not known yet (-1), no
 * (0) or yes (1). Learned at the first start that asks for a cgroup. */
std::atomic<int> clone_into_cgroup_works{-1};

/* Whether a start on the vfork or trampoline path should be born in the
 * cgroup that cgroup_fd names, by clone3()'s CLONE_INTO_CGROUP: a cgroup
 * v2 directory, on a kernel not known to lack it. Otherwise the child
 * joins it by writing to its cgroup.procs, whose failure names the reason
 * (a directory that is not a cgroup, for instance). Not under valgrind,
 * which does not know clone3(). */
bool born_in_cgroup(int cgroup_fd) noexcept {
    if (!ipcbarrier::detail::kHaveClone3Call || cgroup_fd < 0 || IPCB_UNDER_VALGRIND() ||
        clone_into_cgroup_works.load() == 0)
        return false;
    struct statfs fs;
    constexpr long kCgroup2Magic = 0x63677270; /* CGROUP2_SUPER_MAGIC */
    return fstatfs(cgroup_fd, &fs) == 0 && static_cast<long>(fs.f_type) == kCgroup2Magic;
}

/* The cgroup that clone_vfork() should create the child in, or -1: see
 * born_in_cgroup(). A child born there has no cgroup to join, so the plan
 * loses its step (and the helper the cgroup's fd). */
int take_cgroup_for_clone(SpawnPlan *plan, bool try_into_cgroup) noexcept {
    if (!try_into_cgroup || !born_in_cgroup(plan->cgroup_fd)) return -1;
    const int fd = plan->cgroup_fd;
    plan->cgroup_fd = -1;
    plan->flags &= ~static_cast<uint64_t>(IPCB_SPAWN_CGROUP);
    return fd;
}

/* Creates the vfork child that runs fn(arg) on stack, as
 * clone(CLONE_VM | CLONE_VFORK) does, in the cgroup cgroup_fd if it is not
 * -1 (then by clone3() with CLONE_INTO_CGROUP), with a pidfd in *ret_pidfd
 * if pidfd_flag is CLONE_PIDFD. Returns once the child has executed or
 * ended: its pid, or -errno with the step in *ret_step. Where clone3()
 * cannot start a child in a cgroup here, returns -EOPNOTSUPP and sets
 * *ret_unsupported, and the process does not try again: the caller starts
 * over with a child that joins its cgroup by itself. Called with every
 * signal blocked; changes errno. */
pid_t clone_vfork(int (*fn)(void *), void *arg, const ChildStack &stack, int cgroup_fd,
                  int pidfd_flag, int *ret_pidfd, IpcbSpawnStep *ret_step,
                  bool *ret_unsupported) noexcept {
    *ret_step = IPCB_STEP_CLONE;
    *ret_unsupported = false;
    if (cgroup_fd < 0) {
        pid_t pid =
            clone(fn, stack.top(), CLONE_VM | CLONE_VFORK | pidfd_flag | SIGCHLD, arg, ret_pidfd);
        return pid < 0 ? -errno : pid;
    }
    ipcbarrier::detail::CloneArgs args{};
    args.flags = CLONE_VM | CLONE_VFORK | ipcbarrier::detail::kCloneIntoCgroup |
                 static_cast<uint64_t>(pidfd_flag);
    args.pidfd = reinterpret_cast<uintptr_t>(ret_pidfd);
    args.exit_signal = SIGCHLD;
    args.stack = reinterpret_cast<uintptr_t>(stack.bottom());
    args.stack_size = ChildStack::size();
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
    long r = ipcbarrier::detail::clone3_call(&args, fn, arg);
    if (r > 0) {
        clone_into_cgroup_works.store(1);
        return static_cast<pid_t>(r);
    }
    switch (-r) {
        case ENOSYS: /* no clone3() */
        case E2BIG:  /* one that does not know the cgroup field */
        case EINVAL: /* ... nor the flag */
        case EPERM:  /* a seccomp filter that refuses clone3() */
            clone_into_cgroup_works.store(0);
            *ret_unsupported = true;
            return -EOPNOTSUPP;
        case EAGAIN: /* no process left (RLIMIT_NPROC, pids.max) */
        case ENOMEM:
        case ENOSPC: /* the pid namespace is full */
        case EMFILE: /* no fd left for the pidfd */
        case ENFILE:
            return static_cast<pid_t>(r);
        default: /* the cgroup refused the child: EACCES, EBUSY, EOPNOTSUPP ... */
            *ret_step = IPCB_STEP_CGROUP;
            return static_cast<pid_t>(r);
    }
}

/* try_into_cgroup: false where clone3() has just failed to start a child
 * in a cgroup here, so that a second attempt is not made whatever other
 * threads find meanwhile. */
int spawn_vfork(const IpcbSpawnOptions *options, const Progress &progress, IpcbProcess *ret,
                IpcbSpawnError *ret_error, bool try_into_cgroup = true) noexcept {
    Deadline deadline = start_deadline(options);

    /* The child shares this frame's memory: the status can live here. */
    SpawnStatus status;
    status.step = IPCB_STEP_CLONE;
    status.fail_step = IPCB_STEP_NONE;
    status.fail_errno = 0;

    PlanStorage storage;
    SpawnPlan plan;
    IpcbSpawnError error = {IPCB_STEP_PREPARE, 0};
    int r = ipcbarrier::detail::plan_compile(
        options, PlanContext{nullptr, -1, &status, getpid(), -1}, &storage, &plan, &error);
    if (r < 0) return spawn_failed(ret_error, error.step, r);
    /* This parent is suspended until the child has executed or died, so
     * the child keeps the deadline itself: it is SIGKILLed then. */
    if (!deadline.infinite()) plan.deadline_usec = deadline.at_usec();
    const int cgroup_fd = take_cgroup_for_clone(&plan, try_into_cgroup);

    ChildStack stack;
    r = stack.map();
    if (r < 0) return spawn_failed(ret_error, IPCB_STEP_PREPARE, r);

    int pidfd = -1;
    pid_t pid;
    IpcbSpawnStep clone_step;
    bool unsupported;
    {
        /* The child starts with every signal blocked and unblocks them
         * once the plan has reset the dispositions: a handler of the
         * parent running in the child would run on shared memory. */
        AllSignalsBlocked blocked;
        int saved_errno = errno;
        /* Returns once the child has executed or ended. On kernels before
         * CLONE_PIDFD the flag is ignored and pidfd stays -1. */
        pid = clone_vfork(vfork_child, &plan, stack, cgroup_fd, CLONE_PIDFD, &pidfd, &clone_step,
                          &unsupported);
        /* The child ran on this thread's errno (it shares the thread
         * descriptor), so whatever it left there is not ours. */
        errno = saved_errno;
    }
    /* Once per process, on a kernel without CLONE_INTO_CGROUP: the child
     * joins its cgroup itself. */
    if (unsupported) return spawn_vfork(options, progress, ret, ret_error, false);
    if (pid < 0) return spawn_failed(ret_error, clone_step, pid);

    UnfinishedChild child(pid, &status, options->flags);
    if (pidfd >= 0)
        child.set_pidfd(pidfd);
    else if ((r = child_open_pidfd(&child)) < 0)
        return child.fail(ret_error, IPCB_STEP_CLONE, r);
    /* The child has executed or ended by now: both reports come after the
     * fact, and the first comes whichever it was. */
    progress.report(IPCB_PROGRESS_SPAWNED, child);

    /* A child that died before it executed, after the deadline: killed by
     * its timer, in the step it was stuck in. */
    if (!deadline.infinite() && deadline.remaining_usec() == 0 && !child.executed())
        return child.time_out(ret_error);
    r = child.verdict(ret_error);
    if (r < 0) return r;
    progress.report(IPCB_PROGRESS_EXECUTED, child);
    child.succeed(ret);
    ret->barrier = Barrier BARRIER_NULL;
    return 0;
}

/* The parent's side once its child exists and holds the write end of the
 * report pipe alone, on the paths with a barrier: the parent setup, the
 * meeting, and the wait for the execve(). */
int meet_child(const IpcbSpawnOptions *options, const Progress &progress, Deadline deadline,
               UnfinishedChild *child, BarrierOwner *barrier, int report_fd, IpcbProcess *ret,
               IpcbSpawnError *ret_error) noexcept {
    progress.report(IPCB_PROGRESS_SPAWNED, *child);
    int r = barrier_set_role(barrier->get(), BARRIER_PARENT);
    if (r < 0) return child->fail(ret_error, IPCB_STEP_BARRIER, r);

    if (options->parent_setup) {
        IpcbSpawnChild info = {child->pid(), child->pidfd()};
        r = options->parent_setup(&info, options->parent_setup_userdata);
        if (r < 0) {
            /* -r would overflow for INT_MIN */
            int err = errno_from(r < -BARRIER_ABORT_ERRNO_MAX ? 0 : -r);
            /* The child learns at once, wherever it waits; it is killed
             * anyway, as it may be busy with a step that takes long. */
            (void)barrier_abort_errno(barrier->get(), err);
            return child->fail(ret_error, IPCB_STEP_PARENT_SETUP, -err);
        }
        /* The callback cannot be interrupted; it can only be found late.
         * Then the side that kept the other waiting is named: the parent
         * setup if the child was waiting for it at the barrier, else the
         * step the child was stuck in. */
        if (!deadline.infinite() && deadline.remaining_usec() == 0)
            return child->time_out(ret_error, IPCB_STEP_PARENT_SETUP);
    }
    progress.report(IPCB_PROGRESS_PARENT_SETUP_DONE, *child);

    /* First the child's point, then ours: the child cannot go on (and its
     * program, with IPCB_SPAWN_READY, cannot place its readiness point)
     * before ours arrives, so the two of its points never reach this
     * side's eventfd together, where one read would consume both. */
    r = barrier_wait_next_timeout(barrier->get(), deadline.remaining_usec());
    if (r == -ETIMEDOUT) return child->time_out(ret_error);
    if (r < 0) return child->fail(ret_error, IPCB_STEP_BARRIER, r);
    /* r == 0: the child aborted (its failure is in the status) or died; it
     * ends without executing, and its EOF comes as well. So does a child
     * whose point cannot be answered: a failed write closes this side,
     * which the child sees as an abortion. */
    if (r > 0) {
        const bool placed = barrier_place(barrier->get());
        /* Told only now, so that the callback never holds the child up at
         * the barrier. */
        progress.report(IPCB_PROGRESS_CHILD_SETUP_DONE, *child);
        if (placed) progress.report(IPCB_PROGRESS_SYNCED, *child);
    }

    r = wait_report_eof(report_fd, deadline);
    if (r == -ETIMEDOUT) return child->time_out(ret_error);
    /* An error of the parent's own wait for the execve() */
    if (r < 0) return child->fail(ret_error, IPCB_STEP_EXEC, r);

    /* A child that died unexecuted after the deadline: its own timer. */
    if (!deadline.infinite() && deadline.remaining_usec() == 0 && !child->executed())
        return child->time_out(ret_error);
    r = child->verdict(ret_error);
    if (r < 0) return r;
    progress.report(IPCB_PROGRESS_EXECUTED, *child);
    child->succeed(ret);
    /* With IPCB_SPAWN_READY the program holds the other side, and the
     * caller waits for its sync point; otherwise nobody needs ours. */
    ret->barrier = (options->flags & IPCB_SPAWN_READY) ? barrier->release() : Barrier BARRIER_NULL;
    return 0;
}

/* What the two paths that meet prepare alike: the barrier, the report
 * pipe and the plan, with the deadline in it. */
struct Meeting {
    BarrierOwner barrier;
    Pipe report;
    PlanStorage storage;
    SpawnPlan plan;

    /* Returns 0, or the failed start's result. status_fd: the fd of the
     * status, which a mapping must not name, or -1. */
    int prepare(const IpcbSpawnOptions *options, Deadline deadline, SpawnStatus *status,
                int status_fd, IpcbSpawnError *ret_error) noexcept {
        int r = barrier_create(barrier.get());
        if (r < 0) return spawn_failed(ret_error, IPCB_STEP_PREPARE, r);
        /* Non-blocking: the parent only reads after poll() said so, and a
         * sibling forked meanwhile by another thread may hold a copy of
         * the write end. */
        r = ipcbarrier::pipe_new(PipeMode::nonblocking, &report);
        if (r < 0) return spawn_failed(ret_error, IPCB_STEP_PREPARE, r);
        IpcbSpawnError error = {IPCB_STEP_PREPARE, 0};
        r = ipcbarrier::detail::plan_compile(
            options,
            PlanContext{barrier.get(), report.write_end.get(), status, getpid(), status_fd},
            &storage, &plan, &error);
        if (r < 0) return spawn_failed(ret_error, error.step, r);
        /* The child arms it too (on the trampoline path the helper, as
         * execve() deletes the vfork child's timers): then nothing it
         * blocks in outlasts it. */
        if (!deadline.infinite()) plan.deadline_usec = deadline.at_usec();
        return 0;
    }
};

int spawn_fork(const IpcbSpawnOptions *options, const Progress &progress, IpcbProcess *ret,
               IpcbSpawnError *ret_error) noexcept {
    /* The deadline counts from the call: it is for the whole pre-exec
     * phase, compiling the plan included. */
    Deadline deadline = start_deadline(options);

    StatusPage page;
    int r = page.map();
    if (r < 0) return spawn_failed(ret_error, IPCB_STEP_PREPARE, r);
    SpawnStatus *status = page.get();

    Meeting m;
    r = m.prepare(options, deadline, status, -1, ret_error);
    if (r < 0) return r;
    BarrierOwner &barrier = m.barrier;
    Pipe &report = m.report;

    pid_t pid;
    int fork_errno;
    {
        /* No handler of the parent may run in the child before the plan
         * has reset the dispositions. */
        AllSignalsBlocked blocked;
        pid = fork();
        if (pid == 0) fork_child(barrier.get(), &m.plan);
        fork_errno = errno;
    }
    if (pid < 0) return spawn_failed(ret_error, IPCB_STEP_CLONE, -fork_errno);

    UnfinishedChild child(pid, status, options->flags);
    /* The child cannot execute before the parent meets it at the barrier,
     * so a pidfd opened now names it, and a failure here can still undo
     * the start. */
    r = child_open_pidfd(&child);
    if (r < 0) return child.fail(ret_error, IPCB_STEP_CLONE, r);
    /* Only the child may hold the write end, or its EOF would never come. */
    report.write_end.reset();
    return meet_child(options, progress, deadline, &child, &barrier, report.read_end.get(), ret,
                      ret_error);
}

/* What the trampoline's vfork child needs, prepared by the parent: it
 * only reads this, and writes nothing of the parent's but the barrier's
 * fd numbers (inside argv) and the status page. */
struct TrampolineChild {
    const Barrier *barrier; /* the parent's, its role not set yet */
    int helper_fd;
    char *const *argv;   /* the helper's */
    char *barrier_value; /* the value of its argument "--barrier-fds=" */
    size_t barrier_value_size;
    const int *inherited; /* what the helper inherits: the start's fds, the caller's */
    size_t n_inherited;
    SpawnStatus *status;
};

/* "A,B,C" of the n fds into buf, async-signal-safe. Returns 0, or
 * -ENOBUFS if it does not fit. */
int format_fd_list(char *buf, size_t size, const int *fds, size_t n) noexcept {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char digits[12];
        size_t k = 0;
        unsigned v = static_cast<unsigned>(fds[i]);
        do {
            digits[k++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v);
        if (len + k + 2 > size) return -ENOBUFS;
        if (i > 0) buf[len++] = ',';
        while (k > 0) buf[len++] = digits[--k];
    }
    buf[len] = '\0';
    return 0;
}

/* Gets the vfork child ready for the helper and executes it; returns only
 * on failure, with -errno. The barrier calls may set errno, which is the
 * caller thread's here (the parent puts its own back after clone()), take
 * no lock and allocate nothing; a first call through the PLT runs the
 * dynamic linker's lazy binding, which only writes the entry the parent
 * would write itself, as in any vfork() followed by execve(). */
int trampoline_enter(const TrampolineChild *t) noexcept {
    /* A copy: the parent's barrier is in the memory we share, and must
     * keep both pipe ends for the parent's own side. Setting the role
     * closes the parent's end in this child's fd table only. */
    Barrier b = *t->barrier;
    int r = barrier_set_role(&b, BARRIER_CHILD);
    if (r < 0) return r;
    /* The helper takes the barrier over only above stdio, where a caller
     * that had 0-2 closed when it made the barrier may hold its fds. */
    r = barrier_move_fds(&b, STDERR_FILENO + 1);
    if (r < 0) return r;
    /* The helper takes the child's side over from its three fds, which it
     * knows to be a fresh barrier's: not from a record (barrier(3)), whose
     * checks ask /proc about each fd on both sides of execve(), a cost
     * every start would pay. */
    int fds[3];
    r = barrier_get_fds(&b, fds);
    if (r < 0) return r;
    r = format_fd_list(t->barrier_value, t->barrier_value_size, fds, 3);
    if (r < 0) return r;
    /* Everything the helper needs must survive execve(); the helper makes
     * all of it close-on-exec again. */
    for (size_t i = 0; i < t->n_inherited + 3; i++) {
        int fd = i < t->n_inherited ? t->inherited[i] : fds[i - t->n_inherited];
        long k = ipcbarrier::detail::raw_syscall(SYS_fcntl, fd, F_SETFD, 0);
        if (k < 0) return static_cast<int>(k);
    }
    char *const envp[] = {nullptr};
    return static_cast<int>(ipcbarrier::detail::raw_syscall(SYS_execveat, t->helper_fd, "", t->argv,
                                                            envp, AT_EMPTY_PATH));
}

/* The trampoline's vfork child, on its own stack, sharing the parent's
 * memory. Not instrumented for ASan, as vfork_child(). */
__attribute__((no_sanitize("address"))) int trampoline_child(void *arg) noexcept {
    const auto *t = static_cast<const TrampolineChild *>(arg);
    int r = trampoline_enter(t);
    t->status->fail_errno = errno_from(-r);
    t->status->fail_step = IPCB_STEP_HELPER;
    _exit(127);
}

/* "--name=N" into buf. */
void fd_argument(char *buf, size_t size, const char *name, int fd) noexcept {
    (void)snprintf(buf, size, "--%s=%d", name, fd);
}

/* try_into_cgroup: as for spawn_vfork(). */
int spawn_trampoline(const IpcbSpawnOptions *options, const Progress &progress, int helper_fd,
                     IpcbProcess *ret, IpcbSpawnError *ret_error,
                     bool try_into_cgroup = true) noexcept {
    Deadline deadline = start_deadline(options);

    StateFile state;
    int r = state.open();
    if (r < 0) return spawn_failed(ret_error, IPCB_STEP_PREPARE, r);
    SpawnStatus *status = state.status();

    Meeting m;
    r = m.prepare(options, deadline, status, state.fd(), ret_error);
    if (r < 0) return r;
    BarrierOwner &barrier = m.barrier;
    Pipe &report = m.report;
    SpawnPlan &plan = m.plan;
    const int cgroup_fd = take_cgroup_for_clone(&plan, try_into_cgroup);

    std::vector<HandedFd> handed;
    std::vector<uint8_t> bytes;
    std::vector<int> inherited;
    r = ipcbarrier::detail::plan_handed_fds(plan, &handed);
    if (r == 0) r = ipcbarrier::detail::plan_write(plan, handed, &bytes);
    if (r < 0) return spawn_failed(ret_error, IPCB_STEP_PREPARE, r);
    r = state.write_plan(bytes);
    if (r < 0) return spawn_failed(ret_error, IPCB_STEP_PREPARE, r);
    try {
        inherited = {state.fd(), report.write_end.get()};
        for (const HandedFd &h : handed) inherited.push_back(h.fd);
    } catch (const std::bad_alloc &) {
        return spawn_failed(ret_error, IPCB_STEP_PREPARE, -ENOMEM);
    }

    char state_arg[32], report_arg[32];
    fd_argument(state_arg, sizeof state_arg, "state-fd", state.fd());
    fd_argument(report_arg, sizeof report_arg, "report-fd", report.write_end.get());
    static constexpr char kBarrierOption[] = "--barrier-fds=";
    /* Three fd numbers of up to 10 digits, two commas and the NUL. */
    char barrier_arg[sizeof kBarrierOption - 1 + 3 * 10 + 2 + 1] = {};
    std::memcpy(barrier_arg, kBarrierOption, sizeof kBarrierOption - 1);
    char helper_name[] = "ipcbarrier-exec-helper";
    char *const argv[] = {helper_name, state_arg, report_arg, barrier_arg, nullptr};
    const TrampolineChild t = {barrier.get(),
                               helper_fd,
                               argv,
                               barrier_arg + sizeof kBarrierOption - 1,
                               sizeof barrier_arg - (sizeof kBarrierOption - 1),
                               inherited.data(),
                               inherited.size(),
                               status};

    ChildStack stack;
    r = stack.map();
    if (r < 0) return spawn_failed(ret_error, IPCB_STEP_PREPARE, r);

    /* Until the plan runs, the child is starting the helper: a child
     * killed before that is reported there. */
    status->step = IPCB_STEP_HELPER;
    int pidfd = -1;
    pid_t pid;
    IpcbSpawnStep clone_step;
    bool unsupported;
    {
        /* As on the vfork path; the helper starts with every signal
         * blocked too, until the plan has reset the dispositions. */
        AllSignalsBlocked blocked;
        int saved_errno = errno;
        /* Returns once the child has executed the helper or ended (or at
         * once under valgrind, whose child is a copy). valgrind 3.19 passes
         * CLONE_PIDFD through but fails on its own assertion when the
         * pidfd cannot be made (EMFILE): there the pidfd is asked for
         * afterwards, as on the fork path. */
        const int pidfd_flag = IPCB_UNDER_VALGRIND() ? 0 : CLONE_PIDFD;
        pid = clone_vfork(trampoline_child, const_cast<TrampolineChild *>(&t), stack, cgroup_fd,
                          pidfd_flag, &pidfd, &clone_step, &unsupported);
        errno = saved_errno;
    }
    /* As on the vfork path: once, and then the plan joins the cgroup. */
    if (unsupported) return spawn_trampoline(options, progress, helper_fd, ret, ret_error, false);
    if (pid < 0) return spawn_failed(ret_error, clone_step, pid);

    UnfinishedChild child(pid, status, options->flags);
    if (pidfd >= 0)
        child.set_pidfd(pidfd);
    else if ((r = child_open_pidfd(&child)) < 0)
        return child.fail(ret_error, IPCB_STEP_CLONE, r);
    /* The helper holds them now; the report pipe's EOF can only come once
     * nobody else holds its write end. */
    report.write_end.reset();
    state.close_fd();
    /* As on the fork path, the parent setup runs even for a child that has
     * failed already (here: that could not start the helper); the meeting
     * then fails and the verdict names the child's failure. */
    return meet_child(options, progress, deadline, &child, &barrier, report.read_end.get(), ret,
                      ret_error);
}

}  // namespace

int ipcb_spawn(const IpcbSpawnOptions *options, IpcbProcess *ret, IpcbSpawnError *ret_error) {
    if (!options || !ret) return spawn_failed(ret_error, IPCB_STEP_PREPARE, -EINVAL);

    /* What needs the two sides to meet, which the vfork path cannot do:
     * its parent is suspended until the child has executed. (A deadline
     * does not: the child enforces it on itself.) A child callback needs
     * the fork path: the helper is another program. */
    const bool callback = options->child_callback != nullptr;
    const bool meets = options->parent_setup || (options->flags & IPCB_SPAWN_READY);
    enum class Path { vfork, trampoline, fork } path;
    const int method = enum_value(options->method);
    switch (method) {
        case IPCB_METHOD_AUTO:
            path = callback ? Path::fork : meets ? Path::trampoline : Path::vfork;
            break;
        case IPCB_METHOD_VFORK:
            if (meets || callback) return spawn_failed(ret_error, IPCB_STEP_PREPARE, -EINVAL);
            path = Path::vfork;
            break;
        case IPCB_METHOD_TRAMPOLINE:
            if (callback) return spawn_failed(ret_error, IPCB_STEP_PREPARE, -EINVAL);
            path = Path::trampoline;
            break;
        case IPCB_METHOD_FORK:
            path = Path::fork;
            break;
        default:
            return spawn_failed(ret_error, IPCB_STEP_PREPARE, -EINVAL);
    }

    /* valgrind runs a clone(CLONE_VM|CLONE_VFORK) child as a fork()ed one,
     * in memory of its own and without suspending the caller: the child's
     * status would never reach the parent. The fork path gives the same
     * result there, at fork()'s cost. The trampoline works there (its
     * child needs nothing of the caller's memory but the status page,
     * which is MAP_SHARED), but would cost fork()'s and the helper's on
     * top: AUTO takes the fork path instead, an explicit trampoline runs
     * as it is. */
    /* What the chosen path reports, whichever runs it. */
    const Progress progress(options, path != Path::vfork);
    if (IPCB_UNDER_VALGRIND()) {
        if (path == Path::vfork) path = Path::fork;
        if (path == Path::trampoline && method == IPCB_METHOD_AUTO) path = Path::fork;
    }

    int helper_fd = -1;
    if (path == Path::trampoline) {
        helper_fd = ipcbarrier::detail::exec_helper_fd();
        /* AUTO does without the helper where it cannot be had (not
         * installed, as where the library is built as a subproject): the
         * fork path gives the same result, at fork()'s cost. */
        if (helper_fd < 0 && method == IPCB_METHOD_AUTO) path = Path::fork;
        if (helper_fd < 0 && path == Path::trampoline)
            return spawn_failed(ret_error, IPCB_STEP_HELPER, helper_fd);
    }

    NoCancel no_cancel;
    int r;
    switch (path) {
        case Path::vfork:
            r = spawn_vfork(options, progress, ret, ret_error);
            break;
        case Path::trampoline:
            r = spawn_trampoline(options, progress, helper_fd, ret, ret_error);
            break;
        case Path::fork:
        default:
            r = spawn_fork(options, progress, ret, ret_error);
            break;
    }
    if (r >= 0 && ret_error) *ret_error = IpcbSpawnError{IPCB_STEP_NONE, 0};
    return r;
}

const char *ipcb_spawn_step_to_string(IpcbSpawnStep step) {
    return step_name(enum_value(step));
}

int ipcb_spawn_error_format(const IpcbSpawnError *error, char *buf, size_t size) {
    if (!error) return -EINVAL;
    int v = enum_value(error->step);
    const char *step = step_name(v);
    char step_buf[32];
    if (!step) {
        (void)snprintf(step_buf, sizeof step_buf, "step %d", v);
        step = step_buf;
    }
    char err_buf[128];
    /* The GNU strerror_r(): thread-safe, and it returns the message. */
    const char *message = strerror_r(error->error, err_buf, sizeof err_buf);
    return snprintf(buf, size, "%s: %s", step, message);
}

int ipcb_process_wait(IpcbProcess *p, uint64_t timeout_usec, siginfo_t *ret_info) {
    if (!p) return -EINVAL;
    if (p->pid <= 0) return -ECHILD;
    Deadline deadline = Deadline::after(timeout_usec);
    siginfo_t si;
    int r;

    if (p->pidfd >= 0) {
        /* The pidfd becomes readable once the process has ended. */
        for (;;) {
            struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN, .revents = 0};
            struct timespec ts;
            int n = ppoll(&pfd, 1, deadline.remaining_timespec(&ts), nullptr);
            if (n > 0) break;
            if (n == 0) return -ETIMEDOUT;
            if (errno != EINTR) return -errno;
        }
        r = child_waitid(p->pid, p->pidfd, WEXITED, &si);
    } else {
        /* No pidfd (an old kernel, or valgrind): nothing to poll, and a
         * library must not take SIGCHLD from its caller, so look, pause,
         * look again, with pauses that grow to 10 ms. */
        ipcbarrier::usec_t pause = 100;
        for (;;) {
            r = child_waitid(p->pid, -1, WEXITED | WNOHANG, &si);
            if (r < 0 || si.si_pid != 0) break;
            ipcbarrier::usec_t left = deadline.remaining_usec();
            if (left == 0) return -ETIMEDOUT;
            ipcbarrier::usec_t nap = left < pause ? left : pause;
            struct timespec ts = {.tv_sec = static_cast<time_t>(nap / ipcbarrier::USEC_PER_SEC),
                                  .tv_nsec = static_cast<long>(nap % ipcbarrier::USEC_PER_SEC *
                                                               ipcbarrier::NSEC_PER_USEC)};
            (void)nanosleep(&ts, nullptr);
            if (pause < 10 * ipcbarrier::USEC_PER_MSEC) pause *= 2;
        }
    }
    if (r == -ECHILD) p->pid = 0; /* reaped by someone else: nothing left to wait for */
    if (r < 0) return r;
    p->pid = 0;
    if (ret_info) *ret_info = si;
    return 0;
}

int ipcb_process_kill(IpcbProcess *p, int sig, bool group) {
    if (!p) return -EINVAL;
    /* Once reaped, the pid (and the group id it was) may be anyone's. */
    if (p->pid <= 0) return -ESRCH;
    if (group) return kill(-p->pid, sig) < 0 ? -errno : 0;
    return send_signal(p->pid, p->pidfd, sig);
}

void ipcb_process_close(IpcbProcess *p) {
    if (!p) return;
    p->pidfd = ipcbarrier::safe_close(p->pidfd);
    barrier_destroy(&p->barrier);
    p->pid = 0;
}
