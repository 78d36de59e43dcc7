/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/time-util.hh>

#include <ctime>

namespace ipcbarrier {

usec_t now_usec() noexcept {
    struct timespec ts;
    /* Cannot fail for CLOCK_MONOTONIC with a valid pointer. */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<usec_t>(ts.tv_sec) * USEC_PER_SEC +
           static_cast<usec_t>(ts.tv_nsec) / NSEC_PER_USEC;
}

usec_t Deadline::remaining_usec() const noexcept {
    if (infinite()) return USEC_INFINITY;
    usec_t now = now_usec();
    return at_ > now ? at_ - now : 0;
}

struct timespec *Deadline::remaining_timespec(struct timespec *ret) const noexcept {
    usec_t left = remaining_usec();
    if (left == USEC_INFINITY) return nullptr;
    ret->tv_sec = static_cast<time_t>(left / USEC_PER_SEC);
    ret->tv_nsec = static_cast<long>((left % USEC_PER_SEC) * NSEC_PER_USEC);
    return ret;
}

}  // namespace ipcbarrier
