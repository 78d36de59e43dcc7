/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the programs print on stderr: errors, one line each, and the
 * --verbose timeline. Each line goes out in one write(2), so that it does
 * not mix with the lines of the programs that share the stream. */

#include <getopt.h>

#include <ipcbarrier/time-util.hh>

namespace ipcbarrier::run {

/* The name every line starts with. Set it first; it must stay valid. */
void set_program_name(const char *name) noexcept;

/* Prints "NAME: " and the formatted text as one line on stderr. */
void print_error(const char *format, ...) noexcept __attribute__((format(printf, 1, 2)));

/* Prints what getopt_long() found wrong, as one line: result is what it
 * returned (':' for a missing value, '?' otherwise), options the long
 * options it was given, whose values are at least first_long (so that
 * optopt tells an option that takes no value from an unknown one). Call
 * it at once, with getopt's optind and optopt as they are. */
void print_option_error(int result, char *const argv[], const struct option *options,
                        int first_long) noexcept;

/* The --verbose timeline: events, each a line on stderr that tells the
 * milliseconds elapsed since the timeline was created. */
class Timeline {
  public:
    explicit Timeline(bool enabled) noexcept : enabled_(enabled), start_usec_(now_usec()) {}

    void enable() noexcept { enabled_ = true; }
    [[nodiscard]] bool enabled() const noexcept { return enabled_; }

    /* Prints the event if the timeline is enabled. */
    void event(const char *format, ...) const noexcept __attribute__((format(printf, 2, 3)));

  private:
    bool enabled_;
    usec_t start_usec_;
};

}  // namespace ipcbarrier::run
