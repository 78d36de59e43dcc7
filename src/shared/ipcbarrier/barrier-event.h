/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Waiting for a barrier from an event loop (see barrier_wait_kind_timeout(3)).
 * The adapters for GLib (barrier-glib.h) and sd-event (barrier-sd-event.h)
 * take one of these kinds and complete the wait it names without blocking,
 * whenever the barrier's fds report news; the functions below are what
 * they, or an integration with another loop, are made of.
 *
 * The rules of such an integration: it watches the fds of
 * barrier_get_pollfds() themselves (no duplicates, which would keep the
 * pipe open and hide a destroyed barrier from the other side); it calls
 * the wait only when the loop reports an event on them, and otherwise
 * decides from memory with barrier_wait_kind_peek(); and it attaches
 * itself with barrier_watch(), which tells it when this side changes the
 * state, moves the barrier, or closes its fds. */

#include <stdint.h>
#include <sys/types.h>

#include <ipcbarrier/barrier.h>
#include <ipcbarrier/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Each kind names one of the timed waits of barrier.h. */
typedef enum BarrierWaitKind {
    BARRIER_WAIT_NEXT,      /* barrier_wait_next_timeout() */
    BARRIER_WAIT_SYNC_NEXT, /* barrier_sync_next_timeout() */
    BARRIER_WAIT_SYNC,      /* barrier_sync_timeout() */
    BARRIER_WAIT_ABORTION,  /* barrier_wait_abortion_timeout() */
} BarrierWaitKind;

/* Calls the timed wait that kind names, with timeout_usec, and returns what
 * it returns: 1 (the wait is over), 0 (aborted), -ETIMEDOUT, -EBADF for a
 * barrier whose role is not set, or the -errno of a fatal I/O error.
 * Returns -EINVAL for an unknown kind, without touching b. */
IPCBARRIER_EXPORT int barrier_wait_kind_timeout(Barrier *b, BarrierWaitKind kind,
                                                uint64_t timeout_usec);

/* What the wait of kind would return now without reading the fds: 1 or 0
 * when the barrier's state alone decides it (an abortion this side knows
 * of; a sync that is not ahead), -EAGAIN when only the fds can tell,
 * -EBADF if the role is not set, -EINVAL for an unknown kind. Makes no
 * syscall: for a loop's every iteration, or after a callback. */
IPCBARRIER_EXPORT int barrier_wait_kind_peek(const Barrier *b, BarrierWaitKind kind);

/* What barrier_watch()'s function is told. */
typedef enum BarrierWatchEvent {
    /* This side changed the state in a way that may end a wait without
     * news on the fds (it aborted): look with barrier_wait_kind_peek(). */
    BARRIER_WATCH_CHANGED,
    /* barrier_move() moved the barrier: b is its new address. */
    BARRIER_WATCH_MOVED,
    /* barrier_destroy() is about to close the fds: stop watching them now.
     * The watch is removed before the call; b is empty afterwards. */
    BARRIER_WATCH_CLOSING,
    /* A fatal I/O error is about to close the pipe end: stop watching the
     * fds now. b is aborted ("we aborted") afterwards, and every wait
     * returns 0 at once; the watch stays attached until barrier_destroy()
     * (CLOSING) or barrier_unwatch(). */
    BARRIER_WATCH_FAILED,
} BarrierWatchEvent;

typedef void (*barrier_watch_func_t)(Barrier *b, BarrierWatchEvent event, void *userdata);

/* A watch: kept by whoever attaches it (in its source's own state), for as
 * long as it is attached; the barrier only points to it, so attaching
 * allocates nothing. The fields are private. */
struct BarrierWatch {
    barrier_watch_func_t func;
    void *userdata;
    pid_t pid; /* the process that attached it: a forked child has a copy */
};

/* Attaches w as the one reader that a barrier may have besides blocking
 * waits (an event-loop source), which is then told through func what
 * happens to b (see BarrierWatchEvent). func is called from the function
 * that changes b, in the process that attached it; never in a child forked
 * afterwards, for which an inherited watch counts as none. b's role must be
 * set; b must stay where it is (or move with barrier_move()) and w must
 * stay valid while attached. Returns 0, -EINVAL for a NULL b, w or func,
 * -EBADF if the role is not set, -EBUSY if another watch is attached. */
IPCBARRIER_EXPORT int barrier_watch(Barrier *b, BarrierWatch *w, barrier_watch_func_t func,
                                    void *userdata);

/* Detaches w from b. Returns 0, or -ENOENT if w is not attached to b (b
 * was destroyed, or another watch is attached). */
IPCBARRIER_EXPORT int barrier_unwatch(Barrier *b, BarrierWatch *w);

#ifdef __cplusplus
}
#endif
