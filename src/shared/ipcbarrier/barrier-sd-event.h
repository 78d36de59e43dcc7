/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Waiting for a barrier from an sd-event loop (see barrier_event_add(3)):
 * an event source that watches the barrier's fds and calls a handler once
 * the chosen wait is over, or the barrier is aborted. Library
 * ipcbarrier-sd-event.
 *
 * The source watches its own duplicates of the barrier's fds, so the loop
 * never polls, nor removes from its epoll set, a number that the barrier
 * has closed. The Barrier itself (its memory) must stay valid while the
 * source can still call its handler: until it is unreferenced, or has
 * delivered a result <= 0, or its handler has stopped it. Destroying the
 * barrier first, with barrier_destroy(), is safe: the source lets go of its
 * duplicates at once and calls the handler with -EBADF. Create the source
 * after fork(): a child forked later would inherit the duplicates. */

#include <systemd/sd-event.h>

#include <ipcbarrier/barrier-event.h>
#include <ipcbarrier/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BarrierEventSource BarrierEventSource;

/* The handler of a barrier event source: b is the barrier, result what the
 * wait returned: 1 (the wait is over), 0 (aborted), or a negative errno
 * value (-EBADF once the barrier has been destroyed, or the error of a
 * fatal I/O error). After result 1, return >= 0 to be called again for the
 * next time the wait is over, < 0 to stop. After a result <= 0 the source
 * never calls back again, whatever the handler returns. */
typedef int (*barrier_event_handler_t)(BarrierEventSource *s, Barrier *b, int result,
                                       void *userdata);

/* Adds a source for b, whose role must be set, to the loop e, waiting as
 * kind says. Before each poll of the loop, and each time the barrier's fds
 * report news, the source calls the timed wait of kind with a timeout of 0
 * and calls handler from the loop once that returns anything but
 * -ETIMEDOUT, also when the wait is over at once. If ret is not NULL, *ret
 * is the caller's reference, to be dropped with
 * barrier_event_source_unref(); it keeps e alive. If ret is NULL, the
 * source is floating: the loop owns it, frees it when it is freed itself,
 * and the source frees itself once it has stopped; the caller must not
 * unreference it. Returns 0, or -errno: -EINVAL for a NULL e, b or handler
 * or an unknown kind, -EBADF if b's role is not set, -EMFILE or -ENFILE if
 * its fds cannot be duplicated, -ENOMEM, or the errors of sd-event (such
 * as -ECHILD for a loop created before fork()); nothing is added then. */
IPCBARRIER_EXPORT int barrier_event_add(sd_event *e, BarrierEventSource **ret, Barrier *b,
                                        BarrierWaitKind kind, barrier_event_handler_t handler,
                                        void *userdata);

/* Stops the source (no handler call afterwards), closes its duplicates and
 * drops the caller's reference. Safe from within its own handler. Returns
 * NULL; does nothing for NULL. */
IPCBARRIER_EXPORT BarrierEventSource *barrier_event_source_unref(BarrierEventSource *s);

#ifdef __cplusplus
}
#endif
