/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Starting a program with a setup phase on each side (see ipcb_spawn(3)):
 * the child's setup is described as data, the parent's is a callback that
 * runs while the child waits; the two meet at a barrier, and only then does
 * the child execve(). Failures come back as the step that failed and its
 * errno. Library ipcbarrier-exec; the C++ interface is in spawn.hh. */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <ipcbarrier/barrier.h>
#include <ipcbarrier/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Which step of starting the program failed, in the order the child takes
 * them. The first and the last few are the parent's. */
typedef enum IpcbSpawnStep {
    IPCB_STEP_NONE = 0,       /* nothing failed */
    IPCB_STEP_PREPARE,        /* the parent, before any child exists: options, memory */
    IPCB_STEP_PATH,           /* the parent, searching $PATH for the program */
    IPCB_STEP_CLONE,          /* the parent, creating the child */
    IPCB_STEP_HELPER,         /* the trampoline: starting the helper, reading the plan */
    IPCB_STEP_DEADLINE,       /* arming the pre-exec deadline in the child */
    IPCB_STEP_SIGNALS,        /* resetting signal dispositions and the mask */
    IPCB_STEP_PARENT_DEATH,   /* prctl(PR_SET_PDEATHSIG), or the parent died before it */
    IPCB_STEP_SESSION,        /* setsid() */
    IPCB_STEP_PROCESS_GROUP,  /* setpgid() */
    IPCB_STEP_CGROUP,         /* joining the cgroup */
    IPCB_STEP_RLIMITS,        /* setrlimit() */
    IPCB_STEP_FDS,            /* putting the fds in place */
    IPCB_STEP_CLOSE_FDS,      /* closing every other fd */
    IPCB_STEP_GROUPS,         /* setgroups() */
    IPCB_STEP_GID,            /* setresgid() */
    IPCB_STEP_UID,            /* setresuid() */
    IPCB_STEP_UMASK,          /* umask() (cannot fail; listed for the timeline) */
    IPCB_STEP_CWD,            /* chdir() */
    IPCB_STEP_NO_NEW_PRIVS,   /* prctl(PR_SET_NO_NEW_PRIVS) */
    IPCB_STEP_CHILD_CALLBACK, /* the child callback returned an error */
    IPCB_STEP_BARRIER,        /* meeting the other side at the barrier */
    IPCB_STEP_PARENT_SETUP,   /* the parent's setup callback returned an error */
    IPCB_STEP_HANDOVER,       /* handing the barrier to the program */
    IPCB_STEP_EXEC,           /* execve() or execveat() */
    IPCB_STEP_READY,          /* waiting for the program to signal readiness */
    _IPCB_STEP_MAX,
} IpcbSpawnStep;

/* The exact error of a failed start: the step and its errno (positive).
 * error is ETIMEDOUT when the deadline expired while step was running. */
typedef struct IpcbSpawnError {
    IpcbSpawnStep step;
    int error;
} IpcbSpawnError;

/* How the child is created; see "Choosing a path" in ipcb_spawn(3). */
typedef enum IpcbSpawnMethod {
    IPCB_METHOD_AUTO = 0,   /* vfork without parent setup and child callback, else
                             * trampoline without child callback, else fork */
    IPCB_METHOD_VFORK,      /* clone(CLONE_VM|CLONE_VFORK): no parent setup, no callback */
    IPCB_METHOD_TRAMPOLINE, /* vfork into the installed helper, which meets the parent */
    IPCB_METHOD_FORK,       /* fork(): allows an async-signal-safe child callback */
} IpcbSpawnMethod;

/* One fd of the child: child_fd in the child is what parent_fd is in the
 * parent (parent_fd -1: /dev/null, opened read-write). Mappings may
 * overlap, swap and form cycles: each child fd gets what its parent fd was
 * before any of them was moved. */
typedef struct IpcbSpawnFd {
    int child_fd;
    int parent_fd;
} IpcbSpawnFd;

typedef struct IpcbSpawnRlimit {
    int resource; /* RLIMIT_* */
    struct rlimit limit;
} IpcbSpawnRlimit;

/* What the parent's setup gets, while the child waits for it. */
typedef struct IpcbSpawnChild {
    pid_t pid;
    int pidfd; /* borrowed: owned by the spawn */
} IpcbSpawnChild;

/* The parent's setup: runs after the child exists and before it executes,
 * concurrently with the child's own setup. Returns >= 0, or -errno to make
 * the start fail with IPCB_STEP_PARENT_SETUP and that errno. */
typedef int (*ipcb_parent_setup_t)(const IpcbSpawnChild *child, void *userdata);

/* The child callback, fork path only: runs in the child after its own
 * setup, before it meets the parent. Must be async-signal-safe. Returns >= 0,
 * or -errno to make the start fail with IPCB_STEP_CHILD_CALLBACK. */
typedef int (*ipcb_child_callback_t)(void *userdata);

/* The milestones of a start, in the order the caller learns them; see
 * "Progress" in ipcb_spawn(3). The vfork path has no meeting: it reports
 * only IPCB_PROGRESS_SPAWNED and IPCB_PROGRESS_EXECUTED. */
typedef enum IpcbSpawnProgress {
    IPCB_PROGRESS_SPAWNED = 0,       /* the child exists: its pid and pidfd are known */
    IPCB_PROGRESS_PARENT_SETUP_DONE, /* the parent's setup returned success (or there is none) */
    IPCB_PROGRESS_CHILD_SETUP_DONE,  /* the child finished its setup and reached the barrier */
    IPCB_PROGRESS_SYNCED,            /* the parent answered: the two sides have met */
    IPCB_PROGRESS_EXECUTED,          /* the program has been executed */
    _IPCB_PROGRESS_MAX,
} IpcbSpawnProgress;

/* Told of each milestone that the start reached, in the calling thread,
 * never in the child; nothing after a failure. child is valid only during
 * the call, as for the parent setup. */
typedef void (*ipcb_progress_t)(IpcbSpawnProgress event, const IpcbSpawnChild *child,
                                void *userdata);

/* flags: what to do besides the defaults, which are zero so that a
 * designated initializer leaves them on. */
enum {
    IPCB_SPAWN_KEEP_FDS = 1 << 0,          /* keep inherited (not close-on-exec) fds */
    IPCB_SPAWN_KEEP_SIGNALS = 1 << 1,      /* keep ignored signals and the signal mask */
    IPCB_SPAWN_NO_PATH_SEARCH = 1 << 2,    /* execute path (or argv[0]) as given */
    IPCB_SPAWN_EXEC_FD = 1 << 3,           /* execute exec_fd with execveat() */
    IPCB_SPAWN_NEW_SESSION = 1 << 4,       /* setsid() */
    IPCB_SPAWN_NEW_PROCESS_GROUP = 1 << 5, /* setpgid(0, 0) */
    IPCB_SPAWN_SET_UID = 1 << 6,           /* setresuid(uid, uid, uid) */
    IPCB_SPAWN_SET_GID = 1 << 7,           /* setresgid(gid, gid, gid) */
    IPCB_SPAWN_SET_GROUPS = 1 << 8,        /* setgroups(n_groups, groups) */
    IPCB_SPAWN_SET_UMASK = 1 << 9,         /* umask(umask) */
    IPCB_SPAWN_NO_NEW_PRIVS = 1 << 10,     /* prctl(PR_SET_NO_NEW_PRIVS) */
    IPCB_SPAWN_CGROUP = 1 << 11,           /* start in the cgroup v2 directory cgroup_fd */
    IPCB_SPAWN_READY = 1 << 12,            /* hand the barrier to the program, which
                                            * signals readiness by placing a point */
};

/* In C++ every member gets a default member initializer: g++ warns about
 * the members a designated initializer leaves out otherwise
 * (-Wmissing-field-initializers), and the struct is the same either way. */
#ifdef __cplusplus
#define IPCB_ZERO_ = {}
#else
#define IPCB_ZERO_
#endif

/* The one options aggregate. Zero means "the default" for every field. */
typedef struct IpcbSpawnOptions {
    const char *const *argv IPCB_ZERO_;      /* NULL-terminated, argv[0] at least */
    const char *path IPCB_ZERO_;             /* the program; NULL: argv[0], searched in the PATH
                                              * of the child's environment unless it has a '/' */
    int exec_fd IPCB_ZERO_;                  /* with IPCB_SPAWN_EXEC_FD */
    const char *const *envp IPCB_ZERO_;      /* NULL-terminated; NULL: the parent's environ */
    const char *const *env_set IPCB_ZERO_;   /* "NAME=VALUE" added to envp, replacing NAME */
    const char *const *env_unset IPCB_ZERO_; /* names removed from envp */
    const char *cwd IPCB_ZERO_;              /* chdir() to it; NULL: stay */
    mode_t umask IPCB_ZERO_;                 /* with IPCB_SPAWN_SET_UMASK */
    const IpcbSpawnFd *fds IPCB_ZERO_;       /* the child's fds, stdio included */
    size_t n_fds IPCB_ZERO_;
    const IpcbSpawnRlimit *rlimits IPCB_ZERO_;
    size_t n_rlimits IPCB_ZERO_;
    uid_t uid IPCB_ZERO_;           /* with IPCB_SPAWN_SET_UID */
    gid_t gid IPCB_ZERO_;           /* with IPCB_SPAWN_SET_GID */
    const gid_t *groups IPCB_ZERO_; /* with IPCB_SPAWN_SET_GROUPS */
    size_t n_groups IPCB_ZERO_;
    int parent_death_signal IPCB_ZERO_;     /* 0: none */
    int cgroup_fd IPCB_ZERO_;               /* with IPCB_SPAWN_CGROUP */
    uint64_t flags IPCB_ZERO_;              /* IPCB_SPAWN_* */
    uint64_t setup_timeout_usec IPCB_ZERO_; /* the whole pre-exec phase; 0: no limit */
    ipcb_parent_setup_t parent_setup IPCB_ZERO_;
    void *parent_setup_userdata IPCB_ZERO_;
    ipcb_child_callback_t child_callback IPCB_ZERO_;
    void *child_callback_userdata IPCB_ZERO_;
    IpcbSpawnMethod method IPCB_ZERO_;
    ipcb_progress_t progress IPCB_ZERO_; /* NULL: nobody is told */
    void *progress_userdata IPCB_ZERO_;
} IpcbSpawnOptions;

#undef IPCB_ZERO_

/* A started program. Owns pidfd (and, with IPCB_SPAWN_READY, the parent's
 * side of the barrier). Initialize with IPCB_PROCESS_NULL. */
typedef struct IpcbProcess {
    pid_t pid;       /* 0 once reaped */
    int pidfd;       /* -1 where the kernel has none */
    Barrier barrier; /* empty unless IPCB_SPAWN_READY */
} IpcbProcess;

/* clang-format off */
#define IPCB_PROCESS_NULL {0, -1, BARRIER_NULL}
/* clang-format on */

/* Starts the program. On success fills *ret (the program has executed, or,
 * with IPCB_SPAWN_READY, executed and holds its side of the barrier) and
 * returns 0. On failure returns -errno, the child (if any) has been killed
 * and reaped, nothing is left open, and *ret_error (if not NULL) tells the
 * step and its errno. */
IPCBARRIER_EXPORT int ipcb_spawn(const IpcbSpawnOptions *options, IpcbProcess *ret,
                                 IpcbSpawnError *ret_error);

/* The step's name ("chdir", "execve", ...), or NULL for an unknown step. */
IPCBARRIER_EXPORT const char *ipcb_spawn_step_to_string(IpcbSpawnStep step);

/* Formats the error as one line, "STEP: strerror(ERROR)", into buf (with
 * its NUL, truncated to size). Returns the length it needed, as snprintf()
 * does. */
IPCBARRIER_EXPORT int ipcb_spawn_error_format(const IpcbSpawnError *error, char *buf, size_t size);

/* Waits up to timeout_usec (UINT64_MAX: no limit, 0: look) for the process
 * to end, reaps it and stores how in *ret_info (as waitid() does).
 * Returns 0, -ETIMEDOUT, -ECHILD once reaped, or another -errno. */
IPCBARRIER_EXPORT int ipcb_process_wait(IpcbProcess *p, uint64_t timeout_usec, siginfo_t *ret_info);

/* Sends sig to the process (through its pidfd, so never to a recycled
 * pid), or to its process group when group is true. Returns 0 or -errno
 * (-ESRCH once it has ended). */
IPCBARRIER_EXPORT int ipcb_process_kill(IpcbProcess *p, int sig, bool group);

/* Closes the pidfd and the barrier without waiting: the process goes on,
 * unreaped. Safe on IPCB_PROCESS_NULL and twice. */
IPCBARRIER_EXPORT void ipcb_process_close(IpcbProcess *p);

#ifdef __cplusplus
}
#endif
