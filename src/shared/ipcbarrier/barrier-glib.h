/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Waiting for a barrier from a GLib main loop (see barrier_source_new(3)):
 * a GSource that watches the barrier's fds and calls back once the chosen
 * wait is over, or the barrier is aborted. Library ipcbarrier-glib.
 *
 * The source watches the barrier's own fds (no duplicates) and is the
 * barrier's one reader (barrier_watch()): a second source for the same
 * barrier, of this adapter or another, is refused. barrier_destroy() takes
 * the fds out of the context at once, so the other side sees the barrier
 * go whether or not the loop runs again; the source then calls back with
 * -EBADF. It costs nothing per loop iteration: the barrier is read only
 * when its fds report an event. Use a source, its barrier and its context
 * from one thread. */

#include <glib.h>

#include <ipcbarrier/barrier-event.h>
#include <ipcbarrier/export.h>

G_BEGIN_DECLS

/* The callback of a barrier source: b is the barrier (NULL with -EBADF),
 * result what the wait returned: 1 (the wait is over), 0 (aborted), or a
 * negative errno value (-EBADF once the barrier has been destroyed, or the
 * error of a fatal I/O error). Return G_SOURCE_CONTINUE to be called again
 * whenever the wait is over again (after result 1 only: a result <= 0 is
 * the last, after which the source stays attached but inert),
 * G_SOURCE_REMOVE to destroy the source. Set it with
 * g_source_set_callback() and G_SOURCE_FUNC(). */
typedef gboolean (*BarrierSourceFunc)(Barrier *b, int result, gpointer user_data);

/* A new source for b, whose role must be set, waiting as kind says. When
 * b's fds report an event it calls the timed wait of kind with a timeout
 * of 0 and dispatches unless that returns -ETIMEDOUT; a wait that is over
 * without news on the fds (at creation, after a local abortion, after a
 * callback that goes on) is dispatched in the next iteration. The source
 * holds b until it has delivered a result <= 0, or is finalized. Attach it
 * with g_source_attach(). Returns the source (a new reference), or NULL
 * with errno set: EINVAL for a NULL b or an unknown kind, EBADF if b's
 * role is not set, EBUSY if b already has a source. */
IPCBARRIER_EXPORT GSource *barrier_source_new(Barrier *b, BarrierWaitKind kind);

/* barrier_source_new() with func as callback, attached to the global
 * default main context at the default priority. Returns the source's ID
 * (> 0) for g_source_remove(), or 0 with errno set as for
 * barrier_source_new(), and EINVAL for a NULL func. */
IPCBARRIER_EXPORT guint barrier_add_watch(Barrier *b, BarrierWaitKind kind, BarrierSourceFunc func,
                                          gpointer user_data);

/* barrier_add_watch() at priority, with notify called on user_data once
 * the source is destroyed (like g_child_watch_add_full()). On failure
 * notify is not called: user_data stays the caller's. */
IPCBARRIER_EXPORT guint barrier_add_watch_full(gint priority, Barrier *b, BarrierWaitKind kind,
                                               BarrierSourceFunc func, gpointer user_data,
                                               GDestroyNotify notify);

G_END_DECLS
