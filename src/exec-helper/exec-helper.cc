/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* ipcbarrier-exec-helper: the second half of the trampoline path of
 * ipcb_spawn(3). The library's vfork child executes it (by fd, with
 * execveat()) as
 *
 *   ipcbarrier-exec-helper --state-fd=N --report-fd=N --barrier-fds=M,T,P
 *
 * with an empty environment, every signal blocked, and these fds inherited:
 *   state   a memfd holding the SpawnStatus the caller reads (MAP_SHARED)
 *           and then the plan (spawn-format.hh);
 *   report  the write end of the report pipe, whose EOF tells the caller
 *           that the program was executed or that this process ended;
 *   the child's side of a barrier that has just been made: M the eventfd
 *           it writes, T the one it reads, P the pipe's write end;
 *   the caller's fds that the plan uses, close-on-exec cleared.
 * It takes all of them over, sets close-on-exec on all of them again
 * (the caller's fds back to how the caller had them), rebuilds the plan in
 * its own memory and runs it with plan_run(), which meets the caller at the
 * barrier and executes the program. A failure of its own (bad arguments,
 * fds or plan) is recorded as IPCB_STEP_HELPER with its errno in the
 * status; any failure ends it with _exit(127).
 *
 * It is not meant to be run by hand. Its start-up is part of every start
 * on the trampoline path, so it is linked statically, uses no exceptions
 * and no iostreams, and does nothing before it reads its arguments. */

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcbarrier/barrier.h>

#include "barrier-internal.hh"
#include "helper-runtime.hh"
#include "spawn-format.hh"
#include "spawn-plan.hh"

namespace {

using ipcbarrier::detail::HandedFd;
using ipcbarrier::detail::kPlanFormatMax;
using ipcbarrier::detail::PlanReadStorage;
using ipcbarrier::detail::SpawnPlan;
using ipcbarrier::detail::SpawnStatus;

struct Arguments {
    int state_fd = -1;
    int report_fd = -1;
    int barrier_fds[3] = {-1, -1, -1};
};

/* Without a status to report to, only a person who ran it by hand can be
 * told anything. */
[[noreturn]] void usage() {
    static const char message[] =
        "ipcbarrier-exec-helper: started by libipcbarrier-exec (ipcb_spawn(3)), "
        "not meant to be run by hand\n";
    (void)!write(STDERR_FILENO, message, sizeof message - 1);
    _exit(127);
}

/* The caller's status, once mapped. */
SpawnStatus *mapped_status;

[[noreturn]] void fail(SpawnStatus *status, int error) {
    status->fail_errno = error;
    status->fail_step = IPCB_STEP_HELPER;
    _exit(127);
}

/* A decimal fd number, nothing else. */
bool parse_fd(const char *s, int *ret) {
    if (*s < '0' || *s > '9') return false;
    long v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (*s - '0');
        if (v > INT_MAX) return false;
    }
    if (*s != '\0') return false;
    *ret = static_cast<int>(v);
    return true;
}

/* "M,T,P": three decimal fd numbers. */
bool parse_fd_list(const char *s, int (&ret)[3]) {
    char buf[3][12];
    for (int i = 0; i < 3; i++) {
        size_t n = 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (n + 1 >= sizeof buf[i]) return false;
            buf[i][n++] = *s;
        }
        buf[i][n] = '\0';
        if (!parse_fd(buf[i], &ret[i])) return false;
        if (*s != (i < 2 ? ',' : '\0')) return false;
        s++;
    }
    return true;
}

/* The value of "--name=value" if arg is that option. */
const char *option(const char *arg, const char *name) {
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : nullptr;
}

bool parse_arguments(int argc, char **argv, Arguments *ret) {
    if (argc != 4) return false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = option(argv[i], "--state-fd")) && ret->state_fd < 0) {
            if (!parse_fd(v, &ret->state_fd)) return false;
        } else if ((v = option(argv[i], "--report-fd")) && ret->report_fd < 0) {
            if (!parse_fd(v, &ret->report_fd)) return false;
        } else if ((v = option(argv[i], "--barrier-fds")) && ret->barrier_fds[0] < 0) {
            if (!parse_fd_list(v, ret->barrier_fds)) return false;
        } else {
            return false;
        }
    }
    return true;
}

/* Maps the caller's status from the state file: first, so that every
 * later failure can be reported there. Stores the file's size in *ret_size. */
SpawnStatus *map_status(int fd, off_t *ret_size) {
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        st.st_size < static_cast<off_t>(ipcbarrier::detail::kStatePlanOffset))
        return nullptr;
    void *p = mmap(nullptr, sizeof(SpawnStatus), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return nullptr;
    *ret_size = st.st_size;
    return static_cast<SpawnStatus *>(p);
}

/* The write end of a pipe, made close-on-exec: its EOF is what tells the
 * caller that the program was executed. */
int take_report_fd(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -errno;
    if (!S_ISFIFO(st.st_mode) || (flags & O_ACCMODE) != O_WRONLY) return -EBADFD;
    return fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -errno : 0;
}

/* The plan's bytes, from the state file's end, into memory of its own:
 * what is checked is what runs. Then the fd is closed. */
int read_plan_bytes(int fd, off_t file_size, std::span<uint8_t> *ret) {
    const off_t offset = static_cast<off_t>(ipcbarrier::detail::kStatePlanOffset);
    if (static_cast<uint64_t>(file_size - offset) > kPlanFormatMax) return -E2BIG;
    size_t size = static_cast<size_t>(file_size - offset);
    /* malloc(), not a vector: without exceptions, a failed allocation must
     * come back as an error. Freed by execve() or _exit(). */
    auto *buf = static_cast<uint8_t *>(malloc(size > 0 ? size : 1));
    if (!buf) return -ENOMEM;
    for (size_t done = 0; done < size;) {
        ssize_t n = pread(fd, buf + done, size - done, offset + static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) return -EBADMSG; /* shorter than it was */
        done += static_cast<size_t>(n);
    }
    (void)close(fd);
    *ret = std::span<uint8_t>(buf, size);
    return 0;
}

/* Puts the caller's fds back to the caller's close-on-exec state: the
 * child cleared it on all of them so that they would survive execve(), but
 * the program gets only what the plan maps (or, with IPCB_SPAWN_KEEP_FDS,
 * what the caller let it inherit). None of them may be one of ours. */
int restore_handed(const std::vector<HandedFd> &handed, const int own[], size_t n_own) {
    for (const HandedFd &h : handed) {
        for (size_t i = 0; i < n_own; i++)
            if (own[i] == h.fd) return -EBADFD;
        /* Fails with EBADF for an fd the helper did not get. */
        if (fcntl(h.fd, F_SETFD, h.cloexec ? FD_CLOEXEC : 0) < 0) return -errno;
    }
    return 0;
}

}  // namespace

void ipcb_helper_fatal(int error) noexcept {
    if (mapped_status) fail(mapped_status, error);
    _exit(127);
}

int ipcb_helper_main(int argc, char **argv) noexcept {
    Arguments args;
    if (!parse_arguments(argc, argv, &args) || args.state_fd < 0 || args.report_fd < 0 ||
        args.barrier_fds[0] < 0)
        usage();
    off_t state_size = 0;
    SpawnStatus *status = map_status(args.state_fd, &state_size);
    if (!status) usage();
    mapped_status = status;
    status->step = IPCB_STEP_HELPER;
    /* Executed by fd, the process would be named for the fd's number until
     * the program replaces it: a name that says what waits there. */
    (void)prctl(PR_SET_NAME, "ipcbarrier-exec");

    int r = take_report_fd(args.report_fd);
    if (r < 0) fail(status, -r);

    std::span<uint8_t> bytes;
    r = read_plan_bytes(args.state_fd, state_size, &bytes);
    if (r < 0) fail(status, -r);
    PlanReadStorage storage;
    SpawnPlan plan;
    std::vector<HandedFd> handed;
    r = ipcbarrier::detail::plan_read(bytes, &storage, &plan, &handed);
    if (r < 0) fail(status, -r);

    /* Checks what can be checked of the fds without /proc, and makes them
     * close-on-exec again. */
    Barrier barrier = BARRIER_NULL;
    r = ipcbarrier::detail::barrier_adopt_child(&barrier, args.barrier_fds[0], args.barrier_fds[1],
                                                args.barrier_fds[2]);
    if (r < 0) fail(status, -r);
    int own[4];
    int n_own = barrier_get_fds(&barrier, own);
    if (n_own < 0) fail(status, -n_own);
    own[n_own++] = args.report_fd;
    r = restore_handed(handed, own, static_cast<size_t>(n_own));
    if (r < 0) fail(status, -r);

    plan.barrier = &barrier;
    plan.report_fd = args.report_fd;
    plan.status = status;
    /* Returns only on failure, which it recorded. */
    ipcbarrier::detail::plan_run(&plan);
    _exit(127);
}

/* With libc's start-up, where the helper has no runtime of its own. */
int main(int argc, char **argv) {
    return ipcb_helper_main(argc, argv);
}
