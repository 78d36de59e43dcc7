/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* time-util: the monotonic clock, saturating addition and deadlines. No
 * assertion depends on how much time passes, only on its order: a clock
 * read before a call is <= what the call saw, and one read after is >=. */

#include <cstdint>
#include <ctime>
#include <initializer_list>

#include <glib.h>

#include <ipcbarrier/time-util.hh>

#include "test-util.h"

namespace {

using ipcbarrier::Deadline;
using ipcbarrier::now_usec;
using ipcbarrier::NSEC_PER_USEC;
using ipcbarrier::usec_add;
using ipcbarrier::USEC_INFINITY;
using ipcbarrier::USEC_PER_SEC;
using ipcbarrier::usec_t;

static_assert(usec_add(1, 2) == 3);
static_assert(usec_add(USEC_INFINITY, 0) == USEC_INFINITY);
static_assert(usec_add(0, USEC_INFINITY) == USEC_INFINITY);
static_assert(usec_add(USEC_INFINITY - 1, 1) == USEC_INFINITY);
static_assert(Deadline::never().infinite());
static_assert(Deadline::at(5).at_usec() == 5);
static_assert(!Deadline::at(USEC_INFINITY - 1).infinite());

constexpr usec_t kHour = 3600 * USEC_PER_SEC;

usec_t clock_usec() {
    struct timespec ts;
    g_assert_cmpint(clock_gettime(CLOCK_MONOTONIC, &ts), ==, 0);
    return static_cast<usec_t>(ts.tv_sec) * USEC_PER_SEC +
           static_cast<usec_t>(ts.tv_nsec) / NSEC_PER_USEC;
}

/* It is CLOCK_MONOTONIC, in microseconds: bracketed by direct reads. */
void test_now_is_monotonic_clock() {
    for (int i = 0; i < 1000; i++) {
        usec_t before = clock_usec();
        usec_t now = now_usec();
        usec_t after = clock_usec();
        g_assert_cmpuint(before, <=, now);
        g_assert_cmpuint(now, <=, after);
    }
}

void test_now_never_decreases() {
    usec_t prev = now_usec();
    g_assert_cmpuint(prev, >, 0);
    g_assert_cmpuint(prev, <, USEC_INFINITY);
    for (int i = 0; i < 100000; i++) {
        usec_t now = now_usec();
        g_assert_cmpuint(now, >=, prev);
        prev = now;
    }
}

void test_usec_add() {
    static const struct {
        usec_t a, b, sum;
    } cases[] = {
        {0, 0, 0},
        {1, 2, 3},
        {USEC_PER_SEC, kHour, USEC_PER_SEC + kHour},
        {USEC_INFINITY - 2, 1, USEC_INFINITY - 1},
        {1, USEC_INFINITY - 2, USEC_INFINITY - 1},
        {USEC_INFINITY - 1, 0, USEC_INFINITY - 1},
        /* Saturation: anything that reaches or passes the maximum is
         * infinity, and infinity stays infinity. */
        {USEC_INFINITY - 1, 1, USEC_INFINITY},
        {USEC_INFINITY - 1, 2, USEC_INFINITY},
        {USEC_INFINITY / 2 + 1, USEC_INFINITY / 2 + 1, USEC_INFINITY},
        {USEC_INFINITY - 1, USEC_INFINITY - 1, USEC_INFINITY},
        {USEC_INFINITY, 0, USEC_INFINITY},
        {0, USEC_INFINITY, USEC_INFINITY},
        {USEC_INFINITY, 1, USEC_INFINITY},
        {1, USEC_INFINITY, USEC_INFINITY},
        {USEC_INFINITY, USEC_INFINITY, USEC_INFINITY},
    };
    for (const auto &c : cases) {
        g_assert_cmpuint(usec_add(c.a, c.b), ==, c.sum);
        g_assert_cmpuint(usec_add(c.b, c.a), ==, c.sum);
    }
}

void test_deadline_never() {
    Deadline d = Deadline::never();
    g_assert_true(d.infinite());
    g_assert_cmpuint(d.at_usec(), ==, USEC_INFINITY);
    g_assert_cmpuint(d.remaining_usec(), ==, USEC_INFINITY);
    struct timespec ts = {123, 456};
    g_assert_null(d.remaining_timespec(&ts));
    g_assert_cmpint(ts.tv_sec, ==, 123);
    g_assert_cmpint(ts.tv_nsec, ==, 456);
}

void test_deadline_at() {
    for (usec_t at : {usec_t{0}, usec_t{1}, kHour, USEC_INFINITY - 1}) {
        Deadline d = Deadline::at(at);
        g_assert_cmpuint(d.at_usec(), ==, at);
        g_assert_false(d.infinite());
    }
    /* The end of time is never. */
    g_assert_true(Deadline::at(USEC_INFINITY).infinite());
    g_assert_cmpuint(Deadline::at(USEC_INFINITY).remaining_usec(), ==, USEC_INFINITY);
}

void test_deadline_after() {
    usec_t before = now_usec();
    Deadline d = Deadline::after(kHour);
    usec_t after = now_usec();
    g_assert_false(d.infinite());
    g_assert_cmpuint(d.at_usec(), >=, before + kHour);
    g_assert_cmpuint(d.at_usec(), <=, after + kHour);

    /* Measured against now, which lies between the two reads. */
    before = now_usec();
    usec_t left = d.remaining_usec();
    after = now_usec();
    g_assert_cmpuint(left, <=, d.at_usec() - before);
    g_assert_cmpuint(left, >=, d.at_usec() - after);

    /* A zero timeout is already due, or due at the latest now. */
    g_assert_cmpuint(Deadline::after(0).remaining_usec(), ==, 0);
}

void test_deadline_after_infinity() {
    g_assert_true(Deadline::after(USEC_INFINITY).infinite());
    g_assert_cmpuint(Deadline::after(USEC_INFINITY).remaining_usec(), ==, USEC_INFINITY);
    /* A timeout too large to add to now saturates to never. */
    g_assert_true(Deadline::after(USEC_INFINITY - 1).infinite());
}

void test_deadline_past() {
    usec_t now = now_usec();
    for (usec_t at : {usec_t{0}, usec_t{1}, now - 1, now}) {
        Deadline d = Deadline::at(at);
        g_assert_cmpuint(d.remaining_usec(), ==, 0);
        struct timespec ts = {-1, -1};
        g_assert_true(d.remaining_timespec(&ts) == &ts);
        g_assert_cmpint(ts.tv_sec, ==, 0);
        g_assert_cmpint(ts.tv_nsec, ==, 0);
    }
}

/* The timespec is the remaining time, split into whole seconds and the
 * nanoseconds of the rest, bracketed by remaining_usec() before and after. */
void test_remaining_timespec_split() {
    const usec_t now = now_usec();
    const usec_t offsets[] = {kHour + 123456, 7 * USEC_PER_SEC + 999999, kHour};
    for (usec_t offset : offsets) {
        Deadline d = Deadline::at(now + offset);
        usec_t most = d.remaining_usec();
        struct timespec ts;
        g_assert_true(d.remaining_timespec(&ts) == &ts);
        usec_t least = d.remaining_usec();
        g_assert_cmpint(ts.tv_sec, >=, 0);
        g_assert_cmpint(ts.tv_nsec, >=, 0);
        g_assert_cmpint(ts.tv_nsec, <, 1000000000);
        g_assert_cmpint(ts.tv_nsec % 1000, ==, 0);
        usec_t got = static_cast<usec_t>(ts.tv_sec) * USEC_PER_SEC +
                     static_cast<usec_t>(ts.tv_nsec) / NSEC_PER_USEC;
        g_assert_cmpuint(got, <=, most);
        g_assert_cmpuint(got, >=, least);
    }

    /* The farthest finite deadline: seconds beyond 32 bits, no overflow. */
    Deadline far = Deadline::at(USEC_INFINITY - 1);
    usec_t most = far.remaining_usec();
    struct timespec ts;
    g_assert_true(far.remaining_timespec(&ts) == &ts);
    usec_t least = far.remaining_usec();
    g_assert_cmpint(ts.tv_sec, >, INT32_MAX);
    g_assert_cmpuint(static_cast<usec_t>(ts.tv_sec), <=, most / USEC_PER_SEC);
    g_assert_cmpuint(static_cast<usec_t>(ts.tv_sec), >=, least / USEC_PER_SEC);
    g_assert_cmpint(ts.tv_nsec, <, 1000000000);
}

}  // namespace

int main(int argc, char **argv) {
    g_test_init(&argc, &argv, nullptr);

    test_add_fd_checked("/time-util/now/is-monotonic-clock", test_now_is_monotonic_clock);
    test_add_fd_checked("/time-util/now/never-decreases", test_now_never_decreases);
    test_add_fd_checked("/time-util/usec-add", test_usec_add);
    test_add_fd_checked("/time-util/deadline/never", test_deadline_never);
    test_add_fd_checked("/time-util/deadline/at", test_deadline_at);
    test_add_fd_checked("/time-util/deadline/after", test_deadline_after);
    test_add_fd_checked("/time-util/deadline/after-infinity", test_deadline_after_infinity);
    test_add_fd_checked("/time-util/deadline/past", test_deadline_past);
    test_add_fd_checked("/time-util/deadline/remaining-timespec-split",
                        test_remaining_timespec_split);

    return g_test_run();
}
