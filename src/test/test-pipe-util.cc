/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pipe-util: the flags of both ends, data flow, ownership of both ends as
 * one value, and running out of fds. */

#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <glib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcbarrier/pipe-util.hh>

#include "test-util.h"

namespace {

using ipcbarrier::Pipe;
using ipcbarrier::pipe_new;
using ipcbarrier::PipeMode;

Pipe new_pipe(PipeMode mode) {
    Pipe p;
    ASSERT_OK(pipe_new(mode, &p));
    g_assert_true(p.read_end.valid());
    g_assert_true(p.write_end.valid());
    return p;
}

/* Both ends are of one pipe, readable at one end and writable at the
 * other, close-on-exec, and non-blocking as asked. */
void assert_pipe(const Pipe &p, bool nonblocking) {
    struct stat r, w;
    g_assert_cmpint(fstat(p.read_end.get(), &r), ==, 0);
    g_assert_cmpint(fstat(p.write_end.get(), &w), ==, 0);
    g_assert_true(S_ISFIFO(r.st_mode));
    g_assert_cmpuint(r.st_dev, ==, w.st_dev);
    g_assert_cmpuint(r.st_ino, ==, w.st_ino);

    int rfl = fcntl(p.read_end.get(), F_GETFL);
    int wfl = fcntl(p.write_end.get(), F_GETFL);
    g_assert_cmpint(rfl & O_ACCMODE, ==, O_RDONLY);
    g_assert_cmpint(wfl & O_ACCMODE, ==, O_WRONLY);
    int nb = nonblocking ? O_NONBLOCK : 0;
    g_assert_cmpint(rfl & O_NONBLOCK, ==, nb);
    g_assert_cmpint(wfl & O_NONBLOCK, ==, nb);
    g_assert_cmpint(fcntl(p.read_end.get(), F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
    g_assert_cmpint(fcntl(p.write_end.get(), F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
}

void test_new_blocking() {
    Pipe p = new_pipe(PipeMode::blocking);
    assert_pipe(p, false);
}

void test_new_nonblocking() {
    Pipe p = new_pipe(PipeMode::nonblocking);
    assert_pipe(p, true);
    char c;
    g_assert_cmpint(read(p.read_end.get(), &c, 1), ==, -1);
    g_assert_cmpint(errno, ==, EAGAIN);
}

void test_data_flows() {
    Pipe p = new_pipe(PipeMode::blocking);
    static const char msg[] = "through the pipe";
    g_assert_cmpint(write(p.write_end.get(), msg, sizeof msg), ==, sizeof msg);
    char buf[sizeof msg];
    g_assert_cmpint(read(p.read_end.get(), buf, sizeof buf), ==, sizeof msg);
    g_assert_cmpmem(buf, sizeof buf, msg, sizeof msg);

    /* One direction only. */
    g_assert_cmpint(write(p.read_end.get(), msg, 1), ==, -1);
    g_assert_cmpint(errno, ==, EBADF);
    g_assert_cmpint(read(p.write_end.get(), buf, 1), ==, -1);
    g_assert_cmpint(errno, ==, EBADF);

    /* Closing the write end is end of file at the read end. */
    p.write_end.reset();
    g_assert_cmpint(read(p.read_end.get(), buf, sizeof buf), ==, 0);
}

void test_move_constructor() {
    Pipe a = new_pipe(PipeMode::blocking);
    int r = a.read_end.get(), w = a.write_end.get();
    Pipe b(std::move(a));
    g_assert_false(a.read_end.valid());
    g_assert_false(a.write_end.valid());
    g_assert_cmpint(b.read_end.get(), ==, r);
    g_assert_cmpint(b.write_end.get(), ==, w);
    g_assert_true(fd_is_open(r) && fd_is_open(w));
}

void test_move_assignment() {
    Pipe a = new_pipe(PipeMode::blocking);
    Pipe b = new_pipe(PipeMode::nonblocking);
    int r = a.read_end.get(), w = a.write_end.get();
    int old_r = b.read_end.get(), old_w = b.write_end.get();
    b = std::move(a);
    g_assert_false(a.read_end.valid());
    g_assert_false(a.write_end.valid());
    g_assert_cmpint(b.read_end.get(), ==, r);
    g_assert_cmpint(b.write_end.get(), ==, w);
    g_assert_true(fd_is_open(r) && fd_is_open(w));
    g_assert_true(fd_is_closed(old_r) && fd_is_closed(old_w));
    assert_pipe(b, false);
}

void test_destruction_closes_both() {
    int r, w;
    {
        Pipe p = new_pipe(PipeMode::blocking);
        r = p.read_end.get();
        w = p.write_end.get();
    }
    g_assert_true(fd_is_closed(r));
    g_assert_true(fd_is_closed(w));
}

/* Success replaces what *ret_pipe held, and closes it. */
void test_new_replaces_held_pipe() {
    Pipe p = new_pipe(PipeMode::nonblocking);
    int old_r = p.read_end.get(), old_w = p.write_end.get();
    ASSERT_OK(pipe_new(PipeMode::blocking, &p));
    g_assert_true(fd_is_closed(old_r) && fd_is_closed(old_w));
    assert_pipe(p, false);
}

/* With fewer than two free numbers pipe_new() fails whole: -EMFILE, no fd
 * leaked, *ret_pipe untouched. In a child, so that the lowered limit stays
 * there. */
void child_emfile(void *) {
    Pipe held;
    CHILD_ASSERT(pipe_new(PipeMode::nonblocking, &held) == 0);
    const int held_r = held.read_end.get(), held_w = held.write_end.get();
    int highest = fill_fd_holes();
    CHILD_ASSERT(highest >= held_w && highest >= held_r);
    struct rlimit rl;
    CHILD_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0);

    for (int free_slots = 0; free_slots <= 1; free_slots++) {
        rl.rlim_cur = static_cast<rlim_t>(highest) + 1 + static_cast<rlim_t>(free_slots);
        CHILD_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);
        CHILD_ASSERT(pipe_new(PipeMode::blocking, &held) == -EMFILE);
        CHILD_ASSERT(held.read_end.get() == held_r && held.write_end.get() == held_w);
        CHILD_ASSERT(fd_is_open(held_r) && fd_is_open(held_w));
        CHILD_ASSERT(highest_open_fd(highest + 8) == highest);
    }
    /* The pipe held is still the same pipe. */
    CHILD_ASSERT(write(held_w, "x", 1) == 1);
    char c = 0;
    CHILD_ASSERT(read(held_r, &c, 1) == 1 && c == 'x');

    rl.rlim_cur = static_cast<rlim_t>(highest) + 3;
    CHILD_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    CHILD_ASSERT(pipe_new(PipeMode::blocking, &held) == 0);
    CHILD_ASSERT(held.read_end.get() > highest && held.write_end.get() > highest);
    CHILD_ASSERT(fd_is_closed(held_r) && fd_is_closed(held_w));
}

void test_emfile() {
    g_assert_cmpint(run_in_child(child_emfile, nullptr), ==, 0);
}

}  // namespace

int main(int argc, char **argv) {
    g_test_init(&argc, &argv, nullptr);

    test_add_fd_checked("/pipe-util/new/blocking", test_new_blocking);
    test_add_fd_checked("/pipe-util/new/nonblocking", test_new_nonblocking);
    test_add_fd_checked("/pipe-util/new/replaces-held-pipe", test_new_replaces_held_pipe);
    test_add_fd_checked("/pipe-util/new/emfile", test_emfile);
    test_add_fd_checked("/pipe-util/data-flows", test_data_flows);
    test_add_fd_checked("/pipe-util/move-constructor", test_move_constructor);
    test_add_fd_checked("/pipe-util/move-assignment", test_move_assignment);
    test_add_fd_checked("/pipe-util/destruction-closes-both", test_destruction_closes_both);

    return g_test_run();
}
