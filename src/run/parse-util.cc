/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "parse-util.hh"

#include <cerrno>
#include <climits>
#include <cstring>
#include <iterator>

#include <signal.h>
#include <sys/resource.h>

namespace ipcbarrier::run {

namespace {

/* Wide enough for a duration in microseconds times a unit. */
__extension__ typedef unsigned __int128 uint128_t;

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

char to_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++)
        if (to_lower(a[i]) != to_lower(b[i])) return false;
    return true;
}

/* Splits text at the first sep: *ret_head before it, *ret_tail after. */
bool split(std::string_view text, char sep, std::string_view *ret_head,
           std::string_view *ret_tail) noexcept {
    size_t at = text.find(sep);
    if (at == std::string_view::npos) return false;
    *ret_head = text.substr(0, at);
    *ret_tail = text.substr(at + 1);
    return true;
}

struct DurationUnit {
    const char *name;
    uint64_t usec;
};

constexpr DurationUnit duration_units[] = {
    {"", 1000000},
    {"us", 1},
    {"usec", 1},
    {"ms", 1000},
    {"msec", 1000},
    {"s", 1000000},
    {"sec", 1000000},
    {"min", 60 * 1000000ULL},
    {"h", 3600 * 1000000ULL},
};

struct RlimitName {
    const char *name;
    int resource;
};

constexpr RlimitName rlimit_names[] = {
    {"as", RLIMIT_AS},           {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},       {"fsize", RLIMIT_FSIZE},       {"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE},   {"nproc", RLIMIT_NPROC},       {"rss", RLIMIT_RSS},
    {"rtprio", RLIMIT_RTPRIO},   {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},
};

int parse_rlimit_value(std::string_view text, rlim_t *ret) noexcept {
    if (text == "infinity" || text == "unlimited") {
        *ret = RLIM_INFINITY;
        return 0;
    }
    uint64_t v;
    /* RLIM_INFINITY is the largest rlim_t: only its name stands for it. */
    int r = parse_unsigned(text, RLIM_INFINITY - 1, &v);
    if (r < 0) return -EINVAL;
    *ret = static_cast<rlim_t>(v);
    return 0;
}

}  // namespace

int parse_unsigned(std::string_view text, uint64_t max, uint64_t *ret) noexcept {
    if (text.empty()) return -EINVAL;
    uint64_t v = 0;
    for (char c : text) {
        if (!is_digit(c)) return -EINVAL;
        unsigned d = static_cast<unsigned>(c - '0');
        if (v > (max - d) / 10) return -ERANGE;
        v = v * 10 + d;
    }
    *ret = v;
    return 0;
}

int parse_duration(std::string_view text, uint64_t *ret_usec) noexcept {
    size_t i = 0;
    uint128_t whole = 0;
    bool digits = false;
    for (; i < text.size() && is_digit(text[i]); i++) {
        whole = whole * 10 + static_cast<unsigned>(text[i] - '0');
        /* Beyond any duration that fits; stop before the 128 bits could. */
        if (whole > UINT64_MAX) return -ERANGE;
        digits = true;
    }
    /* The fraction as a numerator over a power of ten; digits beyond 18
     * are below a microsecond even for hours, and only count as "not
     * zero". */
    uint64_t numerator = 0, denominator = 1;
    bool fraction_rest = false;
    if (i < text.size() && text[i] == '.') {
        i++;
        bool fraction_digits = false;
        for (; i < text.size() && is_digit(text[i]); i++) {
            fraction_digits = true;
            if (denominator < 1000000000000000000ULL) {
                numerator = numerator * 10 + static_cast<unsigned>(text[i] - '0');
                denominator *= 10;
            } else if (text[i] != '0') {
                fraction_rest = true;
            }
        }
        if (!fraction_digits) return -EINVAL;
        digits = true;
    }
    if (!digits) return -EINVAL;

    std::string_view unit = text.substr(i);
    const DurationUnit *found = nullptr;
    for (const DurationUnit &u : duration_units)
        if (unit == u.name) found = &u;
    if (!found) return -EINVAL;

    uint128_t usec = whole * found->usec;
    uint128_t part = static_cast<uint128_t>(numerator) * found->usec;
    /* Rounded up: a fraction of a microsecond is one. */
    usec += part / denominator + (part % denominator != 0 || fraction_rest ? 1 : 0);
    if (usec >= UINT64_MAX) return -ERANGE;
    *ret_usec = static_cast<uint64_t>(usec);
    return 0;
}

int parse_signal(std::string_view text, int *ret_sig) noexcept {
    uint64_t number;
    if (parse_unsigned(text, INT_MAX, &number) == 0) {
        if (number < 1 || number > static_cast<uint64_t>(SIGRTMAX)) return -EINVAL;
        *ret_sig = static_cast<int>(number);
        return 0;
    }
    if (text.size() > 3 && equal_ignoring_case(text.substr(0, 3), "SIG")) text.remove_prefix(3);
    for (int sig = 1; sig < SIGRTMIN; sig++) {
        const char *name = sigabbrev_np(sig);
        if (name && equal_ignoring_case(text, name)) {
            *ret_sig = sig;
            return 0;
        }
    }
    return -EINVAL;
}

const char *signal_name(int sig) noexcept {
    return sig > 0 && sig < SIGRTMIN ? sigabbrev_np(sig) : nullptr;
}

int parse_mode(std::string_view text, mode_t *ret_mode) noexcept {
    if (text.empty() || text.size() > 4) return -EINVAL;
    mode_t mode = 0;
    for (char c : text) {
        if (c < '0' || c > '7') return -EINVAL;
        mode = static_cast<mode_t>(mode * 8 + static_cast<mode_t>(c - '0'));
    }
    if (mode > 0777) return -EINVAL;
    *ret_mode = mode;
    return 0;
}

int parse_fd_mapping(std::string_view text, IpcbSpawnFd *ret_fd) noexcept {
    std::string_view child, parent;
    uint64_t c, p;
    if (!split(text, '=', &child, &parent) || parse_unsigned(child, INT_MAX, &c) < 0 ||
        parse_unsigned(parent, INT_MAX, &p) < 0)
        return -EINVAL;
    *ret_fd = IpcbSpawnFd{static_cast<int>(c), static_cast<int>(p)};
    return 0;
}

int parse_rlimit(std::string_view text, IpcbSpawnRlimit *ret_rlimit) noexcept {
    std::string_view name, limits, soft_text, hard_text;
    if (!split(text, '=', &name, &limits)) return -EINVAL;
    if (name.size() > 7 && equal_ignoring_case(name.substr(0, 7), "RLIMIT_")) name.remove_prefix(7);
    const RlimitName *found = nullptr;
    for (const RlimitName &n : rlimit_names)
        if (equal_ignoring_case(name, n.name)) found = &n;
    if (!found) return -EINVAL;
    if (!split(limits, ':', &soft_text, &hard_text)) soft_text = hard_text = limits;
    rlim_t soft, hard;
    if (parse_rlimit_value(soft_text, &soft) < 0 || parse_rlimit_value(hard_text, &hard) < 0 ||
        soft > hard)
        return -EINVAL;
    *ret_rlimit = IpcbSpawnRlimit{found->resource, {soft, hard}};
    return 0;
}

}  // namespace ipcbarrier::run
