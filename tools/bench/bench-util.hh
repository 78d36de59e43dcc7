/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the benchmarks share: clocks, pinning to one CPU, parsing numbers
 * and taking medians. */

#include <cstdint>
#include <optional>
#include <vector>

#include <sys/resource.h>

namespace bench {

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns();

/* User plus system time of ru, in nanoseconds. */
uint64_t cpu_ns(const struct rusage &ru);

/* Pins this process (and every child it makes from now on) to one CPU:
 * wanted if given, else the one it runs on, else the first allowed. Stores
 * it in *ret_cpu. Returns 0, or -EINVAL for a CPU not allowed, or
 * -errno. */
int pin_to_one_cpu(std::optional<unsigned> wanted, unsigned *ret_cpu);

/* A decimal number without sign, at most max. */
bool parse_u64(const char *s, uint64_t max, uint64_t *ret);

/* The median of v (not empty). */
double median(std::vector<double> v);

}  // namespace bench
