/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Waiting for a barrier from a GLib main loop (see barrier_source_new(3)):
 * a GSource that watches the barrier's fds and calls back once the chosen
 * wait is over, or the barrier is aborted. Library ipcbarrier-glib.
 *
 * The source watches its own duplicates of the barrier's fds, so it never
 * polls a number that the barrier has closed. The Barrier itself (its
 * memory) must stay valid while the source can still be dispatched: until
 * the source is destroyed, or has delivered a result <= 0. Destroying the
 * barrier first, with barrier_destroy(), is safe: the source lets go of its
 * duplicates at once and calls back with -EBADF. Create the source after
 * fork(): a child forked later would inherit the duplicates. */

#include <glib.h>

#include <ipcbarrier/barrier-event.h>
#include <ipcbarrier/export.h>

G_BEGIN_DECLS

/* The callback of a barrier source: b is the barrier, result what the wait
 * returned: 1 (the wait is over), 0 (aborted), or a negative errno value
 * (-EBADF once the barrier has been destroyed, or the error of a fatal I/O
 * error). Return G_SOURCE_CONTINUE to be called again for the next time
 * the wait is over (after result 1 only: after a result <= 0 the source
 * stays attached, but never calls back again), G_SOURCE_REMOVE to destroy
 * the source. Set it with g_source_set_callback() and G_SOURCE_FUNC(). */
typedef gboolean (*BarrierSourceFunc)(Barrier *b, int result, gpointer user_data);

/* A new source for b, whose role must be set, waiting as kind says. Each
 * time the source's fds report news, and before each poll, it calls the
 * timed wait of kind with a timeout of 0 and dispatches once that returns
 * anything but -ETIMEDOUT, also when the wait is over at once. Attach it
 * with g_source_attach(). Returns the source (a new reference), or NULL
 * with errno set: EINVAL for a NULL b or an unknown kind, EBADF if b's
 * role is not set, EMFILE or ENFILE if its fds cannot be duplicated. */
IPCBARRIER_EXPORT GSource *barrier_source_new(Barrier *b, BarrierWaitKind kind);

/* barrier_source_new() with func as callback, attached to the global
 * default main context at the default priority. Returns the source's ID
 * (> 0) for g_source_remove(), or 0 with errno set as for
 * barrier_source_new(), and EINVAL for a NULL func. */
IPCBARRIER_EXPORT guint barrier_add_watch(Barrier *b, BarrierWaitKind kind, BarrierSourceFunc func,
                                          gpointer user_data);

G_END_DECLS
