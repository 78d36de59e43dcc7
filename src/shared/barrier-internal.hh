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

/* Takes over the child's side of a fresh barrier (no point placed, nothing
 * aborted) from three fds inherited across execve(): the eventfd written,
 * the eventfd read and the pipe's write end, and makes them close-on-exec
 * again. For the exec helper, which its library starts with a barrier it
 * has just made: unlike barrier_deserialize() it checks only what needs no
 * /proc (each fd open and above stdio, the eventfds non-blocking and open
 * for reading and writing, the pipe end a FIFO open for writing, all three
 * distinct), with one fcntl() each, as the start of every helper pays for
 * it. Returns 0, -EBADF or -EBADFD, and changes nothing on failure. */
int barrier_adopt_child(Barrier *ret, int me, int them, int pipe_write) noexcept;

}  // namespace ipcbarrier::detail
