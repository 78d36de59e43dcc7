/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* bench-spawn: what starting a program costs on each of the library's
 * paths, next to posix_spawn() and a plain fork() + execve(), in a parent
 * of a given size.
 *
 * Five methods, each starting /bin/true and waiting for it to end:
 *
 *   posix_spawn       glibc's posix_spawn(), then waitpid().
 *   fork_exec         fork(); the child does the setup below by hand and
 *                     execve()s (or _exit(127)s); then waitpid().
 *   spawn_vfork       ipcb_spawn() with IPCB_METHOD_VFORK,
 *   spawn_trampoline  ... IPCB_METHOD_TRAMPOLINE and
 *   spawn_fork        ... IPCB_METHOD_FORK, each followed by
 *                     ipcb_process_wait().
 *
 * Every method does the same setup: stdin, stdout and stderr become one
 * /dev/null that the parent opened, every other fd is closed, every signal
 * disposition goes back to the default and the mask is emptied; the
 * environment is the parent's and there is no PATH search. posix_spawn()
 * gets its file actions and attributes made anew for every start, as the
 * library compiles its plan anew.
 *
 * --rss-mib N first touches N MiB of heap, one write per page, with
 * transparent huge pages refused for it: a service manager's heap is made
 * of small pages, and fork() must copy an entry for each of them, which is
 * what makes its cost grow with the parent (the vfork-style methods share
 * the parent's memory and copy nothing).
 *
 * The parent and its children are pinned to one CPU (unless --no-pin): a
 * start then costs what it costs without help from a second CPU, and the
 * CPU share below tells whether other work ran there. The library's fork
 * path, whose parent and child meet at the barrier, switches between them
 * there; with --no-pin they may run at the same time on two CPUs, as they
 * would in a service manager on an idle machine. Each measurement runs
 * a few untimed starts and then times the given number of them. The
 * repetitions are interleaved across the methods (in a rotating order), so
 * that a noisy moment hits all of them alike, and the median per method is
 * reported, with the fastest and slowest measurement and the share of the
 * CPU that the parent and its children got: well below 1, other work ran on
 * that CPU too. First comes one line per method, "METHOD RSS_MIB
 * USEC_PER_SPAWN" (USEC_PER_SPAWN is "n/a" for a path that this build of
 * the library does not have yet), which tools/bench/plot-spawn reads; then
 * the details and the ratios the goals are stated in, as the ratio of the
 * medians and as the median, lowest and highest of the ratios within one
 * repetition.
 *
 * The goals are reported, not enforced: a loaded machine can miss them. The
 * exit status is non-zero only if a start failed. */

#include <ipcbarrier/fd-util.hh>
#include <ipcbarrier/spawn.hh>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cinttypes>
#include <cstddef>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#include "bench-util.hh"

namespace {

using bench::median;
using bench::now_ns;
using bench::parse_u64;
using bench::pin_to_one_cpu;

enum class Method : unsigned { posix_spawn, fork_exec, spawn_vfork, spawn_trampoline, spawn_fork };
constexpr std::array<Method, 5> ALL_METHODS = {Method::posix_spawn, Method::fork_exec,
                                               Method::spawn_vfork, Method::spawn_trampoline,
                                               Method::spawn_fork};

constexpr uint64_t DEFAULT_ITERATIONS = 100;
constexpr unsigned DEFAULT_REPS = 7;
constexpr uint64_t MAX_WARMUP = 5;
constexpr uint64_t MAX_RSS_MIB = 1 << 20;
/* Below this share of the CPU, other work competed with the measurement. */
constexpr double MIN_CPU_SHARE = 0.90;

constexpr const char *PROGRAM = "/bin/true";

const char *method_name(Method m) {
    switch (m) {
        case Method::posix_spawn:
            return "posix_spawn";
        case Method::fork_exec:
            return "fork_exec";
        case Method::spawn_vfork:
            return "spawn_vfork";
        case Method::spawn_trampoline:
            return "spawn_trampoline";
        case Method::spawn_fork:
            return "spawn_fork";
    }
    return "?";
}

std::optional<Method> method_from_name(std::string_view s) {
    for (Method m : ALL_METHODS)
        if (s == method_name(m)) return m;
    return std::nullopt;
}

/* The methods whose cost grows with the parent's memory. */
bool method_copies_parent(Method m) {
    return m == Method::fork_exec || m == Method::spawn_fork;
}

struct Options {
    uint64_t rss_mib = 0;
    uint64_t iterations = DEFAULT_ITERATIONS;
    std::optional<uint64_t> fork_iterations; /* default: iterations */
    unsigned reps = DEFAULT_REPS;
    std::optional<Method> only;
    std::optional<unsigned> cpu;
    bool pin = true;
};

/* What every start gets. */
struct Target {
    const char *const *argv;
    int null_fd; /* /dev/null, read-write, close-on-exec, at 3 or above */
};

enum class Outcome { ok, unsupported, failed };

/* ---- the methods ---- */

/* Reaps pid and checks that it exited with status 0. */
Outcome reap(Method m, pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno == EINTR) continue;
        fprintf(stderr, "bench-spawn: %s: waitpid: %s\n", method_name(m), strerror(errno));
        return Outcome::failed;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Outcome::ok;
    if (WIFSIGNALED(status))
        fprintf(stderr, "bench-spawn: %s: %s killed by signal %d\n", method_name(m), PROGRAM,
                WTERMSIG(status));
    else
        fprintf(stderr, "bench-spawn: %s: %s exited with status %d\n", method_name(m), PROGRAM,
                WEXITSTATUS(status));
    return Outcome::failed;
}

/* execve() takes its arrays without const, for historical reasons only. */
char *const *exec_array(const char *const *a) {
    return const_cast<char *const *>(a);
}

Outcome start_posix_spawn(const Target &t) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int r = posix_spawn_file_actions_init(&actions);
    if (r != 0) {
        fprintf(stderr, "bench-spawn: posix_spawn_file_actions_init: %s\n", strerror(r));
        return Outcome::failed;
    }
    r = posix_spawnattr_init(&attr);
    if (r != 0) {
        fprintf(stderr, "bench-spawn: posix_spawnattr_init: %s\n", strerror(r));
        (void)posix_spawn_file_actions_destroy(&actions);
        return Outcome::failed;
    }

    for (int fd = STDIN_FILENO; r == 0 && fd <= STDERR_FILENO; fd++)
        r = posix_spawn_file_actions_adddup2(&actions, t.null_fd, fd);
    if (r == 0) r = posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if (r == 0) r = posix_spawnattr_setsigmask(&attr, &none);
    if (r == 0) r = posix_spawnattr_setsigdefault(&attr, &all);
    if (r == 0) r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    pid_t pid = 0;
    if (r == 0) r = posix_spawn(&pid, PROGRAM, &actions, &attr, exec_array(t.argv), environ);
    (void)posix_spawnattr_destroy(&attr);
    (void)posix_spawn_file_actions_destroy(&actions);
    if (r != 0) {
        fprintf(stderr, "bench-spawn: posix_spawn: %s\n", strerror(r));
        return Outcome::failed;
    }
    return reap(Method::posix_spawn, pid);
}

/* The fork_exec child: the same setup as the others, by hand, with
 * async-signal-safe calls only. */
[[noreturn]] void fork_exec_child(const Target &t) {
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
        if (dup2(t.null_fd, fd) < 0) _exit(127);
    if (close_range(STDERR_FILENO + 1, ~0U, 0) < 0) _exit(127);
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction old;
        /* glibc refuses the signals it keeps for itself. */
        if (sigaction(sig, nullptr, &old) < 0) continue;
        if (old.sa_handler != SIG_DFL && sigaction(sig, &dfl, nullptr) < 0) _exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, nullptr) < 0) _exit(127);
    execve(PROGRAM, exec_array(t.argv), environ);
    _exit(127);
}

Outcome start_fork_exec(const Target &t) {
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bench-spawn: fork: %s\n", strerror(errno));
        return Outcome::failed;
    }
    if (pid == 0) fork_exec_child(t);
    return reap(Method::fork_exec, pid);
}

Outcome start_library(Method m, const Target &t) {
    const IpcbSpawnMethod method = m == Method::spawn_vfork        ? IPCB_METHOD_VFORK
                                   : m == Method::spawn_trampoline ? IPCB_METHOD_TRAMPOLINE
                                                                   : IPCB_METHOD_FORK;
    const ipcbarrier::SpawnFd fds[] = {
        {STDIN_FILENO, t.null_fd}, {STDOUT_FILENO, t.null_fd}, {STDERR_FILENO, t.null_fd}};
    /* Closing every other fd and resetting the signals are the defaults. */
    const ipcbarrier::SpawnOptions o = {
        .argv = t.argv,
        .path = PROGRAM,
        .fds = fds,
        .n_fds = std::size(fds),
        .flags = IPCB_SPAWN_NO_PATH_SEARCH,
        .method = method,
    };

    ipcbarrier::Process p;
    ipcbarrier::SpawnError error = {};
    int r = ipcbarrier::Process::spawn(o, &p, &error);
    if (r == -EOPNOTSUPP && m == Method::spawn_trampoline && error.step == IPCB_STEP_PREPARE)
        return Outcome::unsupported;
    if (r < 0) {
        char message[128];
        (void)ipcb_spawn_error_format(&error, message, sizeof message);
        fprintf(stderr, "bench-spawn: %s: %s\n", method_name(m), message);
        if (m == Method::spawn_trampoline && error.step == IPCB_STEP_HELPER)
            fprintf(stderr,
                    "bench-spawn: the trampoline path starts the installed helper, or the one\n"
                    "$IPCBARRIER_EXEC_HELPER names (meson test --benchmark names the build\n"
                    "tree's)\n");
        return Outcome::failed;
    }

    siginfo_t info = {};
    r = p.wait(&info);
    if (r < 0) {
        fprintf(stderr, "bench-spawn: %s: ipcb_process_wait: %s\n", method_name(m), strerror(-r));
        return Outcome::failed;
    }
    if (info.si_code == CLD_EXITED && info.si_status == 0) return Outcome::ok;
    fprintf(stderr, "bench-spawn: %s: %s ended with si_code %d, status %d\n", method_name(m),
            PROGRAM, info.si_code, info.si_status);
    return Outcome::failed;
}

Outcome start(Method m, const Target &t) {
    switch (m) {
        case Method::posix_spawn:
            return start_posix_spawn(t);
        case Method::fork_exec:
            return start_fork_exec(t);
        case Method::spawn_vfork:
        case Method::spawn_trampoline:
        case Method::spawn_fork:
            return start_library(m, t);
    }
    return Outcome::failed;
}

/* ---- measuring ---- */

/* One timed run of one method. */
struct Sample {
    uint64_t ns = 0;
    /* The CPU time of the parent and its children over the wall-clock time
     * of the run: about 1 on an idle CPU, less when other work shared it. */
    double cpu_share = 0;
};

uint64_t cpu_ns(int who) {
    struct rusage ru;
    return getrusage(who, &ru) < 0 ? 0 : bench::cpu_ns(ru);
}

/* The CPU time of this process and of its reaped children. */
uint64_t family_cpu_ns() {
    return cpu_ns(RUSAGE_SELF) + cpu_ns(RUSAGE_CHILDREN);
}

Outcome measure(Method m, const Target &t, uint64_t warmup, uint64_t iterations, Sample *ret) {
    for (uint64_t i = 0; i < warmup; i++)
        if (Outcome o = start(m, t); o != Outcome::ok) return o;
    uint64_t cpu = family_cpu_ns();
    uint64_t begin = now_ns();
    for (uint64_t i = 0; i < iterations; i++)
        if (Outcome o = start(m, t); o != Outcome::ok) return o;
    uint64_t wall = now_ns() - begin;
    cpu = family_cpu_ns() - cpu;
    *ret = Sample{wall, wall > 0 ? static_cast<double>(cpu) / static_cast<double>(wall) : 0};
    return Outcome::ok;
}

/* ---- setup ---- */

/* Allocates mib MiB and writes to every page of it, so that it is resident
 * and mapped by page table entries of its own. The memory stays until the
 * process ends. Returns 0 or -errno. */
int touch_heap(uint64_t mib) {
    if (mib == 0) return 0;
    size_t size = static_cast<size_t>(mib) << 20;
    auto *heap = static_cast<char *>(malloc(size));
    if (!heap) return -ENOMEM;
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    /* A block this large is a mapping of its own, so the advice touches
     * nothing else. With huge pages, fork() would copy one entry per 2 MiB,
     * which no heap of small allocations gets. */
    auto first = (reinterpret_cast<uintptr_t>(heap) + page - 1) & ~(uintptr_t{page} - 1);
    auto end = (reinterpret_cast<uintptr_t>(heap) + size) & ~(uintptr_t{page} - 1);
    if (end > first && madvise(reinterpret_cast<void *>(first), end - first, MADV_NOHUGEPAGE) < 0 &&
        errno != EINVAL)
        return -errno;
    /* volatile: the writes must happen although nothing reads them. */
    volatile char *p = heap;
    for (size_t off = 0; off < size; off += page) p[off] = 1;
    p[size - 1] = 1;
    return 0;
}

/* The resident set of this process, in MiB. */
uint64_t resident_mib() {
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2) return 0;
    return static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) >> 20;
}

/* /dev/null at 3 or above: a number of 0-2 would make its own mapping a
 * no-op that each method treats differently. */
int open_null(ipcbarrier::UniqueFd *ret) {
    ipcbarrier::UniqueFd fd(open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY));
    if (!fd) return -errno;
    if (fd.get() <= STDERR_FILENO) {
        fd.reset(fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
        if (!fd) return -errno;
    }
    *ret = std::move(fd);
    return 0;
}

/* ---- options ---- */

void usage(FILE *f) {
    fprintf(f,
            "Usage: bench-spawn [OPTIONS]\n"
            "\n"
            "Times starting %s and waiting for it with posix_spawn(), fork() + execve()\n"
            "and the library's vfork, trampoline and fork paths, in a parent that first\n"
            "touches the given amount of heap.\n"
            "\n"
            "  --rss-mib=N          MiB of heap to touch first\n"
            "                       (default 0, or $BENCH_SPAWN_RSS_MIB)\n"
            "  --iterations=N       timed starts per measurement (default %" PRIu64
            ",\n"
            "                       or $BENCH_SPAWN_ITERATIONS)\n"
            "  --fork-iterations=N  the same for fork_exec and spawn_fork, whose starts\n"
            "                       get slow in a large parent (default: --iterations)\n"
            "  --reps=N             measurements per method; the median is reported\n"
            "                       (default %u, or $BENCH_SPAWN_REPS)\n"
            "  --only=METHOD        run only one of posix_spawn, fork_exec, spawn_vfork,\n"
            "                       spawn_trampoline and spawn_fork\n"
            "  --cpu=N              the CPU to pin the parent and its children to\n"
            "                       (default: the current one)\n"
            "  --no-pin             leave the parent and its children on every CPU\n"
            "  --help               show this help\n"
            "\n"
            "Every option with a value also takes it as the next argument. Exits non-zero\n"
            "if a start fails, never for a missed goal.\n",
            PROGRAM, DEFAULT_ITERATIONS, DEFAULT_REPS);
}

bool parse_env(const char *name, uint64_t max, uint64_t min, uint64_t *ret) {
    const char *e = getenv(name);
    if (!e || !*e) return true;
    uint64_t v;
    if (!parse_u64(e, max, &v) || v < min) {
        fprintf(stderr, "bench-spawn: invalid $%s: %s\n", name, e);
        return false;
    }
    *ret = v;
    return true;
}

/* Parses argv and the environment into *o; returns -1 on error, 1 if the
 * program should exit successfully (--help), 0 to go on. */
int parse_options(int argc, char **argv, Options *o) {
    uint64_t reps = o->reps;
    if (!parse_env("BENCH_SPAWN_RSS_MIB", MAX_RSS_MIB, 0, &o->rss_mib) ||
        !parse_env("BENCH_SPAWN_ITERATIONS", UINT32_MAX, 1, &o->iterations) ||
        !parse_env("BENCH_SPAWN_REPS", 1000, 1, &reps))
        return -1;
    o->reps = static_cast<unsigned>(reps);

    for (int i = 1; i < argc; i++) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            usage(stdout);
            return 1;
        }
        if (arg == "--no-pin") {
            o->pin = false;
            continue;
        }
        /* "--name=value" or "--name value" */
        const char *value = nullptr;
        std::string_view name = arg;
        if (size_t eq = arg.find('='); eq != std::string_view::npos) {
            name = arg.substr(0, eq);
            value = argv[i] + eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        }

        uint64_t v = 0;
        bool good;
        if (name == "--rss-mib") {
            good = parse_u64(value, MAX_RSS_MIB, &v);
            if (good) o->rss_mib = v;
        } else if (name == "--iterations") {
            good = parse_u64(value, UINT32_MAX, &v) && v > 0;
            if (good) o->iterations = v;
        } else if (name == "--fork-iterations") {
            good = parse_u64(value, UINT32_MAX, &v) && v > 0;
            if (good) o->fork_iterations = v;
        } else if (name == "--reps") {
            good = parse_u64(value, 1000, &v) && v > 0;
            if (good) o->reps = static_cast<unsigned>(v);
        } else if (name == "--cpu") {
            good = parse_u64(value, CPU_SETSIZE - 1, &v);
            if (good) o->cpu = static_cast<unsigned>(v);
        } else if (name == "--only") {
            auto m = value ? method_from_name(value) : std::nullopt;
            good = m.has_value();
            if (good) o->only = m;
        } else {
            fprintf(stderr, "bench-spawn: unknown argument: %s\n", argv[i]);
            usage(stderr);
            return -1;
        }
        if (!good) {
            fprintf(stderr, "bench-spawn: %.*s needs a valid value, got: %s\n",
                    static_cast<int>(name.size()), name.data(), value ? value : "(nothing)");
            return -1;
        }
    }
    return 0;
}

/* ---- the report ---- */

/* Where a goal holds: at every size, at 0 MiB only, or from 1024 MiB up
 * (where fork() has become expensive). */
enum class GoalAt { any_size, empty_parent, large_parent };

/* A ratio of two methods' costs in the report, with its goal if it has
 * one. */
struct Ratio {
    Method num, den;
    std::optional<double> goal;
    GoalAt at;
};

constexpr std::array<Ratio, 4> RATIOS = {{
    {Method::spawn_vfork, Method::posix_spawn, 1.15, GoalAt::any_size},
    {Method::spawn_trampoline, Method::posix_spawn, 1.5, GoalAt::large_parent},
    {Method::spawn_fork, Method::fork_exec, 1.2, GoalAt::empty_parent},
    {Method::fork_exec, Method::posix_spawn, std::nullopt, GoalAt::any_size},
}};

bool goal_applies(GoalAt at, uint64_t rss_mib) {
    switch (at) {
        case GoalAt::any_size:
            return true;
        case GoalAt::empty_parent:
            return rss_mib == 0;
        case GoalAt::large_parent:
            return rss_mib >= 1024;
    }
    return false;
}

const char *goal_where(GoalAt at) {
    switch (at) {
        case GoalAt::any_size:
            return "";
        case GoalAt::empty_parent:
            return " at 0 MiB";
        case GoalAt::large_parent:
            return " from 1024 MiB";
    }
    return "";
}

/* The cost of one start in microseconds, per measurement. */
std::vector<double> usec_per_start(const std::vector<Sample> &samples, uint64_t iterations) {
    std::vector<double> v;
    for (const Sample &s : samples)
        v.push_back(static_cast<double>(s.ns) / 1000.0 / static_cast<double>(iterations));
    return v;
}

/* Prints the ratio of the medians (held against the goal where it holds
 * at this size), and the median, lowest and highest of the ratios within
 * one repetition, where both methods ran close together in time and so met
 * much the same load. num and den are empty for a method not measured. */
void report_ratio(const Ratio &ratio, uint64_t rss_mib, const std::vector<double> &num,
                  const std::vector<double> &den) {
    char name[64];
    snprintf(name, sizeof name, "%s/%s", method_name(ratio.num), method_name(ratio.den));
    char goal[64] = "";
    if (ratio.goal) snprintf(goal, sizeof goal, "<= %.2f%s", *ratio.goal, goal_where(ratio.at));

    if (num.empty() || den.empty()) {
        printf("%-29s %7s %7s %7s %7s   %s%s\n", name, "n/a", "", "", "", goal,
               ratio.goal ? ": not measured" : "");
        return;
    }
    std::vector<double> per_rep;
    for (size_t rep = 0; rep < num.size() && rep < den.size(); rep++)
        per_rep.push_back(num[rep] / den[rep]);
    double value = median(num) / median(den);
    printf("%-29s %7.3f %7.3f %7.3f %7.3f", name, value, median(per_rep),
           *std::min_element(per_rep.begin(), per_rep.end()),
           *std::max_element(per_rep.begin(), per_rep.end()));
    if (ratio.goal) {
        if (goal_applies(ratio.at, rss_mib))
            printf("   %s: %s", goal, value <= *ratio.goal ? "met" : "NOT MET");
        else
            printf("   (%s)", goal);
    }
    printf("\n");
}

}  // namespace

int main(int argc, char **argv) {
    Options o;
    int r = parse_options(argc, argv, &o);
    if (r != 0) return r > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    const uint64_t fork_iterations = o.fork_iterations.value_or(o.iterations);
    auto iterations_of = [&](Method m) {
        return method_copies_parent(m) ? fork_iterations : o.iterations;
    };
    /* A few untimed starts bring the program's pages and the kernel's
     * caches in; for the slow methods one is enough. */
    auto warmup_of = [&](Method m) {
        return std::clamp<uint64_t>(iterations_of(m) / 10, 1, MAX_WARMUP);
    };

    if (o.cpu && !o.pin) {
        fprintf(stderr, "bench-spawn: --cpu and --no-pin exclude each other\n");
        return EXIT_FAILURE;
    }
    unsigned cpu = 0;
    r = o.pin ? pin_to_one_cpu(o.cpu, &cpu) : 0;
    if (r < 0) {
        fprintf(stderr, "bench-spawn: cannot pin to %s CPU: %s\n", o.cpu ? "the given" : "one",
                strerror(-r));
        return EXIT_FAILURE;
    }
    r = touch_heap(o.rss_mib);
    if (r < 0) {
        fprintf(stderr, "bench-spawn: touching %" PRIu64 " MiB: %s\n", o.rss_mib, strerror(-r));
        return EXIT_FAILURE;
    }
    ipcbarrier::UniqueFd null_fd;
    r = open_null(&null_fd);
    if (r < 0) {
        fprintf(stderr, "bench-spawn: /dev/null: %s\n", strerror(-r));
        return EXIT_FAILURE;
    }
    const char *const child_argv[] = {PROGRAM, nullptr};
    const Target target{child_argv, null_fd.get()};

    std::vector<Method> methods;
    if (o.only)
        methods.push_back(*o.only);
    else
        methods.assign(ALL_METHODS.begin(), ALL_METHODS.end());

    /* One start of each, to find out which paths this build has. */
    std::vector<Method> unsupported;
    for (size_t j = 0; j < methods.size();) {
        Outcome out = start(methods[j], target);
        if (out == Outcome::failed) return EXIT_FAILURE;
        if (out == Outcome::unsupported) {
            unsupported.push_back(methods[j]);
            methods.erase(methods.begin() + static_cast<ptrdiff_t>(j));
        } else {
            j++;
        }
    }

    char where[32] = "every CPU";
    if (o.pin) snprintf(where, sizeof where, "CPU %u", cpu);
    printf("bench-spawn: %s, stdio on /dev/null, other fds closed, signals reset; on %s\n", PROGRAM,
           where);
    printf("bench-spawn: parent touched %" PRIu64 " MiB (resident: %" PRIu64 " MiB); %" PRIu64
           " starts (fork_exec, spawn_fork: %" PRIu64 ") x %u reps\n",
           o.rss_mib, resident_mib(), o.iterations, fork_iterations, o.reps);
    fflush(stdout);

    /* samples[m][rep] for the method m, as an index. */
    std::array<std::vector<Sample>, ALL_METHODS.size()> samples;
    for (unsigned rep = 0; rep < o.reps; rep++) {
        for (size_t j = 0; j < methods.size(); j++) {
            /* Rotate the order, so that no method always runs right after
             * the same other one. */
            Method m = methods[(j + rep) % methods.size()];
            Sample s;
            if (measure(m, target, warmup_of(m), iterations_of(m), &s) != Outcome::ok) {
                fprintf(stderr, "bench-spawn: %s: measurement failed\n", method_name(m));
                return EXIT_FAILURE;
            }
            samples[static_cast<unsigned>(m)].push_back(s);
        }
    }

    /* usec[m]: the cost per start of each measurement; empty if not run. */
    std::array<std::vector<double>, ALL_METHODS.size()> usec;
    for (Method m : methods)
        usec[static_cast<unsigned>(m)] =
            usec_per_start(samples[static_cast<unsigned>(m)], iterations_of(m));

    printf("\n");
    for (Method m : ALL_METHODS) {
        const std::vector<double> &v = usec[static_cast<unsigned>(m)];
        if (!v.empty())
            printf("%s %" PRIu64 " %.1f\n", method_name(m), o.rss_mib, median(v));
        else if (std::find(unsupported.begin(), unsupported.end(), m) != unsupported.end())
            printf("%s %" PRIu64 " n/a\n", method_name(m), o.rss_mib);
    }

    printf("\n%-17s %8s %12s %12s %12s %10s\n", "method", "starts", "usec/start", "min", "max",
           "cpu share");
    double lowest_share = 1;
    for (Method m : methods) {
        const std::vector<double> &v = usec[static_cast<unsigned>(m)];
        std::vector<double> shares;
        for (const Sample &s : samples[static_cast<unsigned>(m)]) shares.push_back(s.cpu_share);
        double share = median(shares);
        lowest_share = std::min(lowest_share, share);
        printf("%-17s %8" PRIu64 " %12.1f %12.1f %12.1f %10.2f\n", method_name(m), iterations_of(m),
               median(v), *std::min_element(v.begin(), v.end()),
               *std::max_element(v.begin(), v.end()), share);
    }
    for (Method m : unsupported)
        printf("%-17s %8s %12s   (this build of the library does not have this path yet)\n",
               method_name(m), "-", "n/a");
    if (lowest_share < MIN_CPU_SHARE)
        printf(
            "\nwarning: the parent and its children got only %.0f%% of %s, other work\n"
            "shared it: the times include that work, and the ratios below are distorted by it.\n"
            "Run on an idle machine for numbers to compare with the goals.\n",
            lowest_share * 100, o.pin ? where : "a CPU");

    auto ran_or_unsupported = [&](Method m) {
        return !usec[static_cast<unsigned>(m)].empty() ||
               std::find(unsupported.begin(), unsupported.end(), m) != unsupported.end();
    };
    bool header = false;
    for (const Ratio &ratio : RATIOS) {
        if (!ran_or_unsupported(ratio.num) || !ran_or_unsupported(ratio.den)) continue;
        if (!header) {
            printf("\n%-29s %7s %7s %7s %7s   %s\n", "ratio", "medians", "rep med", "rep min",
                   "rep max", "goal");
            header = true;
        }
        report_ratio(ratio, o.rss_mib, usec[static_cast<unsigned>(ratio.num)],
                     usec[static_cast<unsigned>(ratio.den)]);
    }
    if (header)
        printf(
            "(medians: the ratio of the medians above; rep: the ratios within each repetition;\n"
            " goals are reported only, a missed goal does not fail the benchmark)\n");
    return EXIT_SUCCESS;
}
