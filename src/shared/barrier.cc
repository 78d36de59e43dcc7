/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/barrier.h>

#include <cerrno>

#include <poll.h>

#include <ipcbarrier/eventfd-util.hh>
#include <ipcbarrier/pipe-util.hh>
#include <ipcbarrier/time-util.hh>

/* How it works: each side writes its sync points into the eventfd the other
 * side reads ("me" and "them"). An eventfd adds up what is written, so a
 * reader learns how many points arrived since it last looked. b->barriers
 * holds "placed by me minus consumed of theirs". An abortion is written as
 * one huge value, so that it swamps, and thereby cancels, whatever sync
 * points are still queued in front of it. Once a side knows of an abortion,
 * b->barriers leaves the counting range for one of three bias values.
 *
 * Exit, execve() and destroy are seen through the pipe: each side keeps one
 * end, and the other end reports hang-up or error once every copy of its
 * partner is closed. A pending eventfd value is always consumed before a
 * hang-up is honoured, so points placed just before exiting still count. */

namespace {

using ipcbarrier::BorrowedFd;
using ipcbarrier::Deadline;

constexpr uint64_t ABORTION = INT64_MAX;

/* Abortion states, far below any count; keep WE < THEY < I, as
 * wait_abortion() compares against THEY. */
constexpr int64_t BIAS = INT64_MIN;
constexpr int64_t WE_ABORTED = BIAS + 1;
constexpr int64_t THEY_ABORTED = BIAS + 2;
constexpr int64_t I_ABORTED = BIAS + 3;
/* A count below this would run into the abortion states: only a peer that
 * writes garbage gets there, and that is treated as an I/O error. */
constexpr int64_t COUNT_FLOOR = BIAS + 64;

bool role_is_set(const Barrier *b) {
    if (b->me < 0 || b->them < 0) return false;
    /* Setting the role closes one pipe end; a fatal error closes both. */
    return b->pipe[0] < 0 || b->pipe[1] < 0;
}

int pipe_end(const Barrier *b) {
    return b->pipe[0] >= 0 ? b->pipe[0] : b->pipe[1];
}

/* Any I/O failure is unrecoverable: nobody can tell how many sync points got
 * through. Closing our pipe end makes the peer see an abortion too. */
void fail(Barrier *b) {
    b->pipe[0] = ipcbarrier::safe_close(b->pipe[0]);
    b->pipe[1] = ipcbarrier::safe_close(b->pipe[1]);
    b->barriers = WE_ABORTED;
}

/* Accounts for value read from the peer's eventfd. */
void consume(Barrier *b, uint64_t value) {
    if (value >= ABORTION)
        b->barriers = barrier_i_aborted(b) ? WE_ABORTED : THEY_ABORTED;
    else if (barrier_is_aborted(b))
        return; /* only wait_abortion() reads after a local abort */
    else if (value > static_cast<uint64_t>(b->barriers) - static_cast<uint64_t>(COUNT_FLOOR))
        fail(b); /* unsigned: the exact distance to the floor, no overflow */
    else
        b->barriers -= static_cast<int64_t>(value);
}

void consume_hangup(Barrier *b) {
    b->barriers = barrier_i_aborted(b) ? WE_ABORTED : THEY_ABORTED;
}

/* Reads the peer's sync points until b->barriers <= limit or the peer
 * aborts. Returns 0 when done (the caller looks at the state), -ETIMEDOUT
 * when the deadline passed first. */
int read_until(Barrier *b, int64_t limit, Deadline deadline) {
    while (b->barriers > limit) {
        uint64_t value;

        /* Try the eventfd first: when the peer is ahead, this is the only
         * syscall a wait needs. */
        int r = ipcbarrier::eventfd_drain(BorrowedFd(b->them), &value);
        if (r == 0) {
            consume(b, value);
            continue;
        }
        if (r != -EAGAIN) {
            fail(b);
            break;
        }

        struct pollfd pfd[2] = {
            {.fd = b->them, .events = POLLIN, .revents = 0},
            /* Hang-up and error are always reported; asking for nothing
             * else keeps a writable pipe end from waking us. */
            {.fd = pipe_end(b), .events = 0, .revents = 0},
        };
        struct timespec ts;
        /* The remaining time is recomputed on every pass, so signals
         * (with or without SA_RESTART) neither shorten nor lengthen it. */
        int n = ppoll(pfd, 2, deadline.remaining_timespec(&ts), nullptr);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail(b);
            break;
        }
        if (n == 0) return -ETIMEDOUT;
        if (pfd[0].revents & (POLLERR | POLLNVAL)) {
            fail(b);
            break;
        }
        if (pfd[0].revents & POLLIN) continue;
        if (pfd[1].revents & (POLLHUP | POLLERR | POLLNVAL)) {
            /* The peer is gone, but what it placed before leaving must
             * still be seen: check the eventfd once more, since the two
             * events need not arrive in one ppoll(). */
            r = ipcbarrier::eventfd_drain(BorrowedFd(b->them), &value);
            if (r == 0)
                consume(b, value);
            else if (r == -EAGAIN)
                consume_hangup(b);
            else
                fail(b);
        }
    }
    return 0;
}

/* Writes value (a sync point or the abortion) to the peer. */
bool write_point(Barrier *b, uint64_t value) {
    /* -EAGAIN would mean the counter is near 2^64: the peer is not a
     * barrier. Every error is fatal. */
    if (ipcbarrier::eventfd_add(BorrowedFd(b->me), value) < 0) {
        fail(b);
        return false;
    }
    return true;
}

}  // namespace

extern "C" {

int barrier_create(Barrier *b) {
    ipcbarrier::UniqueFd me, them;
    ipcbarrier::Pipe pipe;

    int r = ipcbarrier::eventfd_new(ipcbarrier::EventfdMode::nonblocking, &me);
    if (r < 0) return r;
    r = ipcbarrier::eventfd_new(ipcbarrier::EventfdMode::nonblocking, &them);
    if (r < 0) return r;
    r = ipcbarrier::pipe_new(ipcbarrier::PipeMode::nonblocking, &pipe);
    if (r < 0) return r;

    b->me = me.release();
    b->them = them.release();
    b->pipe[0] = pipe.read_end.release();
    b->pipe[1] = pipe.write_end.release();
    b->barriers = 0;
    return 0;
}

void barrier_destroy(Barrier *b) {
    b->me = ipcbarrier::safe_close(b->me);
    b->them = ipcbarrier::safe_close(b->them);
    b->pipe[0] = ipcbarrier::safe_close(b->pipe[0]);
    b->pipe[1] = ipcbarrier::safe_close(b->pipe[1]);
    b->barriers = 0;
}

int barrier_set_role(Barrier *b, unsigned role) {
    if (role != BARRIER_PARENT && role != BARRIER_CHILD) return -EINVAL;
    if (b->me < 0 || b->them < 0) return -EBADF;
    if (b->pipe[0] < 0 || b->pipe[1] < 0) return -EBUSY;

    if (role == BARRIER_PARENT) {
        b->pipe[1] = ipcbarrier::safe_close(b->pipe[1]);
    } else {
        b->pipe[0] = ipcbarrier::safe_close(b->pipe[0]);
        int fd = b->me;
        b->me = b->them;
        b->them = fd;
    }
    return 0;
}

bool barrier_place(Barrier *b) {
    if (!role_is_set(b) || barrier_is_aborted(b)) return false;
    if (write_point(b, 1)) b->barriers += 1;
    return !barrier_is_aborted(b);
}

bool barrier_abort(Barrier *b) {
    if (!role_is_set(b)) return false;
    if (!barrier_i_aborted(b) && write_point(b, ABORTION))
        b->barriers = barrier_they_aborted(b) ? WE_ABORTED : I_ABORTED;
    return !barrier_they_aborted(b);
}

bool barrier_wait_next(Barrier *b) {
    if (!role_is_set(b) || barrier_is_aborted(b)) return false;
    (void)read_until(b, b->barriers - 1, Deadline::never());
    return !barrier_is_aborted(b);
}

bool barrier_wait_abortion(Barrier *b) {
    if (!role_is_set(b)) return false;
    (void)read_until(b, THEY_ABORTED, Deadline::never());
    return !barrier_i_aborted(b);
}

bool barrier_sync_next(Barrier *b) {
    if (!role_is_set(b) || barrier_is_aborted(b)) return false;
    int64_t limit = b->barriers > 0 ? b->barriers - 1 : 0;
    (void)read_until(b, limit, Deadline::never());
    return !barrier_is_aborted(b);
}

bool barrier_sync(Barrier *b) {
    if (!role_is_set(b) || barrier_is_aborted(b)) return false;
    (void)read_until(b, 0, Deadline::never());
    return !barrier_is_aborted(b);
}

bool barrier_place_and_sync(Barrier *b) {
    (void)barrier_place(b);
    return barrier_sync(b);
}

bool barrier_i_aborted(const Barrier *b) {
    return b->barriers == I_ABORTED || b->barriers == WE_ABORTED;
}

bool barrier_they_aborted(const Barrier *b) {
    return b->barriers == THEY_ABORTED || b->barriers == WE_ABORTED;
}

bool barrier_we_aborted(const Barrier *b) {
    return b->barriers == WE_ABORTED;
}

bool barrier_is_aborted(const Barrier *b) {
    return barrier_i_aborted(b) || barrier_they_aborted(b);
}

}  // extern "C"
