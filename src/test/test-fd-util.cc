/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fd-util: owned fds, fd flags, closing every other fd, and moving stdio.
 * Whatever closes fds wholesale, changes RLIMIT_NOFILE or rewrites 0-2 runs
 * in a forked child, which reports through its exit status. */

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <span>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <glib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ipcbarrier/fd-util.hh>

#include "fd-util-internal.hh"
#include "test-util.h"

namespace {

using ipcbarrier::BorrowedFd;
using ipcbarrier::UniqueFd;

/* Misuse of the owning type must not compile. */
static_assert(!std::is_copy_constructible_v<UniqueFd>);
static_assert(!std::is_copy_assignable_v<UniqueFd>);
static_assert(std::is_nothrow_move_constructible_v<UniqueFd>);
static_assert(std::is_nothrow_move_assignable_v<UniqueFd>);
static_assert(!std::is_convertible_v<int, UniqueFd>);
static_assert(!std::is_convertible_v<UniqueFd, int>);
static_assert(!std::is_convertible_v<int, BorrowedFd>);
static_assert(std::is_convertible_v<const UniqueFd &, BorrowedFd>);
static_assert(std::is_trivially_copyable_v<BorrowedFd>);

/* An errno value that none of the calls under test can produce. */
constexpr int kSentinelErrno = EDOM;

int open_null(int flags = O_CLOEXEC) {
    int fd = open("/dev/null", O_RDONLY | flags);
    g_assert_cmpint(fd, >=, 3);
    return fd;
}

void snapshot_set(FdSnapshot *s, int fd, bool open) {
    uint64_t bit = UINT64_C(1) << (fd % 64);
    if (open)
        s->open[fd / 64] |= bit;
    else
        s->open[fd / 64] &= ~bit;
}

bool snapshot_has(const FdSnapshot &s, int fd) {
    return (s.open[fd / 64] >> (fd % 64)) & 1;
}

/* ---- safe_close() and the owning and borrowing types ---- */

void test_safe_close() {
    int fd = open_null();
    errno = kSentinelErrno;
    int r = ipcbarrier::safe_close(fd);
    int saved = errno;
    g_assert_cmpint(r, ==, -1);
    g_assert_cmpint(saved, ==, kSentinelErrno);
    g_assert_true(fd_is_closed(fd));

    /* close() fails with EBADF on a number that no fd has; errno is still
     * the caller's. */
    errno = kSentinelErrno;
    r = ipcbarrier::safe_close(INT_MAX);
    saved = errno;
    g_assert_cmpint(r, ==, -1);
    g_assert_cmpint(saved, ==, kSentinelErrno);

    errno = kSentinelErrno;
    g_assert_cmpint(ipcbarrier::safe_close(-1), ==, -1);
    g_assert_cmpint(ipcbarrier::safe_close(-EBADF), ==, -1);
    g_assert_cmpint(errno, ==, kSentinelErrno);
}

void test_unique_fd_empty() {
    UniqueFd a;
    g_assert_cmpint(a.get(), ==, -1);
    g_assert_false(a.valid());
    g_assert_false(static_cast<bool>(a));
    /* Every negative number means "no fd". */
    UniqueFd b(-EBADF);
    g_assert_cmpint(b.get(), ==, -1);
    g_assert_false(b.valid());
}

void test_unique_fd_owns() {
    int fd = open_null();
    UniqueFd a(fd);
    g_assert_cmpint(a.get(), ==, fd);
    g_assert_true(a.valid());
    g_assert_true(static_cast<bool>(a));
    g_assert_true(fd_is_open(fd));
}

void test_unique_fd_destructor_closes() {
    int fd = open_null();
    { UniqueFd a(fd); }
    g_assert_true(fd_is_closed(fd));

    /* An empty or moved-from owner closes nothing. */
    int other = open_null();
    {
        UniqueFd b(other);
        UniqueFd c(std::move(b));
        UniqueFd empty;
        g_assert_true(fd_is_open(other));
    }
    g_assert_true(fd_is_closed(other));
}

void test_unique_fd_move_constructor() {
    int fd = open_null();
    UniqueFd a(fd);
    UniqueFd b(std::move(a));
    g_assert_cmpint(a.get(), ==, -1);
    g_assert_false(a.valid());
    g_assert_cmpint(b.get(), ==, fd);
    g_assert_true(fd_is_open(fd));
}

void test_unique_fd_move_assignment() {
    int fd1 = open_null();
    int fd2 = open_null();
    UniqueFd a(fd1);
    UniqueFd b(fd2);
    b = std::move(a);
    g_assert_true(fd_is_closed(fd2)); /* the target's old fd */
    g_assert_cmpint(b.get(), ==, fd1);
    g_assert_cmpint(a.get(), ==, -1);
    g_assert_true(fd_is_open(fd1));

    /* Assigning an empty owner closes the held fd. */
    b = UniqueFd();
    g_assert_false(b.valid());
    g_assert_true(fd_is_closed(fd1));
}

void test_unique_fd_self_move() {
    int fd = open_null();
    UniqueFd a(fd);
    /* Through a reference, as it happens in real code (swaps, containers). */
    UniqueFd &alias = a;
    a = std::move(alias);
    g_assert_cmpint(a.get(), ==, fd);
    g_assert_true(fd_is_open(fd));
}

void test_unique_fd_release() {
    int fd = open_null();
    {
        UniqueFd a(fd);
        int released = a.release();
        g_assert_cmpint(released, ==, fd);
        g_assert_cmpint(a.get(), ==, -1);
        g_assert_cmpint(a.release(), ==, -1);
    }
    /* The owner's destruction left it alone: it is ours now. */
    g_assert_true(fd_is_open(fd));
    g_assert_cmpint(close(fd), ==, 0);
}

void test_unique_fd_reset() {
    int fd1 = open_null();
    int fd2 = open_null();
    UniqueFd a(fd1);

    errno = kSentinelErrno;
    a.reset(fd2);
    int saved = errno;
    g_assert_cmpint(saved, ==, kSentinelErrno);
    g_assert_true(fd_is_closed(fd1));
    g_assert_cmpint(a.get(), ==, fd2);

    errno = kSentinelErrno;
    a.reset();
    saved = errno;
    g_assert_cmpint(saved, ==, kSentinelErrno);
    g_assert_true(fd_is_closed(fd2));
    g_assert_false(a.valid());

    /* Reset of an empty owner, and to a negative number. */
    errno = kSentinelErrno;
    a.reset(-5);
    g_assert_cmpint(errno, ==, kSentinelErrno);
    g_assert_cmpint(a.get(), ==, -1);
}

void test_borrowed_fd() {
    int fd = open_null(0);
    UniqueFd owner(fd);
    BorrowedFd b = owner; /* implicit: owners lend their fd */
    g_assert_cmpint(b.get(), ==, fd);
    g_assert_cmpint(BorrowedFd(42).get(), ==, 42);
    /* A callee that borrows uses the fd and leaves it open. */
    ASSERT_OK(ipcbarrier::fd_set_cloexec(owner, true));
    g_assert_true(fd_is_open(fd));
    g_assert_cmpint(owner.get(), ==, fd);
}

/* ---- fd flags ---- */

void test_cloexec() {
    UniqueFd fd(open_null(0));
    ASSERT_RET(ipcbarrier::fd_get_cloexec(fd), 0);
    g_assert_cmpint(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, ==, 0);

    for (int round = 0; round < 2; round++) { /* setting twice is fine */
        ASSERT_RET(ipcbarrier::fd_set_cloexec(fd, true), 0);
        ASSERT_RET(ipcbarrier::fd_get_cloexec(fd), 1);
        g_assert_cmpint(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
    }
    for (int round = 0; round < 2; round++) {
        ASSERT_RET(ipcbarrier::fd_set_cloexec(fd, false), 0);
        ASSERT_RET(ipcbarrier::fd_get_cloexec(fd), 0);
        g_assert_cmpint(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, ==, 0);
    }
    /* The file status flags are not fd flags: untouched. */
    g_assert_cmpint(fcntl(fd.get(), F_GETFL) & O_NONBLOCK, ==, 0);
}

void test_nonblock() {
    int p[2];
    g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
    UniqueFd r(p[0]), w(p[1]);

    for (int round = 0; round < 2; round++) {
        ASSERT_RET(ipcbarrier::fd_set_nonblock(r, true), 0);
        int fl = fcntl(r.get(), F_GETFL);
        g_assert_cmpint(fl & O_NONBLOCK, ==, O_NONBLOCK);
        g_assert_cmpint(fl & O_ACCMODE, ==, O_RDONLY);
    }
    /* It takes effect: an empty pipe no longer blocks a read. */
    char c;
    g_assert_cmpint(read(r.get(), &c, 1), ==, -1);
    g_assert_cmpint(errno, ==, EAGAIN);

    for (int round = 0; round < 2; round++) {
        ASSERT_RET(ipcbarrier::fd_set_nonblock(r, false), 0);
        int fl = fcntl(r.get(), F_GETFL);
        g_assert_cmpint(fl & O_NONBLOCK, ==, 0);
        g_assert_cmpint(fl & O_ACCMODE, ==, O_RDONLY);
    }
    /* The fd flags are not file status flags: close-on-exec stays set. */
    ASSERT_RET(ipcbarrier::fd_get_cloexec(r), 1);
    /* The other end shares the pipe, not the open file description. */
    g_assert_cmpint(fcntl(w.get(), F_GETFL) & O_NONBLOCK, ==, 0);
}

void test_flags_on_closed_fd() {
    int fd = open_null();
    g_assert_cmpint(close(fd), ==, 0);
    for (int bad : {fd, -1, INT_MAX}) {
        ASSERT_RET(ipcbarrier::fd_set_cloexec(BorrowedFd(bad), true), -EBADF);
        ASSERT_RET(ipcbarrier::fd_set_cloexec(BorrowedFd(bad), false), -EBADF);
        ASSERT_RET(ipcbarrier::fd_set_nonblock(BorrowedFd(bad), true), -EBADF);
        ASSERT_RET(ipcbarrier::fd_set_nonblock(BorrowedFd(bad), false), -EBADF);
        ASSERT_RET(ipcbarrier::fd_get_cloexec(BorrowedFd(bad)), -EBADF);
    }
}

/* ---- closing every other fd (each case in a child) ---- */

using CloseAllFn = int (*)(std::span<const int>) noexcept;

/* Enough fds that /proc/self/fd takes several getdents64() calls of the
 * 4 KiB buffer, with holes between them. */
constexpr int kManyFds = 400;
/* Far above the others, and above what fd_snapshot() covers. */
constexpr int kHighFd = 900;
constexpr int kHigherFd = 3000;

struct CloseAllCase {
    const char *path;
    CloseAllFn fn;
    bool sorted;           /* fn needs sorted exceptions */
    bool lower_soft_limit; /* below most open fds, after opening them */
};

/* In a child: opens kManyFds fds with holes plus two far above them, calls
 * fn with exceptions that mix kept fds, duplicates, negative numbers, 0-2,
 * unopened numbers and INT_MAX, and checks that exactly 0-2 and the kept
 * fds are open afterwards, wherever they were before. */
void child_close_all(void *data) {
    const auto *c = static_cast<const CloseAllCase *>(data);
    int fds[kManyFds];
    for (int &fd : fds) {
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHILD_ASSERT(fd >= 3);
    }
    for (int i = 0; i < kManyFds; i += 7) CHILD_ASSERT(close(fds[i]) == 0);
    int high = fcntl(fds[1], F_DUPFD_CLOEXEC, kHighFd);
    int higher = fcntl(fds[1], F_DUPFD, kHigherFd); /* not close-on-exec */
    CHILD_ASSERT(high >= kHighFd && high < FD_SNAPSHOT_MAX);
    CHILD_ASSERT(higher >= kHigherFd);

    int keep[] = {fds[kManyFds - 2],   INT_MAX, fds[2],   -1, fds[200], higher,
                  fds[7] /* closed */, 0,       fds[200], 2,  INT_MIN,  fds[3]};
    if (c->sorted) std::sort(std::begin(keep), std::end(keep));

    FdSnapshot expected;
    fd_snapshot(&expected);
    for (int fd = 3; fd < FD_SNAPSHOT_MAX; fd++)
        if (std::find(std::begin(keep), std::end(keep), fd) == std::end(keep))
            snapshot_set(&expected, fd, false);

    if (c->lower_soft_limit) {
        struct rlimit rl;
        CHILD_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        rl.rlim_cur = 64;
        CHILD_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    }

    /* Spelled out: GCC 12 decays the array when calling through a pointer. */
    CHILD_ASSERT(c->fn(std::span<const int>(keep)) == 0);

    FdSnapshot now;
    fd_snapshot(&now);
    CHILD_ASSERT(fd_snapshot_diff(&expected, &now) == -1);
    CHILD_ASSERT(fd_is_open(fds[200]) && fd_is_open(higher));
    CHILD_ASSERT(fd_is_closed(high) && fd_is_closed(fds[1]));
    /* Close-on-exec or not, kept fds are left as they were. */
    CHILD_ASSERT(fcntl(higher, F_GETFD) == 0);
    CHILD_ASSERT(fcntl(fds[2], F_GETFD) == FD_CLOEXEC);
}

int close_all_fds_unsorted(std::span<const int> except) noexcept {
    return ipcbarrier::close_all_fds(except);
}

void test_close_all(const void *data) {
    g_assert_cmpint(run_in_child(child_close_all, const_cast<void *>(data)), ==, 0);
}

const CloseAllCase close_all_cases[] = {
    {"/fd-util/close-all-fds/exceptions-unsorted", close_all_fds_unsorted, false, false},
    {"/fd-util/close-all-fds-sorted/exceptions", ipcbarrier::close_all_fds_sorted, true, false},
    {"/fd-util/close-all-fds/by-close-range", ipcbarrier::detail::close_all_fds_by_close_range,
     true, false},
    {"/fd-util/close-all-fds/by-proc", ipcbarrier::detail::close_all_fds_by_proc, true, false},
    {"/fd-util/close-all-fds/by-loop", ipcbarrier::detail::close_all_fds_by_loop, true, false},
    {"/fd-util/close-all-fds/by-loop-above-soft-limit", ipcbarrier::detail::close_all_fds_by_loop,
     true, true},
};

void child_close_all_no_exceptions(void *) {
    int fd = open("/dev/null", O_RDONLY); /* not close-on-exec: irrelevant */
    CHILD_ASSERT(fd >= 3);
    FdSnapshot before, now;
    fd_snapshot(&before);
    CHILD_ASSERT(ipcbarrier::close_all_fds({}) == 0);
    fd_snapshot(&now);
    for (int f = 0; f < FD_SNAPSHOT_MAX; f++)
        CHILD_ASSERT(snapshot_has(now, f) == (f < 3 && snapshot_has(before, f)));
}

void test_close_all_no_exceptions() {
    g_assert_cmpint(run_in_child(child_close_all_no_exceptions, nullptr), ==, 0);
}

void child_close_all_sorted_rejects_unsorted(void *) {
    int a = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int b = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHILD_ASSERT(a >= 3 && b > a);
    FdSnapshot before, now;
    fd_snapshot(&before);
    const int descending[] = {b, a};
    const int negative_last[] = {a, b, -1};
    const int repeat_then_lower[] = {a, b, b, a};
    CHILD_ASSERT(ipcbarrier::close_all_fds_sorted(descending) == -EINVAL);
    CHILD_ASSERT(ipcbarrier::close_all_fds_sorted(negative_last) == -EINVAL);
    CHILD_ASSERT(ipcbarrier::close_all_fds_sorted(repeat_then_lower) == -EINVAL);
    /* Rejected before anything was closed. */
    fd_snapshot(&now);
    CHILD_ASSERT(fd_snapshot_diff(&before, &now) == -1);
}

void test_close_all_sorted_rejects_unsorted() {
    g_assert_cmpint(run_in_child(child_close_all_sorted_rejects_unsorted, nullptr), ==, 0);
}

/* The async-signal-safe variant where it is meant to run: in a child right
 * after fork(), on fds the parent opened, with the exception list the parent
 * prepared. The kept fds still reach the parent's pipes. */
void test_close_all_sorted_after_fork() {
    int in[2], out[2], extra[2];
    g_assert_cmpint(pipe2(in, O_CLOEXEC), ==, 0);
    g_assert_cmpint(pipe2(out, O_CLOEXEC), ==, 0);
    g_assert_cmpint(pipe2(extra, 0), ==, 0);
    int keep[] = {in[0], out[1]};
    std::sort(std::begin(keep), std::end(keep));
    g_assert_cmpint(write(in[1], "p", 1), ==, 1);

    pid_t pid = fork_test_child();
    if (pid == 0) {
        CHILD_ASSERT(ipcbarrier::close_all_fds_sorted(keep) == 0);
        CHILD_ASSERT(fd_is_open(in[0]) && fd_is_open(out[1]));
        CHILD_ASSERT(fd_is_closed(in[1]) && fd_is_closed(out[0]));
        CHILD_ASSERT(fd_is_closed(extra[0]) && fd_is_closed(extra[1]));
        CHILD_ASSERT(highest_open_fd(FD_SNAPSHOT_MAX) == std::max(in[0], out[1]));
        char c = 0;
        CHILD_ASSERT(read(in[0], &c, 1) == 1 && c == 'p');
        CHILD_ASSERT(write(out[1], "c", 1) == 1);
        _exit(0);
    }
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    char c = 0;
    g_assert_cmpint(read(out[0], &c, 1), ==, 1);
    g_assert_cmpint(c, ==, 'c');
    for (int fd : {in[0], in[1], out[0], out[1], extra[0], extra[1]})
        g_assert_cmpint(close(fd), ==, 0);
}

/* What the high-RLIMIT_NOFILE child tells the parent. */
struct HighLimitReport {
    rlim_t limit;
    int close_range; /* 0, or why close_range(2) cannot be used */
};

constexpr rlim_t kHugeNofile = 1048576;

void test_close_all_high_rlimit() {
    int report[2];
    g_assert_cmpint(pipe2(report, O_CLOEXEC), ==, 0);

    pid_t pid = fork_test_child();
    if (pid == 0) {
        struct rlimit rl;
        CHILD_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        struct rlimit huge = {kHugeNofile, std::max(rl.rlim_max, kHugeNofile)};
        if (setrlimit(RLIMIT_NOFILE, &huge) < 0) {
            /* Raising the hard limit needs CAP_SYS_RESOURCE: go as far as
             * the hard limit allows. */
            rl.rlim_cur = rl.rlim_max;
            CHILD_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);
        }
        CHILD_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        int top = static_cast<int>(std::min<rlim_t>(rl.rlim_cur, INT_MAX) - 1);

        int low = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHILD_ASSERT(low >= 3);
        int at_top = fcntl(low, F_DUPFD_CLOEXEC, top);
        int middle = fcntl(low, F_DUPFD_CLOEXEC, top / 2);
        CHILD_ASSERT(at_top == top && middle >= top / 2 && middle < top);
        /* With nothing to close, close_range(2) succeeds if the kernel
         * (and any seccomp filter) allows it: then it was the strategy. */
        HighLimitReport r = {rl.rlim_cur, 0};
        if (syscall(SYS_close_range, static_cast<unsigned>(top) + 1, UINT_MAX, 0U) < 0)
            r.close_range = errno;

        const int keep[] = {report[1], low};
        CHILD_ASSERT(ipcbarrier::close_all_fds(keep) == 0);
        CHILD_ASSERT(fd_is_closed(at_top) && fd_is_closed(middle));
        CHILD_ASSERT(fd_is_open(low) && fd_is_open(report[1]));
        CHILD_ASSERT(highest_open_fd(FD_SNAPSHOT_MAX) == std::max(low, report[1]));
        CHILD_ASSERT(write(report[1], &r, sizeof r) == static_cast<ssize_t>(sizeof r));
        _exit(0);
    }
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    HighLimitReport r;
    g_assert_true(wait_readable(report[0], watchdog_ms()));
    g_assert_cmpint(read(report[0], &r, sizeof r), ==, static_cast<ssize_t>(sizeof r));
    g_assert_cmpint(close(report[0]), ==, 0);
    g_assert_cmpint(close(report[1]), ==, 0);

    if (r.limit < kHugeNofile)
        g_test_message("RLIMIT_NOFILE could only be raised to %llu, not %llu",
                       static_cast<unsigned long long>(r.limit),
                       static_cast<unsigned long long>(kHugeNofile));
    if (r.close_range != 0)
        g_test_message("close_range(2) unavailable (%s): the fallback did the work",
                       g_strerror(r.close_range));
}

/* ---- moving fds off 0-2 and rearranging stdio (each in a child) ---- */

/* Which file an fd refers to: the inode, and the access mode, which tells
 * the two ends of a pipe apart. */
struct FileId {
    dev_t dev;
    ino_t ino;
    int accmode;
};

bool file_id(int fd, FileId *ret) {
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fstat(fd, &st) < 0) return false;
    *ret = {st.st_dev, st.st_ino, fl & O_ACCMODE};
    return true;
}

bool same_file(const FileId &a, const FileId &b) {
    return a.dev == b.dev && a.ino == b.ino && a.accmode == b.accmode;
}

/* These children rewrite fd 2: they complain through a copy of the
 * original stderr made before. */
int saved_stderr = -1;

[[noreturn]] void stdio_child_fail(const char *msg) {
    if (saved_stderr >= 0) (void)dup2(saved_stderr, STDERR_FILENO);
    child_fail(msg);
}

#define STDIO_ASSERT(cond)                                                                       \
    do {                                                                                         \
        if (!(cond)) stdio_child_fail(__FILE__ ":" TEST_STRINGIFY(__LINE__) ": failed: " #cond); \
    } while (0)

void save_stderr() {
    saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    CHILD_ASSERT(saved_stderr >= 3);
}

/* Puts a fresh pipe end into each of 0-2 (read end for 0, write ends for 1
 * and 2), close-on-exec, so that every slot refers to a file of its own and
 * a test can tell them apart. */
void child_fresh_stdio() {
    /* Should the test run with a slot closed, fill it first, so that the
     * pipes below land above stdio. */
    for (int slot = 0; slot < 3; slot++)
        if (fd_is_closed(slot)) STDIO_ASSERT(open("/dev/null", O_RDONLY | O_CLOEXEC) == slot);
    for (int slot = 0; slot < 3; slot++) {
        int p[2];
        STDIO_ASSERT(pipe2(p, O_CLOEXEC) == 0);
        int end = slot == 0 ? p[0] : p[1];
        STDIO_ASSERT(dup3(end, slot, O_CLOEXEC) == slot);
        STDIO_ASSERT(close(p[0]) == 0 && close(p[1]) == 0);
    }
}

void child_move_above_stdio(void *data) {
    const int slot = *static_cast<const int *>(data);
    save_stderr();
    child_fresh_stdio();
    FileId before, after;
    STDIO_ASSERT(file_id(slot, &before));
    /* A hole above 2 that the copy must take, being the lowest free. */
    int hole = open("/dev/null", O_RDONLY | O_CLOEXEC);
    STDIO_ASSERT(hole >= 3 && close(hole) == 0);
    STDIO_ASSERT(ipcbarrier::fd_set_cloexec(BorrowedFd(slot), false) == 0);

    int moved = ipcbarrier::fd_move_above_stdio(slot);
    STDIO_ASSERT(moved == hole);
    STDIO_ASSERT(fd_is_closed(slot));
    STDIO_ASSERT(file_id(moved, &after) && same_file(before, after));
    STDIO_ASSERT(ipcbarrier::fd_get_cloexec(BorrowedFd(moved)) == 1);
    for (int other = 0; other < 3; other++)
        if (other != slot) STDIO_ASSERT(fd_is_open(other));
}

const int stdio_slots[] = {0, 1, 2};

void test_move_above_stdio(const void *data) {
    g_assert_cmpint(run_in_child(child_move_above_stdio, const_cast<void *>(data)), ==, 0);
}

void test_move_above_stdio_above() {
    UniqueFd fd(open_null(0));
    ASSERT_RET(ipcbarrier::fd_move_above_stdio(fd.get()), fd.get());
    g_assert_true(fd_is_open(fd.get()));
    /* Left as it was, close-on-exec flag included. */
    ASSERT_RET(ipcbarrier::fd_get_cloexec(fd), 0);
}

void test_move_above_stdio_negative() {
    ASSERT_RET(ipcbarrier::fd_move_above_stdio(-1), -EBADF);
    ASSERT_RET(ipcbarrier::fd_move_above_stdio(INT_MIN), -EBADF);
}

/* No number >= 3 is free: the error comes back and stdout stays. */
void child_move_above_stdio_emfile(void *) {
    /* An fd >= 3 must be open: with RLIMIT_NOFILE at 3, F_DUPFD from 3 is
     * EINVAL (the start is out of range), not "no free number". */
    CHILD_ASSERT(open("/dev/null", O_RDONLY | O_CLOEXEC) >= 3);
    int highest = fill_fd_holes();
    CHILD_ASSERT(highest >= 3);
    struct rlimit rl;
    CHILD_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = static_cast<rlim_t>(highest) + 1;
    CHILD_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    FileId before, after;
    CHILD_ASSERT(file_id(STDOUT_FILENO, &before));
    CHILD_ASSERT(ipcbarrier::fd_move_above_stdio(STDOUT_FILENO) == -EMFILE);
    CHILD_ASSERT(file_id(STDOUT_FILENO, &after) && same_file(before, after));
    CHILD_ASSERT(highest_open_fd(highest + 8) == highest);
}

void test_move_above_stdio_emfile() {
    g_assert_cmpint(run_in_child(child_move_above_stdio_emfile, nullptr), ==, 0);
}

/* The sources of a rearrange_stdio() case: what was in a slot before, three
 * files above stdio, /dev/null (a negative source), or a number no fd has. */
enum Src { S0, S1, S2, A, B, C, NUL, BAD, kSrcCount };

struct RearrangeCase {
    const char *path;
    Src src[3];
    unsigned closed_before; /* bit i: slot i is closed before the call */
    int expect;
};

const RearrangeCase rearrange_cases[] = {
    {"/fd-util/rearrange-stdio/identity", {S0, S1, S2}, 0, 0},
    {"/fd-util/rearrange-stdio/swap-stdout-stderr", {S0, S2, S1}, 0, 0},
    {"/fd-util/rearrange-stdio/swap-stdin-stdout", {S1, S0, S2}, 0, 0},
    {"/fd-util/rearrange-stdio/rotate", {S2, S0, S1}, 0, 0},
    {"/fd-util/rearrange-stdio/all-same-slot", {S1, S1, S1}, 0, 0},
    {"/fd-util/rearrange-stdio/all-same-fd", {A, A, A}, 0, 0},
    {"/fd-util/rearrange-stdio/sources-above-stdio", {A, B, C}, 0, 0},
    {"/fd-util/rearrange-stdio/dev-null", {NUL, NUL, NUL}, 0, 0},
    {"/fd-util/rearrange-stdio/mixed", {NUL, S0, A}, 0, 0},
    {"/fd-util/rearrange-stdio/dev-null-into-closed-stdio", {NUL, NUL, S2}, 0x3, 0},
    {"/fd-util/rearrange-stdio/slot-into-closed-stdio", {S1, S1, A}, 0x5, 0},
    {"/fd-util/rearrange-stdio/bad-source", {S1, BAD, S2}, 0, -EBADF},
};

void child_rearrange_stdio(void *data) {
    const auto *c = static_cast<const RearrangeCase *>(data);
    save_stderr();
    child_fresh_stdio();

    int fd_of[kSrcCount];
    FileId id[kSrcCount];
    for (int slot = 0; slot < 3; slot++) {
        fd_of[S0 + slot] = slot;
        STDIO_ASSERT(file_id(slot, &id[S0 + slot]));
    }
    for (int i = A; i <= C; i++) {
        int p[2];
        STDIO_ASSERT(pipe2(p, O_CLOEXEC) == 0);
        fd_of[i] = p[i == A ? 0 : 1];
        STDIO_ASSERT(close(p[i == A ? 1 : 0]) == 0);
        STDIO_ASSERT(file_id(fd_of[i], &id[i]));
    }
    struct stat null_st;
    STDIO_ASSERT(stat("/dev/null", &null_st) == 0);
    fd_of[NUL] = -1;
    fd_of[BAD] = INT_MAX;
    for (int slot = 0; slot < 3; slot++)
        if (c->closed_before & (1u << slot)) STDIO_ASSERT(close(slot) == 0);

    FdSnapshot before, after;
    fd_snapshot(&before);

    int r = ipcbarrier::rearrange_stdio(fd_of[c->src[0]], fd_of[c->src[1]], fd_of[c->src[2]]);
    STDIO_ASSERT(r == c->expect);

    fd_snapshot(&after);
    /* Above stdio nothing changed: no helper fd is left, every source is
     * still open. */
    for (int slot = 0; slot < 3; slot++) {
        snapshot_set(&before, slot, false);
        snapshot_set(&after, slot, false);
    }
    STDIO_ASSERT(fd_snapshot_diff(&before, &after) == -1);
    for (int i = A; i <= C; i++) {
        FileId now;
        STDIO_ASSERT(file_id(fd_of[i], &now) && same_file(now, id[i]));
        STDIO_ASSERT(ipcbarrier::fd_get_cloexec(BorrowedFd(fd_of[i])) == 1);
    }
    if (r < 0) return;

    for (int slot = 0; slot < 3; slot++) {
        FileId now;
        STDIO_ASSERT(file_id(slot, &now));
        Src s = c->src[slot];
        if (s == NUL)
            STDIO_ASSERT(now.dev == null_st.st_dev && now.ino == null_st.st_ino);
        else
            STDIO_ASSERT(same_file(now, id[s]));
        STDIO_ASSERT(ipcbarrier::fd_get_cloexec(BorrowedFd(slot)) == 0);
    }
}

void test_rearrange_stdio(const void *data) {
    g_assert_cmpint(run_in_child(child_rearrange_stdio, const_cast<void *>(data)), ==, 0);
}

}  // namespace

int main(int argc, char **argv) {
    /* The tests tell stdio from other fds by number: should the caller have
     * closed one of 0-2, fill it before anything else is opened. */
    for (int fd = 0; fd < 3; fd++)
        if (fd_is_closed(fd) && open("/dev/null", O_RDWR) != fd) return EXIT_FAILURE;
    g_test_init(&argc, &argv, nullptr);

    test_add_fd_checked("/fd-util/safe-close", test_safe_close);
    test_add_fd_checked("/fd-util/unique-fd/empty", test_unique_fd_empty);
    test_add_fd_checked("/fd-util/unique-fd/owns", test_unique_fd_owns);
    test_add_fd_checked("/fd-util/unique-fd/destructor-closes", test_unique_fd_destructor_closes);
    test_add_fd_checked("/fd-util/unique-fd/move-constructor", test_unique_fd_move_constructor);
    test_add_fd_checked("/fd-util/unique-fd/move-assignment", test_unique_fd_move_assignment);
    test_add_fd_checked("/fd-util/unique-fd/self-move", test_unique_fd_self_move);
    test_add_fd_checked("/fd-util/unique-fd/release", test_unique_fd_release);
    test_add_fd_checked("/fd-util/unique-fd/reset", test_unique_fd_reset);
    test_add_fd_checked("/fd-util/borrowed-fd", test_borrowed_fd);
    test_add_fd_checked("/fd-util/cloexec", test_cloexec);
    test_add_fd_checked("/fd-util/nonblock", test_nonblock);
    test_add_fd_checked("/fd-util/flags-on-closed-fd", test_flags_on_closed_fd);

    for (const CloseAllCase &c : close_all_cases)
        test_add_data_fd_checked(c.path, &c, test_close_all);
    test_add_fd_checked("/fd-util/close-all-fds/no-exceptions", test_close_all_no_exceptions);
    test_add_fd_checked("/fd-util/close-all-fds/high-rlimit", test_close_all_high_rlimit);
    test_add_fd_checked("/fd-util/close-all-fds-sorted/rejects-unsorted",
                        test_close_all_sorted_rejects_unsorted);
    test_add_fd_checked("/fd-util/close-all-fds-sorted/after-fork",
                        test_close_all_sorted_after_fork);

    test_add_data_fd_checked("/fd-util/move-above-stdio/stdin", &stdio_slots[0],
                             test_move_above_stdio);
    test_add_data_fd_checked("/fd-util/move-above-stdio/stdout", &stdio_slots[1],
                             test_move_above_stdio);
    test_add_data_fd_checked("/fd-util/move-above-stdio/stderr", &stdio_slots[2],
                             test_move_above_stdio);
    test_add_fd_checked("/fd-util/move-above-stdio/above-stdio", test_move_above_stdio_above);
    test_add_fd_checked("/fd-util/move-above-stdio/negative", test_move_above_stdio_negative);
    test_add_fd_checked("/fd-util/move-above-stdio/emfile", test_move_above_stdio_emfile);

    for (const RearrangeCase &c : rearrange_cases)
        test_add_data_fd_checked(c.path, &c, test_rearrange_stdio);

    return g_test_run();
}
