/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A barrier between two processes that share it through fork() (see
 * barrier(3)). This is the C interface; it has the names and semantics of
 * systemd's internal barrier.h, so code written against that switches by
 * changing its include and link line. The C++ interface is in barrier.hh.
 *
 * Create it before fork(), set the role on each side after fork(), then
 * place sync points and wait for the other side's. Every wait returns false
 * once either side has aborted, explicitly with barrier_abort() or
 * implicitly by exiting, calling execve() or destroying its barrier. */

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ipcbarrier/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An event-loop source attached to a barrier (see barrier-event.h). */
typedef struct BarrierWatch BarrierWatch;

/* The fields are private: they are visible only so that a Barrier can live
 * on the stack or inside another struct. Initialize with BARRIER_NULL; a
 * zero-filled Barrier (as in a struct from calloc()) is empty too. */
typedef struct Barrier {
    int me;              /* eventfd we write our sync points to */
    int them;            /* eventfd we read the other side's sync points from */
    int64_t barriers;    /* placed minus consumed, or an abortion state */
    int pipe[2];         /* only one end stays open once the role is set */
    int abort_errno;     /* the reason the other side sent with its abortion */
    BarrierWatch *watch; /* the event-loop source reading it, or NULL */
} Barrier;

/* clang-format off */
#define BARRIER_NULL {-1, -1, 0, {-1, -1}, 0, NULL}
/* clang-format on */

enum {
    BARRIER_PARENT,
    BARRIER_CHILD,
};

/* Creates the barrier's two eventfds and its pipe, all close-on-exec and
 * non-blocking. b must be empty (BARRIER_NULL, zero-filled, or destroyed).
 * Returns 0 or -errno (-EMFILE, -ENFILE, -ENOMEM); on failure nothing is
 * left open and b is unchanged. */
IPCBARRIER_EXPORT int barrier_create(Barrier *b);

/* Closes every fd of b and makes it BARRIER_NULL again; an event-loop
 * source attached to b lets go of the fds first. Safe on an empty barrier
 * (which holds nothing, so nothing is closed), when called twice, and for
 * NULL. Returns NULL, so that "b = barrier_destroy(b);" works on a pointer.
 * Does not abort explicitly: the other side sees the closed pipe as an
 * implicit abortion, at once, once it has consumed the sync points placed
 * before. */
IPCBARRIER_EXPORT Barrier *barrier_destroy(Barrier *b);

/* For __attribute__((cleanup)) on a Barrier pointer. On a Barrier itself,
 * __attribute__((cleanup(barrier_destroy))) works as in systemd. */
static inline void barrier_destroyp(Barrier **b) {
    barrier_destroy(*b);
}

/* Moves the barrier in src to dst (destroying what dst held first) and
 * leaves src empty. An event-loop source attached to src follows it to
 * dst. Copying a Barrier with memcpy() or assignment instead is fine too,
 * as long as no source is attached and only one copy is used. */
IPCBARRIER_EXPORT void barrier_move(Barrier *dst, Barrier *src);

/* Sets this side's role after fork(): BARRIER_PARENT or BARRIER_CHILD.
 * Call exactly once on each side, before any other operation. Returns 0,
 * -EINVAL for an unknown role, -EBADF for an empty barrier, -EBUSY if the
 * role is already set. */
IPCBARRIER_EXPORT int barrier_set_role(Barrier *b, unsigned role);

/* Stores in ret the fds this side holds once its role is set: the eventfd
 * written, the eventfd read, the pipe end (-1 once an I/O error closed
 * it). A child that must keep nothing else (the fds of its older
 * siblings' barriers, which it inherited from the parent, hide the
 * parent's death from them) closes every fd but these and its stdio before
 * it syncs. Returns the number of open fds stored at the start of ret (3,
 * or 2 after an I/O error), or -EBADF if the role is not set. Async-signal-
 * safe. */
IPCBARRIER_EXPORT int barrier_get_fds(const Barrier *b, int ret[3]);

/* Moves every fd b holds to the lowest free numbers at min_fd or above
 * (close-on-exec, as always), closing the old numbers; an fd that is there
 * already stays. For a child that must keep a range of numbers free, e.g.
 * for the fds it passes on. Returns 0, -EBADF for an empty barrier, -EBUSY
 * while an event-loop source is attached (it watches the numbers), -EINVAL
 * for a negative min_fd, or the -errno of fcntl() (-EMFILE, -EINVAL beyond
 * RLIMIT_NOFILE); on failure the fds moved so far stay moved and b stays
 * consistent. Async-signal-safe (errno is set as fcntl() sets it). */
IPCBARRIER_EXPORT int barrier_move_fds(Barrier *b, int min_fd);

/* Places one sync point for the other side. Does nothing once either side
 * has aborted. Returns false if either side has aborted, or if this side is
 * BARRIER_COUNT_MAX sync points ahead (then nothing changes), else true. */
IPCBARRIER_EXPORT bool barrier_place(Barrier *b);

/* The most sync points one side may be ahead of the other. */
#define BARRIER_COUNT_MAX ((INT64_C(1) << 42) - 1)

/* Aborts: tells the other side asynchronously that this side gives up, and
 * cancels the sync points still queued for it. Only the first call writes;
 * later ones are no-ops. Returns false if the other side had already
 * aborted (as far as this side has seen), else true. */
IPCBARRIER_EXPORT bool barrier_abort(Barrier *b);

/* barrier_abort() with a reason: err, a positive errno value (a negative
 * one counts as its absolute value, so that a -errno result can be passed
 * on), which the other side reads with barrier_get_abort_errno() once it
 * has seen the abortion. 0 is a plain abortion; a value beyond
 * BARRIER_ABORT_ERRNO_MAX is sent as EINVAL. Returns as barrier_abort(). */
IPCBARRIER_EXPORT bool barrier_abort_errno(Barrier *b, int err);

/* The largest reason an abortion carries (the kernel's MAX_ERRNO). */
#define BARRIER_ABORT_ERRNO_MAX 4095

/* The reason the other side sent with its abortion (a positive errno
 * value), once this side has seen that abortion; 0 before, and for an
 * abortion without reason: barrier_abort(), or exit, execve() or destroy.
 * EPROTO if more than one reason arrived at once (two processes acting for
 * the other side, each aborting with a reason). */
IPCBARRIER_EXPORT int barrier_get_abort_errno(const Barrier *b);

/* Waits until the other side places at least one new sync point, and
 * consumes all it has placed. Returns false at once if either side has
 * aborted, and false if the other side aborts while waiting; else true. */
IPCBARRIER_EXPORT bool barrier_wait_next(Barrier *b);

/* Waits until the other side aborts, explicitly or by exiting, execve() or
 * destroying its barrier; consumes their sync points meanwhile. The only
 * wait that still blocks after a local abort. Returns false if this side
 * has aborted, else true. */
IPCBARRIER_EXPORT bool barrier_wait_abortion(Barrier *b);

/* If this side is ahead (placed more than it consumed), waits until the
 * other side catches up by one; else returns at once. Returns false if
 * either side has aborted, else true. */
IPCBARRIER_EXPORT bool barrier_sync_next(Barrier *b);

/* Waits until the other side has placed as many sync points as this side.
 * Returns false if either side has aborted, else true. */
IPCBARRIER_EXPORT bool barrier_sync(Barrier *b);

/* barrier_place() followed by barrier_sync(); returns what the sync
 * returns. */
IPCBARRIER_EXPORT bool barrier_place_and_sync(Barrier *b);

/* The waits with a time limit. timeout_usec is measured on the monotonic
 * clock from the call; UINT64_MAX means no limit, 0 means "look, but do
 * not block". Each returns 1 where the plain call returns true, 0 where it
 * returns false (an abortion), -ETIMEDOUT when the time ran out first,
 * -EBADF for a barrier whose role is not set, or the -errno of an I/O error
 * (which, as with the plain calls, makes both sides aborted). A timeout is
 * not an abortion: it changes nothing but what was consumed, and the same
 * wait may be called again. Signals neither shorten nor lengthen it. */
IPCBARRIER_EXPORT int barrier_wait_next_timeout(Barrier *b, uint64_t timeout_usec);
IPCBARRIER_EXPORT int barrier_sync_next_timeout(Barrier *b, uint64_t timeout_usec);
IPCBARRIER_EXPORT int barrier_sync_timeout(Barrier *b, uint64_t timeout_usec);
IPCBARRIER_EXPORT int barrier_wait_abortion_timeout(Barrier *b, uint64_t timeout_usec);

/* For event loops: fills ret[0] with the eventfd to watch for POLLIN (the
 * other side placed or aborted) and ret[1] with the pipe end whose hang-up
 * or error means the other side is gone (fd -1, which poll() skips, after
 * an I/O error). When either fires, a wait with timeout 0 consumes what
 * arrived without blocking. Returns 0, or -EBADF if the role is not set.
 * barrier-event.h has the rest of what an event-loop integration needs. */
IPCBARRIER_EXPORT int barrier_get_pollfds(const Barrier *b, struct pollfd ret[2]);

/* Handing a barrier across execve(). The side that is about to execve()
 * writes its half into a text record (see barrier(3) for the format): its
 * three fds, its counter and abortion state, its role, and the pid of the
 * process the record is meant for, the caller itself (execve() keeps the
 * pid). The program it executes reads the record back and goes on with
 * the same peer; sync points placed before execve() are still consumed
 * before the peer's exit is honoured. */

/* The environment variable used when the name given is NULL. */
#define BARRIER_ENV "IPCBARRIER"
/* A buffer this large always holds a record and its NUL. */
#define BARRIER_RECORD_MAX 192

/* Writes the record for b into buf (with its NUL) and clears close-on-exec
 * on exactly b's three fds, so that they survive execve(). b stays usable,
 * also if execve() fails. Returns the record's length, -EBADF if b's role
 * is not set or it lost its pipe to an I/O error, -ENOBUFS if size is too
 * small; on failure neither buf nor the fds are changed. Async-signal-safe:
 * for a child between fork() and execve(), which puts "NAME=record" into
 * its envp itself. */
IPCBARRIER_EXPORT int barrier_serialize(Barrier *b, char *buf, size_t size);

/* barrier_serialize() into the environment variable name (NULL:
 * BARRIER_ENV). Returns 0, -EINVAL for a bad name, -ENOMEM, or the errors
 * of barrier_serialize(); on failure nothing is changed. Uses setenv(3):
 * not for a child after fork() in a threaded program. */
IPCBARRIER_EXPORT int barrier_serialize_env(Barrier *b, const char *name);

/* Parses record strictly and fills *ret (overwritten, not destroyed) with
 * the barrier it describes, after checking that it is meant for the
 * process owner (0: the caller) and that its fds are what the record says:
 * inherited (not close-on-exec), above stdio, not O_PATH, two distinct
 * non-blocking eventfds that are not semaphores and the end of an
 * anonymous pipe (no named FIFO) of the recorded role, each the very file
 * recorded; then sets close-on-exec on them again. A
 * process may act on a record meant for another, e.g. its parent shell's
 * (owner = getppid()), which keeps its own copy of the fds. Returns 0, or,
 * changing nothing: -ENOENT if record is NULL (as getenv() returns for an
 * unset variable), -EINVAL for a malformed record or a negative owner,
 * -E2BIG for one of BARRIER_RECORD_MAX bytes or more, -ESRCH if it is
 * meant for another process, -EBADF if an fd is not open, -EBADFD if an fd
 * is not what the record says. */
IPCBARRIER_EXPORT int barrier_deserialize(Barrier *ret, const char *record, pid_t owner);

/* barrier_deserialize() of the environment variable name (NULL:
 * BARRIER_ENV) for the calling process; on success the variable is
 * removed, so the fds leak no further. Returns 0, -ENOENT if the variable
 * is not set, -EPERM in a set-user-ID or otherwise secure context (the
 * variable is ignored there), -EINVAL for a bad name, or the errors of
 * barrier_deserialize(); on failure nothing is changed. Uses the
 * environment: not for a child after fork() in a threaded program. */
IPCBARRIER_EXPORT int barrier_deserialize_env(Barrier *ret, const char *name);

/* Whether this side has aborted (alone or together with the other side). */
IPCBARRIER_EXPORT bool barrier_i_aborted(const Barrier *b);
/* Whether this side has seen the other side abort (alone or together). */
IPCBARRIER_EXPORT bool barrier_they_aborted(const Barrier *b);
/* Whether both sides have aborted. */
IPCBARRIER_EXPORT bool barrier_we_aborted(const Barrier *b);
/* Whether either side has aborted. */
IPCBARRIER_EXPORT bool barrier_is_aborted(const Barrier *b);

#ifdef __cplusplus
}
#endif
