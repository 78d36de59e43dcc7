/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What an event-loop adapter of the barrier waits for (see
 * barrier_wait_kind_timeout(3)). The adapters for GLib (barrier-glib.h) and
 * sd-event (barrier-sd-event.h) take one of these kinds and complete the
 * wait it names without blocking, whenever the barrier's fds report news. */

#include <stdint.h>

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

#ifdef __cplusplus
}
#endif
