/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A plan as bytes, for the trampoline path: the parent writes the plan it
 * compiled into an fd, the helper program it executes reads it back into a
 * SpawnPlan of its own and runs it. The helper treats the bytes as
 * untrusted input: the reader checks every count, bound, string, fd
 * number, flag and the order of the fd moves, and refuses any spelling of
 * a plan but the one plan_write() produces (so that, for a plan it
 * accepts, writing it again gives back the very bytes it read).
 *
 * Format, version 1. Integers are little-endian ("i32" in two's
 * complement); nothing is padded and nothing is addressed by offset: the
 * parts follow each other in this order, and the reader refuses bytes
 * after the last one.
 *
 *   header    8 bytes "ipcbplan", u32 version (1), u32 0, u64 size of
 *             the whole plan (at most kPlanFormatMax)
 *   fixed     u64 flags       IPCB_SPAWN_*, known ones only
 *             u64 sigmask     bit n-1 set: signal n blocked in the program
 *             u64 deadline    CLOCK_MONOTONIC microseconds, 0: none
 *             i32 exec_fd     >= 0 with IPCB_SPAWN_EXEC_FD, else -1
 *             i32 cgroup_fd   >= 0 with IPCB_SPAWN_CGROUP, else -1
 *             i32 parent_death_signal  0..64
 *             i32 parent_pid  > 0
 *             i32 fd_floor    at least 3, above every child fd
 *             u32 uid, u32 gid
 *             u32 umask       at most 0777
 *   counts    u32 each: argv (>= 1), envp, rlimits, fd moves, kept fds,
 *             groups (at most 65536, none without IPCB_SPAWN_SET_GROUPS),
 *             handed fds; then u32 strings: bit 0 a path follows (exactly
 *             without IPCB_SPAWN_EXEC_FD), bit 1 a cwd follows
 *   rlimits   i32 resource (0..RLIM_NLIMITS-1), u32 0, u64 cur, u64 max,
 *             cur <= max (UINT64_MAX: infinity)
 *   fd moves  i32 op (FdOp), i32 from, i32 to: the fds an op uses >= 0,
 *             its targets below fd_floor, the others -1; a save is
 *             restored before the next, /dev/null is opened once before
 *             it is used and closed after, nothing is left pending
 *   kept fds  i32, strictly increasing, 0 <= fd < fd_floor
 *   groups    u32
 *   handed    i32 fd, u32 flags (bit 0: close-on-exec in the caller):
 *             strictly increasing, exactly the caller's fds that the plan
 *             uses (the sources of dup, inherit and save, exec_fd,
 *             cgroup_fd), which the helper inherits and sets back to the
 *             caller's close-on-exec state before the plan runs
 *   strings   each NUL-terminated, in this order: the path, the cwd,
 *             argv, envp (without the record slot, which the reader adds
 *             back with IPCB_SPAWN_READY)
 *
 * Byte order and sizes are fixed rather than the machine's, so that a
 * plan means the same to any reader and the fuzzing corpus is the same
 * file everywhere. */

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "spawn-plan.hh"

namespace ipcbarrier::detail {

constexpr uint32_t kPlanFormatVersion = 1;
/* More than any execve() takes: the kernel limits argv and envp together
 * to 6 MiB, whatever the stack limit. */
constexpr size_t kPlanFormatMax = 64 * 1024 * 1024;

/* The trampoline's state file, a memfd that the helper inherits: the
 * SpawnStatus at offset 0, which both map (MAP_SHARED), and the plan's
 * bytes from kStatePlanOffset to the end of the file. */
constexpr size_t kStatePlanOffset = 64;
static_assert(sizeof(SpawnStatus) <= kStatePlanOffset);

/* A caller fd the plan uses, and whether the caller has it close-on-exec:
 * the child clears close-on-exec on it so that it survives the helper's
 * execve(), and the helper puts the caller's state back. */
struct HandedFd {
    int fd;
    bool cloexec;
};

/* The memory a plan read back points into (its strings point into bytes). */
struct PlanReadStorage {
    std::vector<char> bytes;
    std::vector<char *> argv;
    std::vector<char *> envp;
    std::vector<char> record_slot;
    std::vector<PlanFdMove> fd_moves;
    std::vector<int> keep_fds;
    std::vector<PlanRlimit> rlimits;
    std::vector<gid_t> groups;
};

/* Stores in *ret the caller's fds that plan uses, sorted, each with its
 * close-on-exec state as the fd table has it now. Returns 0, -EBADF if one
 * is not open, or -ENOMEM. */
[[nodiscard]] int plan_handed_fds(const SpawnPlan &plan, std::vector<HandedFd> *ret) noexcept;

/* Writes plan and handed (what plan_handed_fds() gave for it) in the format
 * above into *ret. The start's own parts of the plan (barrier, report fd,
 * status) are not written: the helper has its own. Returns 0, -EINVAL for
 * a plan the format cannot carry (a child callback, handed fds that are
 * not the plan's, a record slot that is not the last entry of envp), -E2BIG
 * beyond kPlanFormatMax, or -ENOMEM; *ret is changed only on success. */
[[nodiscard]] int plan_write(const SpawnPlan &plan, std::span<const HandedFd> handed,
                             std::vector<uint8_t> *ret) noexcept;

/* Reads a plan written by plan_write() into *ret_plan, which points into
 * *storage, and its handed fds into *ret_handed. barrier, report_fd,
 * status and the child callback are left empty (NULL, -1) for the caller
 * to fill. Checks only the bytes: the fds are not looked at. Returns 0,
 * -EBADMSG for bytes that are not a plan, -EPROTONOSUPPORT for another
 * version of the format, -E2BIG beyond kPlanFormatMax, or -ENOMEM; nothing
 * is changed on failure. */
[[nodiscard]] int plan_read(std::span<const uint8_t> data, PlanReadStorage *storage,
                            SpawnPlan *ret_plan, std::vector<HandedFd> *ret_handed) noexcept;

}  // namespace ipcbarrier::detail
