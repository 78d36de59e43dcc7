/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Waiting for a barrier from an sd-event loop (see barrier_event_add(3)):
 * an event source that watches the barrier's fds and calls a handler once
 * the chosen wait is over, or the barrier is aborted. Library
 * ipcbarrier-sd-event.
 *
 * The source watches the barrier's own fds (no duplicates) and is the
 * barrier's one reader (barrier_watch()): a second source for the same
 * barrier, of this adapter or another, is refused. barrier_destroy() takes
 * the fds out of the loop at once, so the other side sees the barrier go
 * whether or not the loop runs again; the source then calls the handler
 * with -EBADF. It costs nothing per loop iteration: the barrier is read
 * only when its fds report an event. Its controls are those of an sd-event
 * source (reference, priority, description, enable state, floating), and
 * apply to the sd-event sources it is made of. Use a source, its barrier
 * and its loop from one thread. */

#include <stdint.h>

#include <systemd/sd-event.h>

#include <ipcbarrier/barrier-event.h>
#include <ipcbarrier/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BarrierEventSource BarrierEventSource;

/* The handler of a barrier event source: b is the barrier (NULL with
 * -EBADF), result what the wait returned: 1 (the wait is over), 0
 * (aborted), or a negative errno value (-EBADF once the barrier has been
 * destroyed, or the error of a fatal I/O error). After result 1, return
 * >= 0 to be called again whenever the wait is over again, < 0 to stop. A
 * result <= 0 is the last: the source stops, whatever the handler
 * returns. */
typedef int (*barrier_event_handler_t)(BarrierEventSource *s, Barrier *b, int result,
                                       void *userdata);

/* Adds a source for b, whose role must be set, to the loop e, waiting as
 * kind says. When b's fds report an event it calls the timed wait of kind
 * with a timeout of 0 and calls handler unless that returns -ETIMEDOUT; a
 * wait that is over without news on the fds (when added, after a local
 * abortion, after a handler that goes on) is delivered in the next
 * iteration. The source holds b until it stops. If ret is not NULL, *ret
 * is the caller's reference (see barrier_event_source_unref()), which
 * keeps e alive. If ret is NULL, the source is floating: the loop owns it,
 * and it is freed once it stops, or with the loop. Returns 0, or -errno:
 * -EINVAL for a NULL e, b or handler or an unknown kind, -EBADF if b's
 * role is not set, -EBUSY if b already has a source, -ENOMEM, or the
 * errors of sd-event (such as -ECHILD for a loop created before fork());
 * nothing is added then. */
IPCBARRIER_EXPORT int barrier_event_add(sd_event *e, BarrierEventSource **ret, Barrier *b,
                                        BarrierWaitKind kind, barrier_event_handler_t handler,
                                        void *userdata);

/* Takes another reference. Returns s (NULL for NULL). */
IPCBARRIER_EXPORT BarrierEventSource *barrier_event_source_ref(BarrierEventSource *s);

/* Drops a reference. The last one stops the source (no handler call
 * afterwards, the barrier is free for another source) and frees it, also
 * from within its own handler. Returns NULL; does nothing for NULL. */
IPCBARRIER_EXPORT BarrierEventSource *barrier_event_source_unref(BarrierEventSource *s);

/* For __attribute__((cleanup)). */
static inline void barrier_event_source_unrefp(BarrierEventSource **s) {
    barrier_event_source_unref(*s);
}

/* barrier_event_source_set_enabled(s, SD_EVENT_OFF), then
 * barrier_event_source_unref(s). Returns NULL; does nothing for NULL. */
IPCBARRIER_EXPORT BarrierEventSource *barrier_event_source_disable_unref(BarrierEventSource *s);

/* The priority of the source, that of all sd-event sources it is made of
 * (SD_EVENT_PRIORITY_NORMAL to begin with). Return 0, -EINVAL for a NULL
 * s (or ret), or the errors of sd_event_source_set_priority(). */
IPCBARRIER_EXPORT int barrier_event_source_set_priority(BarrierEventSource *s, int64_t priority);
IPCBARRIER_EXPORT int barrier_event_source_get_priority(BarrierEventSource *s, int64_t *ret);

/* The description of the source, for debugging (a copy is kept; NULL
 * removes it). Return 0, -EINVAL for a NULL s (or ret), -ENOMEM, -ENXIO
 * if there is none to get. The string got stays valid until the next
 * set, or until the source is freed. */
IPCBARRIER_EXPORT int barrier_event_source_set_description(BarrierEventSource *s,
                                                           const char *description);
IPCBARRIER_EXPORT int barrier_event_source_get_description(BarrierEventSource *s, const char **ret);

/* Whether the source delivers: SD_EVENT_ON (the start), SD_EVENT_ONESHOT
 * (one delivery, then SD_EVENT_OFF) or SD_EVENT_OFF (no delivery and no
 * reading of the barrier; a result recorded already, such as the -EBADF of
 * a destroyed barrier, is delivered once it is enabled again). A stopped
 * source is SD_EVENT_OFF for good. set returns 0, -EINVAL for a NULL s or
 * an unknown state, -ESTALE to enable a stopped source or one whose loop
 * is gone or finished, or the errors of sd-event. get stores the state in
 * *ret (if not NULL) and returns 1 if it is enabled, 0 if not, -EINVAL
 * for a NULL s. */
IPCBARRIER_EXPORT int barrier_event_source_set_enabled(BarrierEventSource *s, int enabled);
IPCBARRIER_EXPORT int barrier_event_source_get_enabled(BarrierEventSource *s, int *ret);

/* Floating: the loop holds a reference to the source (as for ret NULL in
 * barrier_event_add()) and drops it when the source stops or the loop is
 * freed; the source then holds no reference to the loop. Making a source
 * floating adds the loop's reference, making it non-floating drops it (the
 * caller must hold one of its own then). set returns 1 if the state
 * changed, 0 if not, -EINVAL for a NULL s, -ESTALE to make a stopped
 * source floating. get returns 1 or 0, -EINVAL for a NULL s. */
IPCBARRIER_EXPORT int barrier_event_source_set_floating(BarrierEventSource *s, int b);
IPCBARRIER_EXPORT int barrier_event_source_get_floating(BarrierEventSource *s);

/* The loop of the source (no new reference), or NULL for NULL and once the
 * loop has been freed. */
IPCBARRIER_EXPORT sd_event *barrier_event_source_get_event(BarrierEventSource *s);

#ifdef __cplusplus
}
#endif
