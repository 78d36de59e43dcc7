/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "spawn-helper.hh"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef IPCB_EXEC_HELPER_PATH
#error "IPCB_EXEC_HELPER_PATH: the installed helper's path, set by the build"
#endif

namespace ipcbarrier::detail {
namespace {

/* The helper as opened: the fd, and the file it named then. */
struct HelperFile {
    int fd;
    dev_t dev;
    ino_t ino;
    /* The one this replaced, whose fd was no longer ours: kept so that
     * the memory stays reachable, as the process keeps all of them. */
    const HelperFile *replaced;
};

/* Published once complete; never freed. */
std::atomic<const HelperFile *> g_helper{nullptr};

bool still_ours(const HelperFile *h) noexcept {
    struct stat st;
    return fstat(h->fd, &st) == 0 && st.st_dev == h->dev && st.st_ino == h->ino;
}

/* The helper is opened when the library is loaded, not at the first
 * start: then it is the one installed with the library this process runs,
 * even if an upgrade replaces both before the process first needs it (a
 * newer helper may read another version of the plan's format), and its fd
 * exists from the start of the process instead of appearing in the middle
 * of it. A failure is not kept: the first start tries again. */
__attribute__((constructor)) void open_at_load() {
    int saved = errno;
    (void)exec_helper_fd();
    errno = saved;
}

}  // namespace

const char *exec_helper_path() noexcept {
    /* secure_getenv() is NULL in a secure context: the override is the
     * environment's, and the environment is the less privileged caller's. */
    const char *path = secure_getenv(IPCB_EXEC_HELPER_ENV);
    return path && *path ? path : IPCB_EXEC_HELPER_PATH;
}

int exec_helper_fd() noexcept {
    const HelperFile *current = g_helper.load(std::memory_order_acquire);
    for (;;) {
        if (current && still_ours(current)) return current->fd;

        /* O_PATH: nothing is read through it, execveat() only needs the
         * file. Opened once, it names this very file whatever later
         * happens to the path: an upgrade that renames a new helper over
         * it leaves this one in place, for as long as we hold it. */
        int fd = open(exec_helper_path(), O_PATH | O_CLOEXEC);
        if (fd < 0) return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0) {
            int r = -errno;
            (void)close(fd);
            return r;
        }
        auto *h = new (std::nothrow) HelperFile{fd, st.st_dev, st.st_ino, current};
        if (!h) {
            (void)close(fd);
            return -ENOMEM;
        }
        /* Two threads may both have found none (or a stale one): the first
         * to publish wins, the other takes the winner's. A stale fd is not
         * closed: its number is no longer ours. */
        if (g_helper.compare_exchange_strong(current, h, std::memory_order_acq_rel,
                                             std::memory_order_acquire))
            return fd;
        (void)close(fd);
        delete h;
    }
}

}  // namespace ipcbarrier::detail
