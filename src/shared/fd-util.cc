/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/fd-util.hh>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc-internal.hh"
#include "fd-util-internal.hh"

namespace ipcbarrier {

int safe_close(int fd) noexcept {
    if (fd >= 0) {
        int saved = errno;
        /* No retry on EINTR: Linux has released the number either way. */
        (void)close(fd);
        errno = saved;
    }
    return -1;
}

namespace {

int fd_update_flag(int fd, int get_cmd, int set_cmd, int flag, bool on) noexcept {
    int flags = fcntl(fd, get_cmd);
    if (flags < 0) return -errno;
    int nflags = on ? (flags | flag) : (flags & ~flag);
    if (nflags == flags) return 0;
    if (fcntl(fd, set_cmd, nflags) < 0) return -errno;
    return 0;
}

bool is_sorted_ascending(std::span<const int> v) noexcept {
    for (size_t i = 1; i < v.size(); i++)
        if (v[i] < v[i - 1]) return false;
    return true;
}

bool contains_sorted(std::span<const int> v, int fd) noexcept {
    return std::binary_search(v.begin(), v.end(), fd);
}

}  // namespace

int fd_set_cloexec(BorrowedFd fd, bool on) noexcept {
    return fd_update_flag(fd.get(), F_GETFD, F_SETFD, FD_CLOEXEC, on);
}

int fd_set_nonblock(BorrowedFd fd, bool on) noexcept {
    return fd_update_flag(fd.get(), F_GETFL, F_SETFL, O_NONBLOCK, on);
}

int fd_get_cloexec(BorrowedFd fd) noexcept {
    int flags = fcntl(fd.get(), F_GETFD);
    if (flags < 0) return -errno;
    return (flags & FD_CLOEXEC) ? 1 : 0;
}

namespace detail {

int close_all_fds_by_close_range(std::span<const int> sorted_except) noexcept {
    unsigned start = 3;
    for (int e : sorted_except) {
        if (e < 0 || static_cast<unsigned>(e) < start) continue;
        if (static_cast<unsigned>(e) > start &&
            syscall(SYS_close_range, start, static_cast<unsigned>(e) - 1, 0U) < 0)
            return -errno;
        start = static_cast<unsigned>(e) + 1;
    }
    if (syscall(SYS_close_range, start, UINT_MAX, 0U) < 0) return -errno;
    return 0;
}

int close_all_fds_by_proc(std::span<const int> sorted_except) noexcept {
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -errno;

    /* getdents64 straight into the stack: opendir() would allocate. */
    alignas(8) char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n < 0) {
            int r = -errno;
            safe_close(dir);
            return r;
        }
        if (n == 0) break;
        for (long off = 0; off < n;) {
            auto *d = reinterpret_cast<struct dirent64 *>(buf + off);
            off += d->d_reclen;
            const char *p = d->d_name;
            if (*p < '0' || *p > '9') continue;
            long fd = 0;
            for (; *p >= '0' && *p <= '9' && fd <= INT_MAX; p++) fd = fd * 10 + (*p - '0');
            if (*p != '\0' || fd > INT_MAX) continue;
            if (fd < 3 || fd == dir || contains_sorted(sorted_except, static_cast<int>(fd)))
                continue;
            /* Closing while reading is fine: /proc/self/fd is indexed by
             * number, so the remaining entries do not move. */
            safe_close(static_cast<int>(fd));
        }
    }
    safe_close(dir);
    return 0;
}

int close_all_fds_by_loop(std::span<const int> sorted_except) noexcept {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return -errno;
    /* Without /proc nothing lists the open fds. The hard limit bounds
     * them unless it was lowered while higher fds were open; that case is
     * not covered, and only the soft limit would be worse. */
    rlim_t max = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > INT_MAX ? INT_MAX : rl.rlim_max;
    for (rlim_t fd = 3; fd < max; fd++)
        if (!contains_sorted(sorted_except, static_cast<int>(fd))) safe_close(static_cast<int>(fd));
    return 0;
}

}  // namespace detail

int close_all_fds_sorted(std::span<const int> except) noexcept {
    if (!is_sorted_ascending(except)) return -EINVAL;

    int r = detail::close_all_fds_by_close_range(except);
    if (r != -ENOSYS && r != -EPERM) return r;
    /* Old kernel, or a seccomp filter that refuses close_range(). */
    r = detail::close_all_fds_by_proc(except);
    if (r != -ENOENT && r != -EACCES && r != -EMFILE && r != -ENFILE) return r;
    /* No /proc (early boot, chroot), or no fd left to open it. */
    return detail::close_all_fds_by_loop(except);
}

int close_all_fds(std::span<const int> except) noexcept {
    if (is_sorted_ascending(except)) return close_all_fds_sorted(except);
    return detail::catch_oom([except] {
        std::vector<int> sorted(except.begin(), except.end());
        std::sort(sorted.begin(), sorted.end());
        return close_all_fds_sorted(sorted);
    });
}

int fd_move_above_stdio(int fd) noexcept {
    if (fd < 0) return -EBADF;
    if (fd > 2) return fd;
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) return -errno;
    safe_close(fd);
    return copy;
}

int rearrange_stdio(int in, int out, int err) noexcept {
    int src[3] = {in, out, err};
    int temps[4] = {-1, -1, -1, -1};
    int ntemps = 0;
    int r = 0;

    auto fail = [&](int error) noexcept {
        for (int i = 0; i < ntemps; i++) safe_close(temps[i]);
        return error;
    };

    /* Check the sources first: /dev/null could otherwise be opened on the
     * number of a closed source and silently stand in for it. */
    for (int s : src)
        if (s >= 0 && fcntl(s, F_GETFD) < 0) return -errno;

    bool need_null = in < 0 || out < 0 || err < 0;
    if (need_null) {
        /* Opened first and moved above stdio, so that it cannot land on a
         * slot that a later dup2() overwrites. */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (null < 0) return fail(-errno);
        if (null < 3) {
            int moved = fcntl(null, F_DUPFD_CLOEXEC, 3);
            safe_close(null); /* preserves errno */
            if (moved < 0) return fail(-errno);
            null = moved;
        }
        temps[ntemps++] = null;
        for (int &s : src)
            if (s < 0) s = null;
    }

    /* A source that is another slot's number would be overwritten by that
     * slot's dup2() before it is copied: move every such source aside
     * first. A source already in its own slot stays; nothing writes to it. */
    for (int i = 0; i < 3; i++) {
        if (src[i] >= 3 || src[i] == i) continue;
        int copy = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
        if (copy < 0) return fail(-errno);
        temps[ntemps++] = copy;
        src[i] = copy;
    }

    for (int i = 0; i < 3; i++) {
        if (src[i] == i)
            r = fd_set_cloexec(BorrowedFd(i), false);
        else if (dup2(src[i], i) < 0) /* dup2() leaves the copy inheritable */
            r = -errno;
        if (r < 0) return fail(r);
    }
    return fail(0);
}

}  // namespace ipcbarrier
