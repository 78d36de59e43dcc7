/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* clone3() for a child that shares the caller's memory and runs a function
 * on a stack of its own, as glibc's clone() does for clone(): glibc 2.36
 * has no clone3() wrapper, and the new stack means that the child cannot
 * return into the caller's frames, so the entry is written in assembly.
 * x86_64 only, for now; elsewhere clone3_call() fails with ENOSYS, and the
 * child joins its cgroup by itself. */

#include <cstddef>
#include <cstdint>

namespace ipcbarrier::detail {

/* Linux 5.7's flag, which glibc 2.36's <sched.h> does not name. */
constexpr uint64_t kCloneIntoCgroup = 0x200000000ULL;

/* The kernel's struct clone_args as of Linux 5.7, which added the cgroup
 * field (the installed <linux/sched.h> may be older). */
struct CloneArgs {
    uint64_t flags;
    uint64_t pidfd; /* where CLONE_PIDFD stores the pidfd */
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack; /* the lowest address of the child's stack */
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup; /* the cgroup v2 directory fd, with CLONE_INTO_CGROUP */
};

/* Whether clone3_call() is more than a failure with ENOSYS here. */
#if defined(__x86_64__)
constexpr bool kHaveClone3Call = true;
#else
constexpr bool kHaveClone3Call = false;
#endif

/* Creates the child that args describes. The child calls fn(arg) on
 * args->stack and ends with _exit()'s system call and fn's result, unless
 * it executes a program first. Returns the child's pid, or -errno. */
long clone3_call(CloneArgs *args, int (*fn)(void *), void *arg) noexcept;

}  // namespace ipcbarrier::detail
