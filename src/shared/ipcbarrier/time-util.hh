/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if __cplusplus < 202002L
#error "the ipcbarrier C++ headers need C++20 (-std=c++20); C code uses <ipcbarrier/barrier.h>"
#endif

/* Monotonic time in microseconds, and deadlines for timed waits. */

#include <chrono>
#include <cstdint>
#include <ctime>

#include <ipcbarrier/export.h>

namespace ipcbarrier {

using usec_t = uint64_t;

/* "No limit": a timeout or deadline that never expires. */
inline constexpr usec_t USEC_INFINITY = UINT64_MAX;
inline constexpr usec_t USEC_PER_SEC = 1000000;
inline constexpr usec_t USEC_PER_MSEC = 1000;
inline constexpr usec_t NSEC_PER_USEC = 1000;

/* Current CLOCK_MONOTONIC time in microseconds. Async-signal-safe. */
[[nodiscard]] IPCBARRIER_EXPORT usec_t now_usec() noexcept;

/* a + b, saturating at USEC_INFINITY (so infinity stays infinity). */
[[nodiscard]] constexpr usec_t usec_add(usec_t a, usec_t b) noexcept {
    return a > USEC_INFINITY - b ? USEC_INFINITY : a + b;
}

/* A std::chrono duration in microseconds, rounded up (so that a short
 * positive timeout never becomes "do not block"); 0 for zero or negative
 * durations, USEC_INFINITY for durations too long to count. */
template <class Rep, class Period>
[[nodiscard]] constexpr usec_t usec_from_duration(std::chrono::duration<Rep, Period> d) noexcept {
    /* long double holds any Rep's range, so nothing here can overflow. */
    long double us = std::chrono::duration<long double, std::micro>(d).count();
    if (!(us > 0)) return 0;
    if (us >= static_cast<long double>(USEC_INFINITY)) return USEC_INFINITY;
    auto whole = static_cast<usec_t>(us);
    return static_cast<long double>(whole) < us ? whole + 1 : whole;
}

/* A point on the monotonic clock after which a wait gives up. */
class Deadline {
  public:
    /* A deadline that never expires. */
    [[nodiscard]] static constexpr Deadline never() noexcept { return Deadline(USEC_INFINITY); }
    /* The deadline timeout microseconds from now (never() for
     * USEC_INFINITY). */
    [[nodiscard]] static Deadline after(usec_t timeout) noexcept {
        return Deadline(timeout == USEC_INFINITY ? USEC_INFINITY : usec_add(now_usec(), timeout));
    }
    /* The deadline at the absolute monotonic time at_usec. */
    [[nodiscard]] static constexpr Deadline at(usec_t at_usec) noexcept {
        return Deadline(at_usec);
    }

    [[nodiscard]] constexpr bool infinite() const noexcept { return at_ == USEC_INFINITY; }
    [[nodiscard]] constexpr usec_t at_usec() const noexcept { return at_; }

    /* Microseconds left, measured against now; 0 once expired,
     * USEC_INFINITY for never(). */
    [[nodiscard]] IPCBARRIER_EXPORT usec_t remaining_usec() const noexcept;

    /* Fills *ret with the time left, for ppoll(2); returns nullptr for a
     * deadline that never expires (ppoll's "no timeout"), else ret. */
    [[nodiscard]] IPCBARRIER_EXPORT struct timespec *remaining_timespec(
        struct timespec *ret) const noexcept;

  private:
    constexpr explicit Deadline(usec_t at) noexcept : at_(at) {}
    usec_t at_;
};

}  // namespace ipcbarrier
