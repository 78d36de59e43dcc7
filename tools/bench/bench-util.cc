/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bench-util.hh"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include <sched.h>
#include <time.h>

namespace bench {

uint64_t now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t cpu_ns(const struct rusage &ru) {
    auto ns = [](const struct timeval &tv) {
        return static_cast<uint64_t>(tv.tv_sec) * 1000000000u +
               static_cast<uint64_t>(tv.tv_usec) * 1000u;
    };
    return ns(ru.ru_utime) + ns(ru.ru_stime);
}

int pin_to_one_cpu(std::optional<unsigned> wanted, unsigned *ret_cpu) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) < 0) return -errno;

    unsigned cpu = 0;
    if (wanted) {
        if (*wanted >= CPU_SETSIZE || !CPU_ISSET(*wanted, &allowed)) return -EINVAL;
        cpu = *wanted;
    } else {
        /* Where we run now, if allowed, else the first allowed CPU. */
        int current = sched_getcpu();
        if (current >= 0 && current < CPU_SETSIZE && CPU_ISSET(current, &allowed)) {
            cpu = static_cast<unsigned>(current);
        } else {
            while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &allowed)) cpu++;
            if (cpu == CPU_SETSIZE) return -EINVAL;
        }
    }

    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    /* Before any child exists: every child inherits it. */
    if (sched_setaffinity(0, sizeof one, &one) < 0) return -errno;
    *ret_cpu = cpu;
    return 0;
}

bool parse_u64(const char *s, uint64_t max, uint64_t *ret) {
    if (!s || *s < '0' || *s > '9') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max) return false;
    *ret = v;
    return true;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace bench
