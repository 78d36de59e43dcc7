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

#include <stdbool.h>
#include <stdint.h>

#include <ipcbarrier/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The fields are private: they are visible only so that a Barrier can live
 * on the stack or inside another struct. Initialize with BARRIER_NULL. */
typedef struct Barrier {
    int me;           /* eventfd we write our sync points to */
    int them;         /* eventfd we read the other side's sync points from */
    int64_t barriers; /* placed minus consumed, or an abortion state */
    int pipe[2];      /* only one end stays open once the role is set */
} Barrier;

#define BARRIER_NULL \
    {                \
        -1, -1, 0, { \
            -1, -1   \
        }            \
    }

enum {
    BARRIER_PARENT,
    BARRIER_CHILD,
};

/* Creates the barrier's two eventfds and its pipe, all close-on-exec and
 * non-blocking. b must be BARRIER_NULL or destroyed. Returns 0 or -errno
 * (-EMFILE, -ENFILE, -ENOMEM); on failure nothing is left open and b is
 * unchanged. */
IPCBARRIER_EXPORT int barrier_create(Barrier *b);

/* Closes every fd of b and makes it BARRIER_NULL again. Safe on
 * BARRIER_NULL and when called twice. Does not abort explicitly: the other
 * side sees the closed pipe as an implicit abortion once it has consumed
 * the sync points placed before. */
IPCBARRIER_EXPORT void barrier_destroy(Barrier *b);

/* For __attribute__((cleanup)) on a Barrier pointer. */
static inline void barrier_destroyp(Barrier **b) {
    if (*b) barrier_destroy(*b);
}

/* Sets this side's role after fork(): BARRIER_PARENT or BARRIER_CHILD.
 * Call exactly once on each side, before any other operation. Returns 0,
 * -EINVAL for an unknown role, -EBADF if b was never created, -EBUSY if the
 * role is already set. */
IPCBARRIER_EXPORT int barrier_set_role(Barrier *b, unsigned role);

/* Places one sync point for the other side. Does nothing once either side
 * has aborted. Returns false if either side has aborted, else true. */
IPCBARRIER_EXPORT bool barrier_place(Barrier *b);

/* Aborts: tells the other side asynchronously that this side gives up, and
 * cancels the sync points still queued for it. Only the first call writes;
 * later ones are no-ops. Returns false if the other side had already
 * aborted (as far as this side has seen), else true. */
IPCBARRIER_EXPORT bool barrier_abort(Barrier *b);

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
