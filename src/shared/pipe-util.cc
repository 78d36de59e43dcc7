/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/pipe-util.hh>

#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

namespace ipcbarrier {

int pipe_new(PipeMode mode, Pipe *ret_pipe) noexcept {
    int fds[2];
    int flags = O_CLOEXEC | (mode == PipeMode::nonblocking ? O_NONBLOCK : 0);
    if (pipe2(fds, flags) < 0) return -errno;
    ret_pipe->read_end.reset(fds[0]);
    ret_pipe->write_end.reset(fds[1]);
    return 0;
}

}  // namespace ipcbarrier
