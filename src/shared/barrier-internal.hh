/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The barrier's waits by kind, for barrier-event.cc, which maps the public
 * BarrierWaitKind onto them. */

#include <cstdint>

#include <ipcbarrier/barrier.h>

namespace ipcbarrier::detail {

enum class Wait { next, sync_next, sync, abortion };

/* The wait what with a limit: 1, 0, -ETIMEDOUT, -EBADF or an I/O error. */
int barrier_wait(Barrier *b, Wait what, uint64_t timeout_usec) noexcept;

/* What that wait returns without reading: 1 or 0, -EAGAIN when only the
 * fds can tell, -EBADF without role. */
int barrier_peek(const Barrier *b, Wait what) noexcept;

}  // namespace ipcbarrier::detail
