/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "c-callers.h"

/* In C an int converts to an enum type as it is, whatever its value. */

int c_wait_kind_timeout(Barrier *b, int kind, uint64_t timeout_usec) {
    return barrier_wait_kind_timeout(b, (BarrierWaitKind)kind, timeout_usec);
}

#ifdef TEST_WITH_GLIB
GSource *c_source_new(Barrier *b, int kind) {
    return barrier_source_new(b, (BarrierWaitKind)kind);
}

guint c_add_watch(Barrier *b, int kind, BarrierSourceFunc func, gpointer user_data) {
    return barrier_add_watch(b, (BarrierWaitKind)kind, func, user_data);
}
#endif

#ifdef TEST_WITH_SD_EVENT
int c_event_add(sd_event *e, BarrierEventSource **ret, Barrier *b, int kind,
                barrier_event_handler_t handler, void *userdata) {
    return barrier_event_add(e, ret, b, (BarrierWaitKind)kind, handler, userdata);
}
#endif
