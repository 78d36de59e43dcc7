/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* bench-barrier: what one round trip through the barrier costs, next to the
 * least that the same resources allow.
 *
 * Five patterns, each between a parent and its fork()ed child:
 *
 *   ping-pong        the parent does place() + wait_next(), the child
 *                    wait_next() + place(), alternating.
 *   symmetric        both sides do place_and_sync() in every round.
 *   floor-ping-pong  the floor of ping-pong, written by hand without the
 *                    library: what a barrier holds (two non-blocking
 *                    eventfds, one per direction, and a pipe of which each
 *                    side keeps one end), used the cheapest way that still
 *                    notices the peer's death. A wait is one poll() of my
 *                    eventfd (POLLIN) and my pipe end (hang-up, error), then
 *                    one read() of the eventfd; the sides alternate as in
 *                    ping-pong.
 *   floor-symmetric  the floor of symmetric, on the same resources: each side
 *                    writes its point, then waits as above until the other's
 *                    point has arrived. Like the barrier it counts what it
 *                    read, so a point that came early (read together with the
 *                    one before) needs no wait in the next round.
 *   raw              two blocking eventfds; the parent writes one and reads
 *                    the other, the child reads and writes back: the round
 *                    trip with nothing around it. No barrier can get there,
 *                    since a blocking read() cannot watch for the peer's
 *                    death; it shows what that watching costs.
 *
 * Parent and child are pinned to the same CPU (set before fork(), so the
 * child inherits it): a side that waits must then really sleep and be
 * woken, and no side can run ahead on a second CPU. Each measurement forks
 * a new child, runs some warm-up rounds and then times the given number of
 * rounds in the parent. The repetitions are interleaved across the
 * patterns (in a rotating order), so that a noisy moment hits all of them
 * alike, and the median per pattern is reported, with the fastest and
 * slowest measurement, the parent's context switches per round (voluntary
 * and involuntary) and the share of the CPU that parent and child got: well
 * below 1, other work ran on that CPU too and the numbers are not to be
 * trusted. Then come the ratios: each barrier pattern over its floor, with
 * the goal (at most 3% above it), and each pattern over raw; as the ratio
 * of the medians, and as the median, lowest and highest of the ratios
 * within one repetition. Against the noise of a shared machine, many short
 * repetitions help more than a few long ones: a burst of other work then
 * spoils single measurements, which the medians leave out.
 *
 * "--only PATTERN" runs a single pattern, e.g. under strace or perf to count
 * its syscalls per round (tools/bench/syscalls.sh does that).
 *
 * The goals are reported, not enforced: a loaded machine can miss them. The
 * exit status is non-zero only if a measurement itself failed. */

#include <ipcbarrier/barrier.hh>
#include <ipcbarrier/eventfd-util.hh>
#include <ipcbarrier/fd-util.hh>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.hh"

namespace {

using bench::cpu_ns;
using bench::median;
using bench::now_ns;
using bench::parse_u64;
using bench::pin_to_one_cpu;

enum class Pattern : unsigned { raw, floor_ping_pong, ping_pong, floor_symmetric, symmetric };
constexpr std::array<Pattern, 5> ALL_PATTERNS = {Pattern::raw, Pattern::floor_ping_pong,
                                                 Pattern::ping_pong, Pattern::floor_symmetric,
                                                 Pattern::symmetric};

constexpr uint64_t DEFAULT_ROUNDS = 20000;
constexpr unsigned DEFAULT_REPS = 7;
constexpr uint64_t MAX_WARMUP = 1000;
/* Below this share of the CPU, other work competed with the measurement. */
constexpr double MIN_CPU_SHARE = 0.90;

/* The goal for each barrier pattern, as a ratio to its floor. */
constexpr double GOAL_VS_FLOOR = 1.03;

const char *pattern_name(Pattern p) {
    switch (p) {
        case Pattern::raw:
            return "raw";
        case Pattern::floor_ping_pong:
            return "floor-ping-pong";
        case Pattern::floor_symmetric:
            return "floor-symmetric";
        case Pattern::ping_pong:
            return "ping-pong";
        case Pattern::symmetric:
            return "symmetric";
    }
    return "?";
}

std::optional<Pattern> pattern_from_name(std::string_view s) {
    for (Pattern p : ALL_PATTERNS)
        if (s == pattern_name(p)) return p;
    if (s == "pingpong") return Pattern::ping_pong;
    if (s == "floor-pingpong") return Pattern::floor_ping_pong;
    return std::nullopt;
}

struct Options {
    uint64_t rounds = DEFAULT_ROUNDS;
    unsigned reps = DEFAULT_REPS;
    std::optional<uint64_t> warmup; /* default: rounds / 10, at most MAX_WARMUP */
    std::optional<Pattern> only;
    std::optional<unsigned> cpu;
};

/* One timed run of one pattern. */
struct Sample {
    uint64_t ns = 0;
    long parent_switches = 0; /* context switches of the parent, both kinds */
    /* The CPU time of parent and child over the wall-clock time of the
     * whole run: about 1 on an idle CPU, less when other work shared it. */
    double cpu_share = 0;
};

long context_switches() {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0) return 0;
    return ru.ru_nvcsw + ru.ru_nivcsw;
}

uint64_t self_cpu_ns() {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0) return 0;
    return cpu_ns(ru);
}

/* Wall-clock and CPU time of one whole run, fork() to reaping. */
class RunClock {
  public:
    RunClock() : wall_(now_ns()), cpu_(self_cpu_ns()) {}
    [[nodiscard]] double cpu_share(uint64_t child_cpu_ns) const {
        uint64_t wall = now_ns() - wall_;
        uint64_t cpu = self_cpu_ns() - cpu_ + child_cpu_ns;
        return wall > 0 ? static_cast<double>(cpu) / static_cast<double>(wall) : 0;
    }

  private:
    uint64_t wall_, cpu_;
};

/* ---- the child side: async-signal-safe only, ends in _exit() ---- */

[[noreturn]] void child_fail(const char *what) {
    static constexpr char prefix[] = "bench-barrier: child: ";
    (void)!write(STDERR_FILENO, prefix, sizeof prefix - 1);
    (void)!write(STDERR_FILENO, what, strlen(what));
    (void)!write(STDERR_FILENO, "\n", 1);
    _exit(EXIT_FAILURE);
}

/* The parent may die without a word (killed by a timeout, say): the raw
 * pattern would then block forever, so make the kernel end the child. */
void child_follow_parent(pid_t parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail("PR_SET_PDEATHSIG failed");
    if (getppid() != parent) _exit(EXIT_FAILURE);
}

bool raw_write(int fd) {
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(fd, &one, sizeof one);
        if (n == static_cast<ssize_t>(sizeof one)) return true;
        if (n >= 0 || errno != EINTR) return false;
    }
}

/* Reads one eventfd value; false on error, or when it is not exactly one
 * (the peer's way of saying that it failed). */
bool raw_read(int fd) {
    for (;;) {
        uint64_t value;
        ssize_t n = read(fd, &value, sizeof value);
        if (n == static_cast<ssize_t>(sizeof value)) return value == 1;
        if (n >= 0 || errno != EINTR) return false;
    }
}

[[noreturn]] void child_raw(int from_parent, int to_parent, uint64_t total) {
    for (uint64_t i = 0; i < total; i++) {
        if (!raw_read(from_parent)) child_fail("raw: read failed");
        if (!raw_write(to_parent)) child_fail("raw: write failed");
    }
    _exit(EXIT_SUCCESS);
}

/* One side of a floor pattern: the eventfd it reads, the one it writes, the
 * pipe end it keeps, and how many points it placed minus how many of the
 * peer's it consumed (the barrier's counter, without the abortion states).
 * Both sides use these functions, the child too: async-signal-safe only. */
struct FloorSide {
    int mine;
    int theirs;
    int pipe_end;
    int64_t ahead = 0;
};

bool floor_place(FloorSide *s) {
    if (!raw_write(s->theirs)) return false;
    s->ahead += 1;
    return true;
}

/* Waits until s->ahead <= limit: poll() my eventfd and my pipe end, then
 * read() the eventfd. False when the peer is gone or a call failed. */
bool floor_wait(FloorSide *s, int64_t limit) {
    while (s->ahead > limit) {
        struct pollfd pfd[2] = {
            {.fd = s->mine, .events = POLLIN, .revents = 0},
            /* Hang-up and error are reported unasked; asking for nothing
             * else keeps the child's writable end from waking it. */
            {.fd = s->pipe_end, .events = 0, .revents = 0},
        };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        /* What the peer placed before going away still counts, so a
         * readable eventfd goes first. */
        if (!(pfd[0].revents & POLLIN)) return false;
        uint64_t value;
        ssize_t n = read(s->mine, &value, sizeof value);
        if (n == static_cast<ssize_t>(sizeof value)) {
            s->ahead -= static_cast<int64_t>(value);
            continue;
        }
        if (n >= 0 || (errno != EINTR && errno != EAGAIN)) return false;
    }
    return true;
}

/* wait_next(): until the peer placed one more point. */
bool floor_wait_next(FloorSide *s) {
    return floor_wait(s, s->ahead - 1);
}

/* sync(): until the peer placed as many points as we did. */
bool floor_sync(FloorSide *s) {
    return floor_wait(s, 0);
}

enum class Side { parent, child };

/* One round of a floor pattern; in ping-pong the parent places first and
 * the child waits first. */
bool floor_round(FloorSide *s, Pattern p, Side side) {
    if (p == Pattern::floor_symmetric) return floor_place(s) && floor_sync(s);
    if (side == Side::parent) return floor_place(s) && floor_wait_next(s);
    return floor_wait_next(s) && floor_place(s);
}

[[noreturn]] void child_floor(FloorSide s, Pattern p, uint64_t total) {
    for (uint64_t i = 0; i < total; i++)
        if (!floor_round(&s, p, Side::child))
            child_fail("floor: the round trip failed or the parent is gone");
    _exit(EXIT_SUCCESS);
}

[[noreturn]] void child_barrier(ipcbarrier::Barrier &b, Pattern p, uint64_t total) {
    if (b.set_role(ipcbarrier::BarrierRole::child) < 0) child_fail("set_role failed");
    for (uint64_t i = 0; i < total; i++) {
        if (p == Pattern::ping_pong) {
            if (!b.wait_next()) child_fail("ping-pong: wait_next() failed");
            if (!b.place()) child_fail("ping-pong: place() failed");
        } else {
            if (!b.place_and_sync()) child_fail("symmetric: place_and_sync() failed");
        }
    }
    _exit(EXIT_SUCCESS);
}

/* ---- the parent side ---- */

/* Set by SIGCHLD, so that a parent blocked in the raw pattern's read() learns
 * that its child died instead of blocking forever. */
volatile sig_atomic_t child_exited = 0;

void on_sigchld(int) {
    child_exited = 1;
}

int install_sigchld_handler() {
    struct sigaction sa = {};
    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP; /* no SA_RESTART: interrupt the read() */
    if (sigaction(SIGCHLD, &sa, nullptr) < 0) return -errno;
    return 0;
}

/* A raw read in the parent: a signal interrupts it only to check whether the
 * child is still there. */
bool parent_raw_read(int fd) {
    for (;;) {
        uint64_t value;
        ssize_t n = read(fd, &value, sizeof value);
        if (n == static_cast<ssize_t>(sizeof value)) return value == 1;
        if (n >= 0 || errno != EINTR || child_exited) return false;
    }
}

/* Reaps the child and stores the CPU time it used; true if it exited with
 * status 0. */
bool reap(pid_t pid, uint64_t *ret_cpu_ns) {
    int status;
    struct rusage ru;
    for (;;) {
        if (wait4(pid, &status, 0, &ru) == pid) break;
        if (errno != EINTR) {
            fprintf(stderr, "bench-barrier: wait4: %s\n", strerror(errno));
            return false;
        }
    }
    *ret_cpu_ns = cpu_ns(ru);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    if (WIFSIGNALED(status))
        fprintf(stderr, "bench-barrier: child killed by signal %d\n", WTERMSIG(status));
    else
        fprintf(stderr, "bench-barrier: child exited with status %d\n", WEXITSTATUS(status));
    return false;
}

/* One measurement: forks a child that runs child_main() (which must not
 * return), lets the parent prepare with setup(), times round() over the
 * rounds after warmup, lets finish(ok) release a child that may still be
 * waiting, and reaps the child. */
template <class ChildMain, class Setup, class Round, class Finish>
bool measure_pair(uint64_t warmup, uint64_t rounds, ChildMain child_main, Setup setup, Round round,
                  Finish finish, Sample *ret) {
    pid_t parent = getpid();
    child_exited = 0;
    fflush(nullptr);
    RunClock clock;
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bench-barrier: fork: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        child_follow_parent(parent);
        child_main();
    }

    bool ok = setup();
    uint64_t start = 0;
    long switches = 0;
    for (uint64_t i = 0; ok && i < warmup + rounds; i++) {
        if (i == warmup) {
            switches = context_switches();
            start = now_ns();
        }
        ok = round();
    }
    uint64_t end = now_ns();
    switches = context_switches() - switches;

    finish(ok);
    uint64_t child_cpu = 0;
    if (!reap(pid, &child_cpu)) ok = false;
    if (ok) *ret = Sample{end - start, switches, clock.cpu_share(child_cpu)};
    return ok;
}

bool measure_raw(uint64_t warmup, uint64_t rounds, Sample *ret) {
    ipcbarrier::UniqueFd to_child, from_child;
    int r = ipcbarrier::eventfd_new(ipcbarrier::EventfdMode::blocking, &to_child);
    if (r >= 0) r = ipcbarrier::eventfd_new(ipcbarrier::EventfdMode::blocking, &from_child);
    if (r < 0) {
        fprintf(stderr, "bench-barrier: eventfd: %s\n", strerror(-r));
        return false;
    }

    return measure_pair(
        warmup, rounds, [&] { child_raw(to_child.get(), from_child.get(), warmup + rounds); },
        [] { return true; },
        [&] { return raw_write(to_child.get()) && parent_raw_read(from_child.get()); },
        [&](bool ok) {
            if (ok) return;
            fprintf(stderr, "bench-barrier: raw: round trip failed\n");
            /* Tell a child that is still waiting, in case it is. */
            uint64_t stop = 2;
            (void)!write(to_child.get(), &stop, sizeof stop);
        },
        ret);
}

/* The floor's resources, made with plain syscalls as the barrier makes its
 * own: two eventfds and a pipe, non-blocking and close-on-exec. */
struct FloorFds {
    ipcbarrier::UniqueFd to_child, to_parent;
    ipcbarrier::UniqueFd pipe_read, pipe_write;
};

int floor_fds_new(FloorFds *ret) {
    FloorFds fds;
    fds.to_child.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fds.to_child) return -errno;
    fds.to_parent.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fds.to_parent) return -errno;
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) < 0) return -errno;
    fds.pipe_read.reset(pipe_fds[0]);
    fds.pipe_write.reset(pipe_fds[1]);
    *ret = std::move(fds);
    return 0;
}

bool measure_floor(Pattern p, uint64_t warmup, uint64_t rounds, Sample *ret) {
    FloorFds fds;
    int r = floor_fds_new(&fds);
    if (r < 0) {
        fprintf(stderr, "bench-barrier: %s: eventfd or pipe: %s\n", pattern_name(p), strerror(-r));
        return false;
    }
    /* The parent keeps the read end, the child the write end, as a barrier
     * does once the roles are set. */
    FloorSide parent{fds.to_parent.get(), fds.to_child.get(), fds.pipe_read.get()};

    return measure_pair(
        warmup, rounds,
        [&] {
            fds.pipe_read.reset();
            child_floor(FloorSide{fds.to_child.get(), fds.to_parent.get(), fds.pipe_write.get()}, p,
                        warmup + rounds);
        },
        [&] {
            fds.pipe_write.reset();
            return true;
        },
        [&] { return floor_round(&parent, p, Side::parent); },
        [&](bool ok) {
            if (!ok) fprintf(stderr, "bench-barrier: %s: round trip failed\n", pattern_name(p));
            /* Closing our pipe end tells a child that is still waiting that
             * we are gone. */
            fds.pipe_read.reset();
        },
        ret);
}

bool measure_barrier(Pattern p, uint64_t warmup, uint64_t rounds, Sample *ret) {
    ipcbarrier::Barrier b;
    int r = ipcbarrier::Barrier::create(&b);
    if (r < 0) {
        fprintf(stderr, "bench-barrier: creating the barrier: %s\n", strerror(-r));
        return false;
    }

    return measure_pair(
        warmup, rounds, [&] { child_barrier(b, p, warmup + rounds); },
        [&] { return b.set_role(ipcbarrier::BarrierRole::parent) >= 0; },
        [&] { return p == Pattern::ping_pong ? b.place() && b.wait_next() : b.place_and_sync(); },
        [&](bool ok) {
            if (!ok) {
                fprintf(stderr, "bench-barrier: %s: the barrier failed or was aborted\n",
                        pattern_name(p));
                b.abort();
            }
            /* Closing our end lets a child that is still waiting see the
             * abortion. */
            b.destroy();
        },
        ret);
}

bool measure(Pattern p, uint64_t warmup, uint64_t rounds, Sample *ret) {
    switch (p) {
        case Pattern::raw:
            return measure_raw(warmup, rounds, ret);
        case Pattern::floor_ping_pong:
        case Pattern::floor_symmetric:
            return measure_floor(p, warmup, rounds, ret);
        case Pattern::ping_pong:
        case Pattern::symmetric:
            return measure_barrier(p, warmup, rounds, ret);
    }
    return false;
}

/* ---- setup, options and the report ---- */

void usage(FILE *f) {
    fprintf(f,
            "Usage: bench-barrier [OPTIONS]\n"
            "\n"
            "Times round trips through the ipcbarrier barrier (ping-pong and symmetric)\n"
            "against their floors (the same eventfds and pipe, polled by hand) and a\n"
            "raw blocking eventfd ping-pong, parent and child on one CPU.\n"
            "\n"
            "  --rounds N        timed rounds per measurement (default %" PRIu64
            ", or $BENCH_BARRIER_ROUNDS)\n"
            "  --reps N          measurements per pattern; the median is reported\n"
            "                    (default %u, or $BENCH_BARRIER_REPS)\n"
            "  --warmup N        untimed rounds before each measurement\n"
            "                    (default rounds/10, at most %" PRIu64
            ")\n"
            "  --only PATTERN    run only one of ping-pong, symmetric, floor-ping-pong,\n"
            "                    floor-symmetric and raw\n"
            "  --cpu N           the CPU to pin both processes to (default: the current one)\n"
            "  --help            show this help\n"
            "\n"
            "Exits non-zero only if a measurement fails, never for a missed goal.\n",
            DEFAULT_ROUNDS, DEFAULT_REPS, MAX_WARMUP);
}

/* Parses argv and the environment into *o; returns -1 on error, 1 if the
 * program should exit successfully (--help), 0 to go on. */
int parse_options(int argc, char **argv, Options *o) {
    uint64_t v;
    if (const char *e = getenv("BENCH_BARRIER_ROUNDS"); e && *e) {
        if (!parse_u64(e, UINT32_MAX, &v)) {
            fprintf(stderr, "bench-barrier: invalid $BENCH_BARRIER_ROUNDS: %s\n", e);
            return -1;
        }
        o->rounds = v;
    }
    if (const char *e = getenv("BENCH_BARRIER_REPS"); e && *e) {
        if (!parse_u64(e, 1000, &v) || v == 0) {
            fprintf(stderr, "bench-barrier: invalid $BENCH_BARRIER_REPS: %s\n", e);
            return -1;
        }
        o->reps = static_cast<unsigned>(v);
    }

    /* Every option but --help, which returns, takes one value. */
    for (int i = 1; i < argc; i += 2) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            usage(stdout);
            return 1;
        }
        const char *value = i + 1 < argc ? argv[i + 1] : nullptr;
        bool good;
        if (arg == "--rounds") {
            good = parse_u64(value, UINT32_MAX, &v);
            if (good) o->rounds = v;
        } else if (arg == "--reps") {
            good = parse_u64(value, 1000, &v) && v > 0;
            if (good) o->reps = static_cast<unsigned>(v);
        } else if (arg == "--warmup") {
            good = parse_u64(value, UINT32_MAX, &v);
            if (good) o->warmup = v;
        } else if (arg == "--cpu") {
            good = parse_u64(value, CPU_SETSIZE - 1, &v);
            if (good) o->cpu = static_cast<unsigned>(v);
        } else if (arg == "--only") {
            auto p = value ? pattern_from_name(value) : std::nullopt;
            good = p.has_value();
            if (good) o->only = p;
        } else {
            fprintf(stderr, "bench-barrier: unknown argument: %s\n", argv[i]);
            usage(stderr);
            return -1;
        }
        if (!good) {
            fprintf(stderr, "bench-barrier: %s needs a valid value, got: %s\n", argv[i],
                    value ? value : "(nothing)");
            return -1;
        }
    }
    if (o->rounds == 0 && !o->only) {
        fprintf(stderr, "bench-barrier: --rounds 0 only makes sense with --only\n");
        return -1;
    }
    return 0;
}

/* A ratio of two patterns' times in the report: a barrier pattern over its
 * floor, with the goal, or a pattern over raw. */
struct Ratio {
    Pattern num, den;
    std::optional<double> goal;
};

constexpr std::array<Ratio, 6> RATIOS = {{
    {Pattern::ping_pong, Pattern::floor_ping_pong, GOAL_VS_FLOOR},
    {Pattern::symmetric, Pattern::floor_symmetric, GOAL_VS_FLOOR},
    {Pattern::ping_pong, Pattern::raw, std::nullopt},
    {Pattern::symmetric, Pattern::raw, std::nullopt},
    {Pattern::floor_ping_pong, Pattern::raw, std::nullopt},
    {Pattern::floor_symmetric, Pattern::raw, std::nullopt},
}};

/* Prints the ratio of the medians (held against the goal), and the median,
 * lowest and highest of the ratios within one repetition, where both
 * patterns ran close together in time and so met much the same load. */
void report_ratio(const Ratio &ratio, double num_median, double den_median,
                  const std::vector<Sample> &num, const std::vector<Sample> &den) {
    std::vector<double> per_rep;
    for (size_t rep = 0; rep < num.size() && rep < den.size(); rep++)
        per_rep.push_back(static_cast<double>(num[rep].ns) / static_cast<double>(den[rep].ns));
    double value = num_median / den_median;
    char name[64];
    snprintf(name, sizeof name, "%s/%s", pattern_name(ratio.num), pattern_name(ratio.den));
    printf("%-26s %7.3f %7.3f %7.3f %7.3f", name, value, median(per_rep),
           *std::min_element(per_rep.begin(), per_rep.end()),
           *std::max_element(per_rep.begin(), per_rep.end()));
    if (ratio.goal) printf("   <= %.2f: %s", *ratio.goal, value <= *ratio.goal ? "met" : "NOT MET");
    printf("\n");
}

}  // namespace

int main(int argc, char **argv) {
    Options o;
    int r = parse_options(argc, argv, &o);
    if (r != 0) return r > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    uint64_t warmup = o.warmup ? *o.warmup : std::min(o.rounds / 10, MAX_WARMUP);

    std::vector<Pattern> patterns;
    if (o.only)
        patterns.push_back(*o.only);
    else
        patterns.assign(ALL_PATTERNS.begin(), ALL_PATTERNS.end());

    unsigned cpu = 0;
    r = pin_to_one_cpu(o.cpu, &cpu);
    if (r < 0) {
        fprintf(stderr, "bench-barrier: cannot pin to %s CPU: %s\n", o.cpu ? "the given" : "one",
                strerror(-r));
        return EXIT_FAILURE;
    }
    r = install_sigchld_handler();
    if (r < 0) {
        fprintf(stderr, "bench-barrier: sigaction: %s\n", strerror(-r));
        return EXIT_FAILURE;
    }

    printf("bench-barrier: parent and child pinned to CPU %u; %" PRIu64
           " rounds x %u reps (+%" PRIu64 " warm-up rounds each)\n",
           cpu, o.rounds, o.reps, warmup);
    fflush(stdout);

    /* samples[p][rep] for the pattern p, as an index. */
    std::array<std::vector<Sample>, ALL_PATTERNS.size()> samples;
    for (unsigned rep = 0; rep < o.reps; rep++) {
        for (size_t j = 0; j < patterns.size(); j++) {
            /* Rotate the order, so no pattern always runs right after fork()
             * of the same other one. */
            size_t k = (j + rep) % patterns.size();
            Sample s;
            if (!measure(patterns[k], warmup, o.rounds, &s)) {
                fprintf(stderr, "bench-barrier: %s: measurement failed\n",
                        pattern_name(patterns[k]));
                return EXIT_FAILURE;
            }
            samples[static_cast<unsigned>(patterns[k])].push_back(s);
        }
    }

    if (o.rounds == 0) {
        printf("no rounds: nothing timed\n");
        return EXIT_SUCCESS;
    }

    printf("\n%-15s %8s %10s %10s %10s %17s %10s\n", "pattern", "rounds", "ns/round", "min", "max",
           "parent csw/round", "cpu share");
    std::array<std::optional<double>, ALL_PATTERNS.size()> medians;
    double lowest_share = 1;
    for (Pattern p : patterns) {
        std::vector<double> ns, switches, shares;
        for (const Sample &s : samples[static_cast<unsigned>(p)]) {
            ns.push_back(static_cast<double>(s.ns) / static_cast<double>(o.rounds));
            switches.push_back(static_cast<double>(s.parent_switches) /
                               static_cast<double>(o.rounds));
            shares.push_back(s.cpu_share);
        }
        double med = median(ns);
        medians[static_cast<unsigned>(p)] = med;
        double share = median(shares);
        lowest_share = std::min(lowest_share, share);
        printf("%-15s %8" PRIu64 " %10.1f %10.1f %10.1f %17.2f %10.2f\n", pattern_name(p), o.rounds,
               med, *std::min_element(ns.begin(), ns.end()),
               *std::max_element(ns.begin(), ns.end()), median(switches), share);
    }
    if (lowest_share < MIN_CPU_SHARE)
        printf(
            "\nwarning: parent and child got only %.0f%% of CPU %u, other work shared it:\n"
            "the times include that work, and the ratios below are distorted by it.\n"
            "Run on an idle machine for numbers to compare with the goals.\n",
            lowest_share * 100, cpu);

    bool header = false, goals = false;
    for (const Ratio &ratio : RATIOS) {
        unsigned num = static_cast<unsigned>(ratio.num), den = static_cast<unsigned>(ratio.den);
        if (!medians[num] || !medians[den]) continue;
        if (!header) {
            printf("\n%-26s %7s %7s %7s %7s   %s\n", "ratio", "medians", "rep med", "rep min",
                   "rep max", "goal");
            header = true;
        }
        report_ratio(ratio, *medians[num], *medians[den], samples[num], samples[den]);
        goals = goals || ratio.goal;
    }
    if (header)
        printf(
            "(medians: the ratio of the medians above; rep: the ratios within each repetition)\n");
    if (goals) printf("(goals are reported only; a missed goal does not fail the benchmark)\n");
    return EXIT_SUCCESS;
}
