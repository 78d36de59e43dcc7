/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The child's setup as data, and the one function that carries it out.
 *
 * plan_compile() runs in the parent, before any child exists: it checks
 * the options, searches PATH, builds argv and envp, orders the fd moves,
 * and puts everything into one SpawnPlan whose pointers point into memory
 * that a PlanStorage owns. The plan is trivially destructible and the child
 * only reads it (but for the child's side of the barrier and the record
 * slot, which only paths with a barrier have), so every path can hand it
 * over as it is: the vfork child shares the parent's memory, the fork child
 * has a copy, and the trampoline helper gets it serialized through an fd.
 *
 * plan_run() runs in the child. It is async-signal-safe: raw syscalls, no
 * allocation, no lock, no errno-dependent libc wrapper that is unsafe after
 * vfork (set*id() wrappers signal the parent's other threads), no stdio.
 * It records the step it is in, so that a parent that gives up on it can
 * say where it was stuck, and returns only on failure. */

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <ipcbarrier/barrier.h>
#include <ipcbarrier/spawn.h>

namespace ipcbarrier::detail {

/* Every IPCB_SPAWN_* flag this version knows. */
constexpr uint64_t kSpawnKnownFlags =
    IPCB_SPAWN_KEEP_FDS | IPCB_SPAWN_KEEP_SIGNALS | IPCB_SPAWN_NO_PATH_SEARCH | IPCB_SPAWN_EXEC_FD |
    IPCB_SPAWN_NEW_SESSION | IPCB_SPAWN_NEW_PROCESS_GROUP | IPCB_SPAWN_SET_UID |
    IPCB_SPAWN_SET_GID | IPCB_SPAWN_SET_GROUPS | IPCB_SPAWN_SET_UMASK | IPCB_SPAWN_NO_NEW_PRIVS |
    IPCB_SPAWN_CGROUP | IPCB_SPAWN_READY;

/* What the child writes for the parent to read: memory the two share (the
 * vfork child's, a MAP_SHARED page for the other paths). Written with plain
 * stores by one process and read by the other once the first has executed
 * or ended, or has been killed. */
struct SpawnStatus {
    volatile int step;       /* the step the child is in (IpcbSpawnStep) */
    volatile int fail_step;  /* IPCB_STEP_NONE, or the step that failed */
    volatile int fail_errno; /* its errno, positive */
};

/* One step of putting the child's fds in place, in the order they run.
 * plan_compile() orders them so that every child fd gets what its parent fd
 * was before any of them moved, however the mapping overlaps: a mapping
 * runs only once no later one still reads its target, and a cycle (1<->2,
 * 3->4->5->3) is broken with one temporary. Temporaries are made at run
 * time with F_DUPFD_CLOEXEC at or above SpawnPlan::fd_floor, so they can
 * neither land on a child fd nor replace an fd the child keeps. */
enum class FdOp : int {
    dup,        /* to becomes an inherited copy of from */
    inherit,    /* from == to: only clear close-on-exec */
    save,       /* the temporary becomes a copy of from */
    restore,    /* to becomes an inherited copy of the temporary, which is closed */
    open_null,  /* /dev/null is opened read-write (a temporary too) */
    null,       /* to becomes an inherited copy of /dev/null */
    close_null, /* /dev/null is closed */
};

struct PlanFdMove {
    FdOp op;
    int from; /* dup, inherit, save: an fd of the child at that point; else -1 */
    int to;   /* dup, inherit, restore, null: the child fd; else -1 */
};

/* One resource limit as prlimit64() takes it (RLIM64_INFINITY: none). */
struct PlanRlimit {
    int resource;
    uint64_t cur;
    uint64_t max;
};

struct SpawnPlan {
    /* what to execute */
    const char *path;  /* for execve(); NULL with IPCB_SPAWN_EXEC_FD */
    int exec_fd;       /* for execveat(exec_fd, "", ..., AT_EMPTY_PATH); else -1 */
    char *const *argv; /* NULL-terminated */
    char *const *envp; /* NULL-terminated, complete */
    char *record_slot; /* IPCB_SPAWN_READY: the envp entry "IPCBARRIER=" with
                        * room for BARRIER_RECORD_MAX more bytes, else NULL */
    uint64_t flags;    /* IPCB_SPAWN_* */

    /* the setup, in the order plan_run() takes it */
    sigset_t sigmask;        /* the program's signal mask */
    int parent_death_signal; /* 0: none */
    pid_t parent_pid;        /* to check that the parent did not die first */
    int cgroup_fd;           /* -1: none. A path that started the child in the
                              * cgroup already (CLONE_INTO_CGROUP) sets -1
                              * and clears IPCB_SPAWN_CGROUP. */
    const PlanRlimit *rlimits;
    size_t n_rlimits;
    const PlanFdMove *fd_moves; /* in order; the result is the mapping asked for */
    size_t n_fd_moves;
    int fd_floor;        /* above every child fd, and >= 3: where the start's own
                          * fds, the copy of exec_fd and the temporaries go */
    const int *keep_fds; /* sorted: the child fds, which survive closing */
    size_t n_keep_fds;
    const gid_t *groups;
    size_t n_groups;
    gid_t gid;
    uid_t uid;
    mode_t umask;
    const char *cwd; /* NULL: stay */
    ipcb_child_callback_t child_callback;
    void *child_callback_userdata;

    /* what the child holds for the start itself, all close-on-exec;
     * plan_run() moves them to fd_floor or above before anything else, as
     * the parent may hold them at numbers that are child fds */
    Barrier *barrier;    /* NULL, or the child's side (role set by the time
                          * plan_run() starts), in the child's own memory:
                          * plan_run() updates the numbers it moves */
    int report_fd;       /* -1, or the write end whose EOF confirms exec */
    SpawnStatus *status; /* never NULL */

    /* The end of the pre-exec phase on CLOCK_MONOTONIC, in microseconds
     * (0: none). The child arms a timer that SIGKILLs it then, whatever it
     * is doing and whatever it blocks: execve() deletes the timer. */
    uint64_t deadline_usec;
};

static_assert(std::is_trivially_destructible_v<SpawnPlan>);
static_assert(std::is_trivially_copyable_v<SpawnPlan>);

/* The memory a plan points into, owned by the parent until the child has
 * executed or failed. Every buffer is a heap block of its own, so moving a
 * PlanStorage leaves the plan's pointers valid; copying it does not. The
 * plan also points into the options (argv, the strings of envp, cwd) and
 * into environ's strings. */
struct PlanStorage {
    std::vector<char> path;        /* the program found in PATH, with its NUL */
    std::vector<char *> envp;      /* NULL-terminated */
    std::vector<char> record_slot; /* "IPCBARRIER=" and BARRIER_RECORD_MAX bytes */
    std::vector<PlanFdMove> fd_moves;
    std::vector<int> keep_fds;
    std::vector<PlanRlimit> rlimits;
    std::vector<gid_t> groups;
};

/* Points plan's lists at those of storage (PlanStorage, or the
 * trampoline's PlanReadStorage), which must outlive it. */
template <class Storage>
void plan_use_lists(SpawnPlan *plan, const Storage &storage) noexcept {
    plan->rlimits = storage.rlimits.data();
    plan->n_rlimits = storage.rlimits.size();
    plan->fd_moves = storage.fd_moves.data();
    plan->n_fd_moves = storage.fd_moves.size();
    plan->keep_fds = storage.keep_fds.data();
    plan->n_keep_fds = storage.keep_fds.size();
    plan->groups = storage.groups.data();
    plan->n_groups = storage.groups.size();
}

/* What the path adds to a plan: the child's side of the barrier (NULL on
 * the vfork path), the write end of the report pipe (-1 on the vfork path),
 * the shared status, and the parent's pid; and the fd the status is mapped
 * from, where the start holds one (the trampoline path's, which the helper
 * maps; else -1), so that no mapping names it as a parent fd. */
struct PlanContext {
    Barrier *barrier;
    int report_fd;
    SpawnStatus *status;
    pid_t parent_pid;
    int status_fd;
};

/* Checks options and compiles them into *ret_plan, with storage holding
 * what it points to. In the parent, before any fork and before the path
 * blocks signals (with IPCB_SPAWN_KEEP_SIGNALS the program gets the mask
 * the calling thread has now); may allocate; opens no fd. The program is
 * searched in the PATH of the child's environment (default
 * "/usr/local/bin:/usr/bin:/bin"), relative entries relative to the child's
 * cwd, as execvp() would after chdir(). Returns 0, or -errno with the step
 * in *ret_error (if not NULL): IPCB_STEP_PREPARE (-EINVAL for options that
 * contradict or are out of range, -EBADF for an fd that is not open or
 * belongs to the start, -ENOMEM), or IPCB_STEP_PATH (-ENOENT, or -EACCES
 * when only files that cannot be executed were found); nothing is changed
 * then. */
[[nodiscard]] int plan_compile(const IpcbSpawnOptions *options, const PlanContext &context,
                               PlanStorage *storage, SpawnPlan *ret_plan,
                               IpcbSpawnError *ret_error) noexcept;

/* Carries out plan in the child: every setup step, the child callback, the
 * meeting at the barrier, and execve(). Returns only on failure, after
 * recording step and errno in plan->status (and aborting the barrier with
 * the errno); the caller then _exit()s and must not use the barrier, whose
 * fds plan_run() may have moved. Async-signal-safe. It writes only its
 * stack and *plan->status, and, on the paths that have a barrier (where the
 * child has memory of its own), *plan->barrier and the record slot. It
 * needs less than 2 KiB of stack (more under sanitizers) besides the child
 * callback's. */
void plan_run(const SpawnPlan *plan) noexcept;

}  // namespace ipcbarrier::detail
