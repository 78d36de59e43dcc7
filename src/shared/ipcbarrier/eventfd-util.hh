/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if __cplusplus < 202002L
#error "the ipcbarrier C++ headers need C++20 (-std=c++20); C code uses <ipcbarrier/barrier.h>"
#endif

/* eventfd(2) counters: one side adds, the other drains. */

#include <cstdint>

#include <ipcbarrier/export.h>
#include <ipcbarrier/fd-util.hh>

namespace ipcbarrier {

enum class EventfdMode { blocking, nonblocking };

/* Creates a close-on-exec eventfd with counter 0 and stores it in *ret_fd.
 * Returns 0 or -errno (-EMFILE, -ENFILE, -ENOMEM); *ret_fd is untouched on
 * failure. */
[[nodiscard]] IPCBARRIER_EXPORT int eventfd_new(EventfdMode mode, UniqueFd *ret_fd) noexcept;

/* Adds value (1 .. 2^64-2) to the counter. A signal that interrupts the
 * write is retried; the kernel adds all or nothing. Returns 0, -EAGAIN if the
 * fd is non-blocking and the sum would exceed 2^64-2, -EINVAL for value 0 or
 * 2^64-1, or another -errno. Async-signal-safe. */
[[nodiscard]] IPCBARRIER_EXPORT int eventfd_add(BorrowedFd fd, uint64_t value) noexcept;

/* Reads the counter and resets it to zero, storing the value in *ret_value.
 * A signal that interrupts the read is retried. Returns 0, -EAGAIN if the
 * fd is non-blocking and the counter is zero, or another -errno; *ret_value
 * is written only on success. Async-signal-safe. */
[[nodiscard]] IPCBARRIER_EXPORT int eventfd_drain(BorrowedFd fd, uint64_t *ret_value) noexcept;

}  // namespace ipcbarrier
