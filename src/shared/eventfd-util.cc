/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/eventfd-util.hh>

#include <cerrno>

#include <sys/eventfd.h>
#include <unistd.h>

namespace ipcbarrier {

int eventfd_new(EventfdMode mode, UniqueFd *ret_fd) noexcept {
    int flags = EFD_CLOEXEC | (mode == EventfdMode::nonblocking ? EFD_NONBLOCK : 0);
    int fd = eventfd(0, flags);
    if (fd < 0) return -errno;
    ret_fd->reset(fd);
    return 0;
}

int eventfd_add(BorrowedFd fd, uint64_t value) noexcept {
    if (value == 0 || value == UINT64_MAX) return -EINVAL;
    for (;;) {
        ssize_t n = write(fd.get(), &value, sizeof value);
        if (n == static_cast<ssize_t>(sizeof value)) return 0;
        if (n >= 0) return -EIO; /* an eventfd transfers 8 bytes or nothing */
        if (errno != EINTR) return -errno;
    }
}

int eventfd_drain(BorrowedFd fd, uint64_t *ret_value) noexcept {
    for (;;) {
        uint64_t value;
        ssize_t n = read(fd.get(), &value, sizeof value);
        if (n == static_cast<ssize_t>(sizeof value)) {
            *ret_value = value;
            return 0;
        }
        if (n >= 0) return -EIO; /* EOF or a short read: not an eventfd */
        if (errno != EINTR) return -errno;
    }
}

}  // namespace ipcbarrier
