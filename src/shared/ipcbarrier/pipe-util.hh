/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if __cplusplus < 202002L
#error "the ipcbarrier C++ headers need C++20 (-std=c++20); C code uses <ipcbarrier/barrier.h>"
#endif

/* Pipes whose two ends are owned from the moment they exist. */

#include <ipcbarrier/export.h>
#include <ipcbarrier/fd-util.hh>

namespace ipcbarrier {

/* Both ends of a pipe. Moving or destroying it moves or closes both. */
struct Pipe {
    UniqueFd read_end;
    UniqueFd write_end;
};

enum class PipeMode { blocking, nonblocking };

/* Creates a pipe with both ends close-on-exec (and O_NONBLOCK for
 * PipeMode::nonblocking) and stores it in *ret_pipe. Returns 0 or -errno;
 * *ret_pipe is untouched on failure. */
[[nodiscard]] IPCBARRIER_EXPORT int pipe_new(PipeMode mode, Pipe *ret_pipe) noexcept;

}  // namespace ipcbarrier
