/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "message-util.hh"

#include <cerrno>
#include <cstdarg>
#include <cstdio>

#include <unistd.h>

namespace ipcbarrier::run {

namespace {

const char *program_name = "ipcbarrier";

/* Longer lines are cut: a message names a path at most, and paths that
 * long are not worth a second write. */
constexpr size_t LINE_MAX_BYTES = 4096;

__attribute__((format(printf, 2, 0))) void write_line(const char *prefix, const char *format,
                                                      va_list ap) noexcept {
    char line[LINE_MAX_BYTES];
    int n = snprintf(line, sizeof line, "%s: %s", program_name, prefix);
    size_t used = n > 0 ? static_cast<size_t>(n) : 0;
    if (used < sizeof line) {
        n = vsnprintf(line + used, sizeof line - used, format, ap);
        if (n > 0) used += static_cast<size_t>(n);
    }
    /* Room for the line feed: a cut line still ends with one. */
    if (used > sizeof line - 2) used = sizeof line - 2;
    line[used++] = '\n';
    int saved_errno = errno;
    size_t done = 0;
    while (done < used) {
        ssize_t w = write(STDERR_FILENO, line + done, used - done);
        if (w < 0 && errno == EINTR) continue;
        /* Nowhere to report a failure to report. */
        if (w <= 0) break;
        done += static_cast<size_t>(w);
    }
    errno = saved_errno;
}

}  // namespace

void set_program_name(const char *name) noexcept {
    program_name = name;
}

void print_error(const char *format, ...) noexcept {
    va_list ap;
    va_start(ap, format);
    write_line("", format, ap);
    va_end(ap);
}

void print_option_error(int result, char *const argv[], const struct option *options,
                        int first_long) noexcept {
    /* optind has moved past the option in every case. */
    if (result == ':') {
        print_error("option %s needs a value (see --help)", argv[optind - 1]);
        return;
    }
    /* A value given to an option that takes none (optopt is that option),
     * or an unknown option. */
    if (optopt >= first_long)
        for (const struct option *o = options; o->name; o++)
            if (o->val == optopt) {
                print_error("option --%s takes no value (see --help)", o->name);
                return;
            }
    print_error("unknown option %s (see --help)", argv[optind - 1]);
}

void Timeline::event(const char *format, ...) const noexcept {
    if (!enabled_) return;
    char elapsed[32];
    usec_t usec = now_usec() - start_usec_;
    (void)snprintf(elapsed, sizeof elapsed, "%7llu.%llu ms  ",
                   static_cast<unsigned long long>(usec / 1000),
                   static_cast<unsigned long long>(usec % 1000 / 100));
    va_list ap;
    va_start(ap, format);
    write_line(elapsed, format, ap);
    va_end(ap);
}

}  // namespace ipcbarrier::run
