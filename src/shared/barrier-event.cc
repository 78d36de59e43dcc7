/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/barrier-event.h>

#include <cerrno>
#include <cstring>

#include "barrier-internal.hh"

using ipcbarrier::detail::Wait;

namespace {

/* The wait a kind names, or false for a value outside the enumerators. A C
 * caller may pass any int, which C++ must not load as a BarrierWaitKind:
 * look at its bytes instead. */
bool wait_of_kind(const BarrierWaitKind &kind, Wait *ret) {
    unsigned k;
    static_assert(sizeof k == sizeof kind);
    memcpy(&k, &kind, sizeof k);
    switch (k) {
        case BARRIER_WAIT_NEXT:
            *ret = Wait::next;
            return true;
        case BARRIER_WAIT_SYNC_NEXT:
            *ret = Wait::sync_next;
            return true;
        case BARRIER_WAIT_SYNC:
            *ret = Wait::sync;
            return true;
        case BARRIER_WAIT_ABORTION:
            *ret = Wait::abortion;
            return true;
    }
    return false;
}

}  // namespace

extern "C" {

int barrier_wait_kind_timeout(Barrier *b, BarrierWaitKind kind, uint64_t timeout_usec) {
    Wait what;
    if (!wait_of_kind(kind, &what)) return -EINVAL;
    return ipcbarrier::detail::barrier_wait(b, what, timeout_usec);
}

int barrier_wait_kind_peek(const Barrier *b, BarrierWaitKind kind) {
    Wait what;
    if (!wait_of_kind(kind, &what)) return -EINVAL;
    return ipcbarrier::detail::barrier_peek(b, what);
}

}  // extern "C"
