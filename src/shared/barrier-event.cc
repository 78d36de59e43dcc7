/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/barrier-event.h>

#include <cerrno>
#include <cstring>

extern "C" {

int barrier_wait_kind_timeout(Barrier *b, BarrierWaitKind kind, uint64_t timeout_usec) {
    /* A C caller may pass any int, but C++ must not load a value outside
     * the enumerators as a BarrierWaitKind: look at its bytes instead. */
    unsigned k;
    static_assert(sizeof k == sizeof kind);
    memcpy(&k, &kind, sizeof k);
    switch (k) {
        case BARRIER_WAIT_NEXT:
            return barrier_wait_next_timeout(b, timeout_usec);
        case BARRIER_WAIT_SYNC_NEXT:
            return barrier_sync_next_timeout(b, timeout_usec);
        case BARRIER_WAIT_SYNC:
            return barrier_sync_timeout(b, timeout_usec);
        case BARRIER_WAIT_ABORTION:
            return barrier_wait_abortion_timeout(b, timeout_usec);
    }
    return -EINVAL;
}

}  // extern "C"
