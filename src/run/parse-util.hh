/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The values of the programs' options: durations, signals, modes, fd
 * mappings, resource limits. Each parser takes the whole text, accepts
 * nothing around the value, and writes its result only on success. */

#include <cstdint>
#include <string_view>

#include <sys/types.h>

#include <ipcbarrier/spawn.h>

namespace ipcbarrier::run {

/* A decimal number with an optional fraction and an optional unit: us
 * (usec), ms (msec), s (sec), min or h; without a unit, seconds. "0.3",
 * "250ms", "2s", "1.5min". Stores microseconds in *ret_usec, a fraction of
 * a microsecond rounded up, so that only a zero duration gives 0. Returns
 * 0, -EINVAL for text that is not a duration, -ERANGE for one of
 * UINT64_MAX microseconds or more. */
[[nodiscard]] int parse_duration(std::string_view text, uint64_t *ret_usec) noexcept;

/* A decimal number from 0 to max, digits only. Returns 0, -EINVAL or
 * -ERANGE. */
[[nodiscard]] int parse_unsigned(std::string_view text, uint64_t max, uint64_t *ret) noexcept;

/* A signal by name, with or without "SIG", in any case ("TERM", "SIGterm"),
 * or by number. Returns 0 or -EINVAL. */
[[nodiscard]] int parse_signal(std::string_view text, int *ret_sig) noexcept;

/* The signal's name without "SIG" ("TERM"), or nullptr for a number that
 * has none. */
[[nodiscard]] const char *signal_name(int sig) noexcept;

/* A file mode creation mask: octal, at most 0777. Returns 0 or -EINVAL. */
[[nodiscard]] int parse_mode(std::string_view text, mode_t *ret_mode) noexcept;

/* "CHILD=PARENT", two fd numbers. Returns 0 or -EINVAL. */
[[nodiscard]] int parse_fd_mapping(std::string_view text, IpcbSpawnFd *ret_fd) noexcept;

/* "NAME=SOFT[:HARD]": NAME a resource without "RLIMIT_" in any case
 * ("nofile", "CORE"), SOFT and HARD numbers or "infinity" (also
 * "unlimited"); without HARD, both limits are SOFT. Returns 0, or -EINVAL
 * for a malformed text, an unknown name or a soft limit above the hard
 * one. */
[[nodiscard]] int parse_rlimit(std::string_view text, IpcbSpawnRlimit *ret_rlimit) noexcept;

}  // namespace ipcbarrier::run
