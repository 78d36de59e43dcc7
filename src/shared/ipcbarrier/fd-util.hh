/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if __cplusplus < 202002L
#error "the ipcbarrier C++ headers need C++20 (-std=c++20); C code uses <ipcbarrier/barrier.h>"
#endif

/* Owned and borrowed file descriptors, and the fd plumbing that process
 * setup needs. Every function returns >= 0 on success and -errno on failure
 * and never touches errno on the caller's behalf unless it says so. The
 * functions marked async-signal-safe allocate nothing and take no lock: they
 * may run in a child between fork() and execve(). */

#include <cstddef>
#include <span>

#include <ipcbarrier/export.h>

namespace ipcbarrier {

/* Closes fd if it is >= 0 and returns -1, so that callers write
 * "fd = safe_close(fd);" and no stale number survives. errno is preserved.
 * close() is never retried: on Linux the descriptor is released even when
 * close() reports EINTR, and a retry could close an fd another thread has
 * just been given. Async-signal-safe. */
IPCBARRIER_EXPORT int safe_close(int fd) noexcept;

/* A file descriptor that must only be used, never closed, by the callee. It
 * is implicitly made from a UniqueFd so that owners can pass theirs, and
 * explicitly from a raw number. */
class BorrowedFd {
  public:
    constexpr explicit BorrowedFd(int fd) noexcept : fd_(fd) {}
    [[nodiscard]] constexpr int get() const noexcept { return fd_; }

  private:
    int fd_;
};

/* The only owner of a file descriptor. Move-only; closes on destruction and
 * on reset(). There is deliberately no conversion to int: use get() to lend
 * the number, release() to give up ownership. */
class UniqueFd {
  public:
    constexpr UniqueFd() noexcept = default;
    constexpr explicit UniqueFd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
    UniqueFd(UniqueFd &&other) noexcept : fd_(other.release()) {}
    UniqueFd &operator=(UniqueFd &&other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    UniqueFd(const UniqueFd &) = delete;
    UniqueFd &operator=(const UniqueFd &) = delete;
    ~UniqueFd() { reset(); }

    [[nodiscard]] constexpr int get() const noexcept { return fd_; }
    [[nodiscard]] constexpr bool valid() const noexcept { return fd_ >= 0; }
    constexpr explicit operator bool() const noexcept { return valid(); }
    constexpr operator BorrowedFd() const noexcept { return BorrowedFd(fd_); }

    /* Gives up ownership and returns the number; the caller must close it. */
    [[nodiscard]] int release() noexcept {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

    /* Closes the current fd (if any) and takes ownership of fd. errno is
     * preserved, so reset() is safe on error paths. */
    void reset(int fd = -1) noexcept {
        safe_close(fd_);
        fd_ = fd < 0 ? -1 : fd;
    }

  private:
    int fd_ = -1;
};

/* Sets (on=true) or clears FD_CLOEXEC. Returns 0 or -errno.
 * Async-signal-safe. */
[[nodiscard]] IPCBARRIER_EXPORT int fd_set_cloexec(BorrowedFd fd, bool on) noexcept;

/* Sets (on=true) or clears O_NONBLOCK. Returns 0 or -errno.
 * Async-signal-safe. */
[[nodiscard]] IPCBARRIER_EXPORT int fd_set_nonblock(BorrowedFd fd, bool on) noexcept;

/* Returns 1 if FD_CLOEXEC is set, 0 if not, -errno (-EBADF for a closed fd). */
[[nodiscard]] IPCBARRIER_EXPORT int fd_get_cloexec(BorrowedFd fd) noexcept;

/* Closes every descriptor >= 3 except those in except (any order; values
 * < 3 or repeated are fine). Uses close_range(2) over the gaps between the
 * exceptions, so its cost does not depend on RLIMIT_NOFILE; falls back to
 * walking /proc/self/fd. Returns 0 or -errno (-ENOMEM if the exception list
 * had to be sorted and could not be copied). Not async-signal-safe: use
 * close_all_fds_sorted() after fork(). */
[[nodiscard]] IPCBARRIER_EXPORT int close_all_fds(std::span<const int> except) noexcept;

/* As close_all_fds(), but except must be sorted ascending (repeats are
 * allowed) and nothing is allocated: async-signal-safe. Falls back to
 * /proc/self/fd (read with a stack buffer) and, without /proc, to a loop
 * bounded by the highest possibly open descriptor. Returns 0 or -errno;
 * -EINVAL if except is not sorted. */
[[nodiscard]] IPCBARRIER_EXPORT int close_all_fds_sorted(std::span<const int> except) noexcept;

/* If fd is 0, 1 or 2, duplicates it to the lowest free number >= 3
 * (close-on-exec) and closes the original; otherwise leaves it. Returns the
 * resulting fd, or -errno (the original is then untouched): -EMFILE when no
 * number >= 3 is free, -EINVAL when RLIMIT_NOFILE is 3 or less.
 * Async-signal-safe. */
[[nodiscard]] IPCBARRIER_EXPORT int fd_move_above_stdio(int fd) noexcept;

/* Makes descriptors 0, 1 and 2 copies of in, out and err; a negative value
 * means /dev/null. Works when the sources overlap stdio or each other in
 * any way (swapped stdout/stderr, one fd for all three, a source that is
 * already in place). Afterwards 0-2 are not close-on-exec; sources above 2
 * stay open and owned by the caller. On failure stdio may be partly
 * rearranged. Returns 0 or -errno (-EBADF for a source that is not open).
 * Async-signal-safe. */
[[nodiscard]] IPCBARRIER_EXPORT int rearrange_stdio(int in, int out, int err) noexcept;

}  // namespace ipcbarrier
