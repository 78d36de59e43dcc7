/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The adapters' functions called from C, with the kind as a plain int: a C
 * caller may pass any value, which C++ cannot even form as a
 * BarrierWaitKind, and calling a C function through a pointer of another
 * type would be undefined. Each is compiled only where its adapter is. */

#include <stdint.h>

#include <ipcbarrier/barrier-event.h>

#ifdef __cplusplus
extern "C" {
#endif

int c_wait_kind_timeout(Barrier *b, int kind, uint64_t timeout_usec);

#ifdef TEST_WITH_GLIB
#include <ipcbarrier/barrier-glib.h>
GSource *c_source_new(Barrier *b, int kind);
guint c_add_watch(Barrier *b, int kind, BarrierSourceFunc func, gpointer user_data);
#endif

#ifdef TEST_WITH_SD_EVENT
#include <ipcbarrier/barrier-sd-event.h>
int c_event_add(sd_event *e, BarrierEventSource **ret, Barrier *b, int kind,
                barrier_event_handler_t handler, void *userdata);
#endif

#ifdef __cplusplus
}
#endif
