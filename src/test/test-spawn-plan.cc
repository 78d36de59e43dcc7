/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The plan compiler and executor, and the trampoline's format and helper.
 * A plan is compiled in the test process and run in a forked child, the
 * way each path runs it: "fork" with the child's side of a barrier and a
 * report pipe (the parent meets it at the barrier), "vfork" with neither
 * (plan_run() in a plain forked child does what it does on the vfork
 * path). The child executes spawn-inspect, which prints what it sees of
 * its own process, or /bin/sh where the content of fds must be checked by
 * writing through them.
 *
 * Every compiled plan without a child callback also goes through the
 * trampoline's format (written, read back, checked to be the same plan
 * and to write the same bytes again), and the fork path runs the plan as
 * read back, as the trampoline's helper would: so every option of these
 * cases is carried by the format too. The helper program itself is run
 * directly (IPCBARRIER_EXEC_HELPER) on good and bad plans and fds.
 *
 * Cases that need fds at given numbers, other credentials or a parent that
 * dies run in a forked "spawner" child that plays the parent; it reports
 * through its exit status. */

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <glib.h>
#include <grp.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcbarrier/barrier.h>
#include <ipcbarrier/spawn.h>

#include "spawn-format.hh"
#include "spawn-plan.hh"
#include "test-util.h"

namespace {

using ipcbarrier::detail::FdOp;
using ipcbarrier::detail::HandedFd;
using ipcbarrier::detail::PlanContext;
using ipcbarrier::detail::PlanFdMove;
using ipcbarrier::detail::PlanReadStorage;
using ipcbarrier::detail::PlanStorage;
using ipcbarrier::detail::SpawnPlan;
using ipcbarrier::detail::SpawnStatus;

/* spawn-inspect, and a scratch directory with a link to it ("bin"), a file
 * of the same name that may not be executed ("noexec"), and nothing
 * ("empty"). */
std::string g_inspect;
std::string g_dir;
pid_t g_test_pid;
/* Where a failing spawner child writes, when it has replaced its stderr. */
int g_diag_fd = STDERR_FILENO;

constexpr const char *kLinkName = "spawn-plan-inspect";

std::string in_dir(const char *sub) {
    return g_dir + "/" + sub;
}

/* ---- checks that work in the test process and in a spawner child ---- */

[[noreturn]] void check_failed(const char *file, int line, const char *what) {
    if (getpid() != g_test_pid) {
        char buf[1024];
        int n = snprintf(buf, sizeof buf, "test child: %s:%d: %s\n", file, line, what);
        (void)!write(g_diag_fd, buf, static_cast<size_t>(std::clamp(n, 0, 1023)));
        _exit(1);
    }
    g_assertion_message(G_LOG_DOMAIN, file, line, G_STRFUNC, what);
    abort();
}

[[noreturn]] __attribute__((format(printf, 3, 4))) void check_failedf(const char *file, int line,
                                                                      const char *fmt, ...) {
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    check_failed(file, line, buf);
}

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) check_failed(__FILE__, __LINE__, "failed: " #cond); \
    } while (0)
#define CHECK_INT(a, op, b)                                                                   \
    do {                                                                                      \
        long long a_ = (long long)(a), b_ = (long long)(b);                                   \
        if (!(a_ op b_))                                                                      \
            check_failedf(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_); \
    } while (0)
#define CHECK_STR(a, b)                                                                         \
    do {                                                                                        \
        std::string a_ = (a), b_ = (b);                                                         \
        if (a_ != b_)                                                                           \
            check_failedf(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", #a, #b, a_.c_str(), \
                          b_.c_str());                                                          \
    } while (0)

/* ---- running a plan ---- */

enum class Path { fork, vfork };

struct Setup {
    Path path = Path::fork;
    bool capture = true;      /* child fd 1 is a pipe read into Outcome::out */
    int parent_abort = 0;     /* fork: abort with this reason (-1: none) instead of meeting */
    bool wait_ready = false;  /* fork: wait for the program's readiness */
    bool map_own_fds = false; /* fork: give the barrier's and the report pipe's
                               * numbers to child fds (/dev/null) */
    bool fill_fds = false;    /* the child fills its fd table before the plan */
};

struct Outcome {
    int compile_r = 0;
    IpcbSpawnError error{};
    int step = 0, fail_step = 0, fail_errno = 0;
    int exit_code = -1;
    int parent_sync = -1;  /* fork: what the parent's wait for the child returned */
    int parent_reason = 0; /* fork: the child's reason, if it aborted */
    int ready = -1;        /* fork, wait_ready: barrier_wait_next_timeout() */
    std::vector<int> own_fds;
    std::string out;
    std::vector<std::pair<std::string, std::string>> lines;
    std::vector<std::string> env;

    [[nodiscard]] const char *get(const char *key) const {
        for (const auto &[k, v] : lines)
            if (k == key) return v.c_str();
        return nullptr;
    }
    [[nodiscard]] std::string value(const char *key) const {
        const char *v = get(key);
        if (!v) check_failedf(__FILE__, __LINE__, "no line %s in \"%s\"", key, out.c_str());
        return v;
    }
};

int close_fd(int fd) {
    if (fd >= 0) close(fd);
    return -1;
}

std::vector<std::string> split(const std::string &s, char sep) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (;;) {
        size_t end = s.find(sep, start);
        parts.push_back(s.substr(start, end == std::string::npos ? end : end - start));
        if (end == std::string::npos) return parts;
        start = end + 1;
    }
}

/* Everything fd delivers until EOF. */
std::string read_all(int fd) {
    std::string s;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int n = poll(&pfd, 1, watchdog_ms());
        if (n < 0 && errno == EINTR) continue;
        CHECK_INT(n, ==, 1);
        char buf[4096];
        ssize_t k = read(fd, buf, sizeof buf);
        if (k < 0 && errno == EINTR) continue;
        CHECK(k >= 0);
        if (k == 0) return s;
        s.append(buf, static_cast<size_t>(k));
    }
}

/* Reaps pid, with the watchdog where pidfds exist; its exit code or
 * 128+signal. */
int reap(pid_t pid) {
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (pidfd >= 0) {
        struct pollfd pfd = {pidfd, POLLIN, 0};
        int n;
        do n = poll(&pfd, 1, watchdog_ms());
        while (n < 0 && errno == EINTR);
        close(pidfd);
        if (n == 0) kill(pid, SIGKILL);
        CHECK_INT(n, ==, 1);
    }
    int status;
    CHECK_INT(waitpid(pid, &status, 0), ==, pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void parse(Outcome *r) {
    for (const std::string &line : split(r->out, '\n')) {
        if (line.empty()) continue;
        size_t eq = line.find('=');
        CHECK(eq != std::string::npos);
        std::string key = line.substr(0, eq), value = line.substr(eq + 1);
        if (key.rfind("env.", 0) == 0) r->env.push_back(key.substr(4) + "=" + value);
        r->lines.emplace_back(std::move(key), std::move(value));
    }
}

/* ---- the trampoline's format ---- */

bool same_string(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

void check_same_strings(char *const *a, char *const *b) {
    for (size_t i = 0;; i++) {
        CHECK(same_string(a[i], b[i]));
        if (!a[i]) break;
    }
}

/* a and b are the same plan, but for what the format leaves to the path
 * (the barrier, the report fd, the status, the child callback) and for
 * where the record slot is. */
void check_same_plan(const SpawnPlan &a, const SpawnPlan &b) {
    CHECK(same_string(a.path, b.path));
    CHECK_INT(a.exec_fd, ==, b.exec_fd);
    check_same_strings(a.argv, b.argv);
    check_same_strings(a.envp, b.envp);
    CHECK((a.record_slot != nullptr) == (b.record_slot != nullptr));
    CHECK_INT(a.flags, ==, b.flags);
    for (int sig = 1; sig <= 64; sig++)
        CHECK_INT(sigismember(&a.sigmask, sig), ==, sigismember(&b.sigmask, sig));
    CHECK_INT(a.parent_death_signal, ==, b.parent_death_signal);
    CHECK_INT(a.parent_pid, ==, b.parent_pid);
    CHECK_INT(a.cgroup_fd, ==, b.cgroup_fd);
    CHECK_INT(a.n_rlimits, ==, b.n_rlimits);
    for (size_t i = 0; i < a.n_rlimits; i++) {
        CHECK_INT(a.rlimits[i].resource, ==, b.rlimits[i].resource);
        CHECK(a.rlimits[i].cur == b.rlimits[i].cur && a.rlimits[i].max == b.rlimits[i].max);
    }
    CHECK_INT(a.n_fd_moves, ==, b.n_fd_moves);
    for (size_t i = 0; i < a.n_fd_moves; i++) {
        CHECK(a.fd_moves[i].op == b.fd_moves[i].op);
        CHECK_INT(a.fd_moves[i].from, ==, b.fd_moves[i].from);
        CHECK_INT(a.fd_moves[i].to, ==, b.fd_moves[i].to);
    }
    CHECK_INT(a.fd_floor, ==, b.fd_floor);
    CHECK(std::equal(a.keep_fds, a.keep_fds + a.n_keep_fds, b.keep_fds, b.keep_fds + b.n_keep_fds));
    CHECK(std::equal(a.groups, a.groups + a.n_groups, b.groups, b.groups + b.n_groups));
    CHECK_INT(a.gid, ==, b.gid);
    CHECK_INT(a.uid, ==, b.uid);
    CHECK_INT(a.umask, ==, b.umask);
    CHECK(same_string(a.cwd, b.cwd));
    CHECK_INT(a.deadline_usec, ==, b.deadline_usec);
}

/* plan as the trampoline's helper gets it: written with its handed fds
 * as they are now, read back into *storage, checked to be the same plan,
 * and written again to the very same bytes. */
SpawnPlan through_format(const SpawnPlan &plan, PlanReadStorage *storage,
                         std::vector<uint8_t> *ret_bytes = nullptr) {
    std::vector<HandedFd> handed, handed_back;
    CHECK_INT(ipcbarrier::detail::plan_handed_fds(plan, &handed), ==, 0);
    std::vector<uint8_t> bytes, again;
    CHECK_INT(ipcbarrier::detail::plan_write(plan, handed, &bytes), ==, 0);
    SpawnPlan back;
    CHECK_INT(ipcbarrier::detail::plan_read(bytes, storage, &back, &handed_back), ==, 0);
    check_same_plan(plan, back);
    CHECK_INT(handed_back.size(), ==, handed.size());
    for (size_t i = 0; i < handed.size(); i++)
        CHECK(handed[i].fd == handed_back[i].fd && handed[i].cloexec == handed_back[i].cloexec);
    CHECK_INT(ipcbarrier::detail::plan_write(back, handed_back, &again), ==, 0);
    CHECK(again == bytes);
    if (ret_bytes) *ret_bytes = std::move(bytes);
    return back;
}

SpawnStatus *status_page() {
    void *p = mmap(nullptr, sizeof(SpawnStatus), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    CHECK(p != MAP_FAILED);
    auto *s = static_cast<SpawnStatus *>(p);
    s->step = 0;
    s->fail_step = 0;
    s->fail_errno = 0;
    return s;
}

/* Compiles o and runs the plan in a forked child as setup says; the
 * parent meets it at the barrier (fork path), reads its stdout, reaps it. */
Outcome spawn(IpcbSpawnOptions o, const Setup &setup = {}) {
    Outcome res;
    const bool fork_path = setup.path == Path::fork;
    std::vector<IpcbSpawnFd> fds(o.fds, o.fds + o.n_fds);
    int out[2] = {-1, -1}, report[2] = {-1, -1};
    Barrier b = BARRIER_NULL;

    if (setup.capture) {
        CHECK(pipe2(out, O_CLOEXEC) == 0);
        fds.push_back({STDOUT_FILENO, out[1]});
    }
    if (fork_path) {
        CHECK_INT(barrier_create(&b), ==, 0);
        CHECK(pipe2(report, O_CLOEXEC) == 0);
        if (setup.map_own_fds)
            for (int fd : {b.me, b.them, b.pipe[0], b.pipe[1], report[1]}) {
                fds.push_back({fd, -1});
                res.own_fds.push_back(fd);
            }
    }
    o.fds = fds.data();
    o.n_fds = fds.size();

    SpawnStatus *status = status_page();
    PlanContext context{fork_path ? &b : nullptr, report[1], status, getpid(), -1};
    PlanStorage storage;
    SpawnPlan plan;
    res.compile_r = ipcbarrier::detail::plan_compile(&o, context, &storage, &plan, &res.error);

    /* The fork path runs the plan as the trampoline's helper would: read
     * back from the format, with the start's own parts added. */
    PlanReadStorage read_storage;
    SpawnPlan run_plan = plan;
    if (res.compile_r == 0 && !plan.child_callback) {
        SpawnPlan back = through_format(plan, &read_storage);
        if (fork_path) {
            back.barrier = plan.barrier;
            back.report_fd = plan.report_fd;
            back.status = plan.status;
            run_plan = back;
        }
    }

    if (res.compile_r == 0) {
        /* As every path does: no handler of ours may run in the child
         * before the plan has reset the dispositions. */
        sigset_t all, old;
        sigfillset(&all);
        CHECK(pthread_sigmask(SIG_SETMASK, &all, &old) == 0);
        pid_t pid = fork();
        if (pid == 0) {
            (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (fork_path && barrier_set_role(&b, BARRIER_CHILD) < 0) _exit(126);
            if (setup.fill_fds)
                while (open("/dev/null", O_RDONLY | O_CLOEXEC) >= 0) {
                }
            ipcbarrier::detail::plan_run(&run_plan);
            _exit(127);
        }
        CHECK(pthread_sigmask(SIG_SETMASK, &old, nullptr) == 0);
        CHECK(pid > 0);
        out[1] = close_fd(out[1]);
        report[1] = close_fd(report[1]);

        if (fork_path) {
            CHECK_INT(barrier_set_role(&b, BARRIER_PARENT), ==, 0);
            if (setup.parent_abort != 0) {
                (void)barrier_abort_errno(&b, setup.parent_abort > 0 ? setup.parent_abort : 0);
            } else {
                /* The child's point first, then ours: the child cannot
                 * place again before ours arrives, so the program's
                 * readiness point cannot be read (and added up by the
                 * eventfd) together with it. */
                res.parent_sync = barrier_wait_next_timeout(&b, watchdog_usec());
                if (res.parent_sync == 1) CHECK(barrier_place(&b));
                if (res.parent_sync == 0)
                    res.parent_reason = barrier_get_abort_errno(&b);
                else if (setup.wait_ready)
                    res.ready = barrier_wait_next_timeout(&b, watchdog_usec());
            }
        }
        if (setup.capture) res.out = read_all(out[0]);
        /* EOF once the child has executed or ended. */
        if (fork_path) CHECK_STR(read_all(report[0]), "");
        res.exit_code = reap(pid);
        res.step = status->step;
        res.fail_step = status->fail_step;
        res.fail_errno = status->fail_errno;
        parse(&res);
    }

    for (int fd : {out[0], out[1], report[0], report[1]}) close_fd(fd);
    barrier_destroy(&b);
    munmap(status, sizeof *status);
    return res;
}

void expect_started(const Outcome &r, Path path) {
    CHECK_INT(r.compile_r, ==, 0);
    CHECK_INT(r.fail_step, ==, IPCB_STEP_NONE);
    CHECK_INT(r.step, ==, IPCB_STEP_EXEC);
    CHECK_INT(r.exit_code, ==, 0);
    if (path == Path::fork) CHECK_INT(r.parent_sync, ==, 1);
}

/* The child failed at step with err, and, before the barrier, the parent
 * learnt it at once through the barrier with the same reason. */
void expect_failed(const Outcome &r, Path path, IpcbSpawnStep step, int err) {
    CHECK_INT(r.compile_r, ==, 0);
    CHECK_INT(r.fail_step, ==, step);
    CHECK_INT(r.fail_errno, ==, err);
    CHECK_INT(r.step, ==, step);
    CHECK_INT(r.exit_code, ==, 127);
    if (path == Path::fork && step < IPCB_STEP_BARRIER) {
        CHECK_INT(r.parent_sync, ==, 0);
        CHECK_INT(r.parent_reason, ==, err);
    }
}

void expect_refused(const Outcome &r, IpcbSpawnStep step, int err) {
    CHECK_INT(r.compile_r, ==, -err);
    CHECK_INT(r.error.step, ==, step);
    CHECK_INT(r.error.error, ==, err);
}

IpcbSpawnOptions inspect_options(const char *const *argv) {
    IpcbSpawnOptions o{};
    o.argv = argv;
    return o;
}

/* The fds= line as numbers, with close-on-exec ones marked. */
std::vector<std::pair<int, bool>> fd_list(const Outcome &r) {
    std::vector<std::pair<int, bool>> fds;
    std::string v = r.value("fds");
    if (v.empty()) return fds;
    for (const std::string &f : split(v, ','))
        fds.emplace_back(atoi(f.c_str()), !f.empty() && f.back() == 'c');
    return fds;
}

std::string fd_string(const Outcome &r) {
    return r.value("fds");
}

int open_inheritable_null() {
    int fd = open("/dev/null", O_RDONLY);
    CHECK(fd >= 3);
    return fd;
}

int open_cloexec_null() {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 3);
    return fd;
}

uint64_t signal_bit(int sig) {
    return UINT64_C(1) << (sig - 1);
}

uint64_t hex_value(const Outcome &r, const char *key) {
    return g_ascii_strtoull(r.value(key).c_str(), nullptr, 16);
}

/* A case of the run table: fn(path) on each path it applies to. */
struct RunCase {
    const char *name;
    void (*fn)(Path path);
    bool fork_only;
};

/* ---- argv and the environment ---- */

void run_argv(Path path) {
    const char *argv[] = {g_inspect.c_str(), "one", "two words", "", "--exit=0x", nullptr};
    Outcome r = spawn(inspect_options(argv), {.path = path});
    expect_started(r, path);
    std::vector<std::string> got = split(r.value("argv"), '\x1f');
    CHECK_INT(got.size(), ==, 5);
    for (size_t i = 0; i < got.size(); i++) CHECK_STR(got[i], argv[i]);
}

/* A name given as path runs that file with argv[0] as given. */
void run_path_and_argv0(Path path) {
    const char *argv[] = {"custom-name", nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.path = g_inspect.c_str();
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_STR(r.value("argv"), "custom-name");
}

/* Under valgrind, its execve() rewrites the variables that load it into
 * the next program; they are no part of the comparison. */
std::vector<std::string> without_valgrind(std::vector<std::string> env) {
    const char *preload = g_getenv("LD_PRELOAD");
    if (!preload || !strstr(preload, "/vgpreload")) return env;
    std::erase_if(env, [](const std::string &e) {
        return e.rfind("LD_PRELOAD=", 0) == 0 || e.rfind("VALGRIND_LAUNCHER=", 0) == 0;
    });
    return env;
}

void run_env_inherit(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    Outcome r = spawn(inspect_options(argv), {.path = path});
    expect_started(r, path);
    std::vector<std::string> expected;
    for (char **e = environ; *e; e++) expected.emplace_back(*e);
    expected = without_valgrind(std::move(expected));
    std::vector<std::string> got = without_valgrind(r.env);
    CHECK_INT(got.size(), ==, expected.size());
    for (size_t i = 0; i < expected.size(); i++) CHECK_STR(got[i], expected[i]);
    CHECK(std::find(got.begin(), got.end(), "SPAWN_PLAN_INHERITED=yes") != got.end());
}

void run_env_explicit(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    const char *envp[] = {"A=1", "B=two words", "EMPTY=", nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.envp = envp;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_INT(r.env.size(), ==, 3);
    for (size_t i = 0; i < 3; i++) CHECK_STR(r.env[i], envp[i]);
}

/* Unset removes every entry of a name, set replaces every entry of its name
 * and is added in order (the last of a name wins, at the place of its
 * first), set after unset wins. */
void run_env_set_unset(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    const char *envp[] = {"A=1", "B=2", "C=3", "B=22", "D=4", "C=33", nullptr};
    const char *unset[] = {"C", "NOT_THERE", "D", nullptr};
    const char *set[] = {"A=10", "E=5", "A=11", "C=30", nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.envp = envp;
    o.env_unset = unset;
    o.env_set = set;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    const char *expected[] = {"B=2", "B=22", "A=11", "E=5", "C=30"};
    CHECK_INT(r.env.size(), ==, G_N_ELEMENTS(expected));
    for (size_t i = 0; i < G_N_ELEMENTS(expected); i++) CHECK_STR(r.env[i], expected[i]);
}

/* The program takes the barrier over from IPCBARRIER, replacing one that
 * was inherited, and signals readiness through it. */
void run_ready(Path path) {
    const char *argv[] = {g_inspect.c_str(), "--ready", nullptr};
    const char *envp[] = {"IPCBARRIER=stale", "KEEP=1", nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.envp = envp;
    o.flags = IPCB_SPAWN_READY;
    Outcome r = spawn(o, {.path = path, .wait_ready = true});
    expect_started(r, path);
    CHECK_INT(r.ready, ==, 1);
    /* spawn-inspect removed IPCBARRIER when it took the barrier, and
     * closed the barrier before listing its fds. */
    CHECK_INT(r.env.size(), ==, 1);
    CHECK_STR(r.env[0], "KEEP=1");
    CHECK_STR(fd_string(r), "0,1,2");
}

/* ---- fds ---- */

/* Only 0-2 and the mapped fds reach the program, whatever the parent has
 * open, inheritable or not. */
void run_fds_exact(Path path) {
    int inheritable1 = open_inheritable_null();
    int cloexec = open_cloexec_null();
    int inheritable2 = open_inheritable_null();
    int mapped = open_cloexec_null();
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnFd fds[] = {{7, mapped}};
    IpcbSpawnOptions o = inspect_options(argv);
    o.fds = fds;
    o.n_fds = 1;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_STR(fd_string(r), "0,1,2,7");
    for (int fd : {inheritable1, cloexec, inheritable2, mapped}) close(fd);
}

struct FdsBeforeBarrier {
    int inheritable;
    int cloexec;
    bool keep;
};

/* Runs in the child just before the barrier: what the flags promise is
 * closed is closed by then already. */
int check_fds_before_barrier(void *userdata) {
    const auto *f = static_cast<const FdsBeforeBarrier *>(userdata);
    if (fcntl(f->cloexec, F_GETFD) >= 0) return -EUCLEAN;
    bool open = fcntl(f->inheritable, F_GETFD) >= 0;
    if (open != f->keep) return -ENOTRECOVERABLE;
    return 0;
}

void run_fds_closed_before_barrier(Path path) {
    for (bool keep : {false, true}) {
        FdsBeforeBarrier f = {open_inheritable_null(), open_cloexec_null(), keep};
        const char *argv[] = {g_inspect.c_str(), nullptr};
        IpcbSpawnOptions o = inspect_options(argv);
        o.flags = keep ? IPCB_SPAWN_KEEP_FDS : 0;
        o.child_callback = check_fds_before_barrier;
        o.child_callback_userdata = &f;
        Outcome r = spawn(o, {.path = path});
        expect_started(r, path);
        close(f.inheritable);
        close(f.cloexec);
    }
}

/* With KEEP_FDS the inheritable fds stay and the close-on-exec ones are
 * gone; every other fd the program has is one the test inherited. */
void run_fds_keep(Path path) {
    int inheritable = open_inheritable_null();
    int cloexec = open_cloexec_null();
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.flags = IPCB_SPAWN_KEEP_FDS;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    bool seen = false;
    for (auto [fd, cloexec_flag] : fd_list(r)) {
        CHECK(!cloexec_flag);
        CHECK_INT(fd, !=, cloexec);
        if (fd == inheritable) seen = true;
        if (fd > 2 && fd != inheritable) {
            int flags = fcntl(fd, F_GETFD);
            CHECK(flags >= 0 && !(flags & FD_CLOEXEC));
        }
    }
    CHECK(seen);
    close(inheritable);
    close(cloexec);
}

/* The barrier's and the report pipe's numbers are child fds: the child
 * moves its own fds out of the way first, and still meets the parent. */
void run_fds_own_moved(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    Outcome r = spawn(inspect_options(argv), {.path = path, .map_own_fds = true});
    expect_started(r, path);
    std::set<int> expected = {0, 1, 2};
    expected.insert(r.own_fds.begin(), r.own_fds.end());
    std::set<int> got;
    for (auto [fd, cloexec] : fd_list(r)) got.insert(fd);
    CHECK(got == expected);
}

/* The files at child fds 0 and 5 are /dev/null, read-write. Both are
 * copies of one open, whose flags fd 5 shows: reading fd 0's through the
 * shell would put the fdinfo file on fd 0 while it is read. */
const char *const kNullScript =
    "for fd in 0 5; do [ /proc/self/fd/$fd -ef /dev/null ] && echo null$fd=yes; done;"
    "while read k v <&3; do [ \"$k\" = flags: ] && echo flags=$v; done 3</proc/self/fdinfo/5; :";

void run_fds_dev_null(Path path) {
    const char *argv[] = {"/bin/sh", "-c", kNullScript, nullptr};
    IpcbSpawnFd fds[] = {{0, -1}, {5, -1}};
    IpcbSpawnOptions o = inspect_options(argv);
    o.fds = fds;
    o.n_fds = 2;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_STR(r.value("null0"), "yes");
    CHECK_STR(r.value("null5"), "yes");
    long flags = strtol(r.value("flags").c_str(), nullptr, 8);
    CHECK_INT(flags & O_ACCMODE, ==, O_RDWR);
}

/* stdin and stderr from pipes above stdio, checked by their content. */
void run_fds_stdio_from_pipes(Path path) {
    int in[2], err[2];
    CHECK(pipe2(in, O_CLOEXEC) == 0);
    CHECK(pipe2(err, O_CLOEXEC) == 0);
    CHECK_INT(write(in[1], "hello\n", 6), ==, 6);
    close(in[1]);
    const char *argv[] = {"/bin/sh", "-c", "read line; echo got=$line; echo oops >&2", nullptr};
    IpcbSpawnFd fds[] = {{0, in[0]}, {2, err[1]}};
    IpcbSpawnOptions o = inspect_options(argv);
    o.fds = fds;
    o.n_fds = 2;
    Outcome r = spawn(o, {.path = path});
    close(in[0]);
    close(err[1]);
    expect_started(r, path);
    CHECK_STR(r.value("got"), "hello");
    CHECK_STR(read_all(err[0]), "oops\n");
    close(err[0]);
}

/* ---- fds at given numbers, in a spawner child ---- */

struct Pipe {
    int r, w;
};

/* A pipe whose write end is at fd exactly (the read end above 20). */
Pipe pipe_at(int fd) {
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    int r = fcntl(p[0], F_DUPFD_CLOEXEC, 20);
    CHECK(r >= 20);
    close(p[0]);
    if (p[1] != fd) {
        CHECK(dup3(p[1], fd, O_CLOEXEC) == fd);
        close(p[1]);
    }
    return {r, fd};
}

struct ShuffleCase {
    const char *name;
    std::vector<int> at;              /* pipes with write ends here */
    std::vector<IpcbSpawnFd> mapping; /* child <- parent */
    std::vector<std::string> expect;  /* what each pipe in at receives */
    Path path;
};

void spawner_shuffle(void *data) {
    const auto *c = static_cast<const ShuffleCase *>(data);
    g_diag_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 30);
    CHECK(g_diag_fd >= 30);
    std::vector<Pipe> pipes;
    for (int fd : c->at) pipes.push_back(pipe_at(fd));
    /* The program writes each child fd's number into it, in order. */
    std::vector<int> child_fds;
    for (const IpcbSpawnFd &f : c->mapping) child_fds.push_back(f.child_fd);
    std::sort(child_fds.begin(), child_fds.end());
    std::string script = "for fd in";
    /* Appended piece by piece: g++ 12 at -O3 warns falsely (-Wrestrict)
     * about " " + std::to_string(fd). */
    for (int fd : child_fds) {
        script += ' ';
        script += std::to_string(fd);
    }
    script += "; do echo $fd >&$fd; done";
    const char *argv[] = {"/bin/sh", "-c", script.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.fds = c->mapping.data();
    o.n_fds = c->mapping.size();
    Outcome r = spawn(o, {.path = c->path, .capture = false});
    expect_started(r, c->path);
    /* Only the program held copies of the write ends besides us. */
    for (Pipe &p : pipes) close(p.w);
    for (size_t i = 0; i < pipes.size(); i++) CHECK_STR(read_all(pipes[i].r), c->expect[i]);
}

std::vector<ShuffleCase> shuffle_cases() {
    std::vector<ShuffleCase> cases;
    for (Path path : {Path::fork, Path::vfork}) {
        cases.push_back({"swap-stdout-stderr", {1, 2}, {{1, 2}, {2, 1}}, {"2\n", "1\n"}, path});
        /* 3->4->5->3: child 4 gets what 3 was, 5 what 4 was, 3 what 5 was. */
        cases.push_back(
            {"cycle", {3, 4, 5}, {{4, 3}, {5, 4}, {3, 5}}, {"4\n", "5\n", "3\n"}, path});
        /* Two swaps, a chain hanging from one of them whose end is a
         * target too, and a parent fd that is not given (7). */
        cases.push_back({"two-cycles-and-chain",
                         {3, 4, 5, 6, 7, 8},
                         {{3, 4}, {4, 3}, {5, 6}, {6, 5}, {8, 3}, {9, 8}},
                         {"4\n8\n", "3\n", "6\n", "5\n", "", "9\n"},
                         path});
        /* A chain whose source is a target, one parent fd given twice, one
         * kept in place. */
        cases.push_back({"overlap",
                         {3, 4, 5, 6},
                         {{3, 4}, {4, 5}, {7, 3}, {8, 3}, {6, 6}},
                         {"7\n8\n", "3\n", "4\n", "6\n"},
                         path});
    }
    return cases;
}

/* ---- process attributes ---- */

void run_cwd(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    std::string dir = in_dir("bin");
    IpcbSpawnOptions o = inspect_options(argv);
    o.cwd = dir.c_str();
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    char *real = realpath(dir.c_str(), nullptr);
    CHECK(real);
    CHECK_STR(r.value("cwd"), real);
    free(real);
}

void run_umask(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.flags = IPCB_SPAWN_SET_UMASK;
    o.umask = 0027;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_STR(r.value("umask"), "0027");

    /* Without the flag: the parent's. */
    mode_t mine = umask(0);
    umask(mine);
    o.flags = 0;
    r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_INT(strtol(r.value("umask").c_str(), nullptr, 8), ==, mine);
}

/* Exits the child where a handler of the parent ran in it. */
void handler_ran(int) {
    _exit(42);
}

int raise_winch(void *) {
    /* Blocked until the mask is restored before execve(): it is then
     * delivered to whatever disposition the plan left. */
    return raise(SIGWINCH) == 0 ? 0 : -EIO;
}

uint64_t ignored_signals() {
    uint64_t bits = 0;
    for (int sig = 1; sig <= 64; sig++) {
        struct sigaction sa;
        if (sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler == SIG_IGN) bits |= signal_bit(sig);
    }
    return bits;
}

/* Without KEEP_SIGNALS the program gets an empty mask and default
 * dispositions; with it, the parent's mask and ignored signals. Handlers
 * are reset either way (else the child would run the parent's). */
void run_signals(Path path) {
    sigset_t block, old_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    CHECK(pthread_sigmask(SIG_BLOCK, &block, &old_mask) == 0);
    struct sigaction ign = {}, handler = {}, old_usr2, old_winch;
    ign.sa_handler = SIG_IGN;
    handler.sa_handler = handler_ran;
    CHECK(sigaction(SIGUSR2, &ign, &old_usr2) == 0);
    CHECK(sigaction(SIGWINCH, &handler, &old_winch) == 0);

    sigset_t now;
    CHECK(pthread_sigmask(SIG_BLOCK, nullptr, &now) == 0);
    uint64_t mask = 0;
    for (int sig = 1; sig <= 64; sig++)
        if (sigismember(&now, sig) == 1) mask |= signal_bit(sig);
    uint64_t ignored = ignored_signals();

    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.child_callback = raise_winch;
    Outcome reset = spawn(o, {.path = path});
    o.flags = IPCB_SPAWN_KEEP_SIGNALS;
    Outcome kept = spawn(o, {.path = path});

    CHECK(sigaction(SIGUSR2, &old_usr2, nullptr) == 0);
    CHECK(sigaction(SIGWINCH, &old_winch, nullptr) == 0);
    CHECK(pthread_sigmask(SIG_SETMASK, &old_mask, nullptr) == 0);

    expect_started(reset, path);
    CHECK_INT(hex_value(reset, "sigmask"), ==, 0);
    CHECK_INT(hex_value(reset, "sigignored"), ==, 0);

    expect_started(kept, path);
    CHECK(mask & signal_bit(SIGUSR1));
    CHECK(ignored & signal_bit(SIGUSR2));
    CHECK_INT(hex_value(kept, "sigmask"), ==, mask);
    /* Valgrind shows its own real-time signal as ignored to us, and not
     * to the program, which runs without it: those are compared as a
     * subset. */
    const uint64_t classic = signal_bit(SIGRTMIN) - 1;
    uint64_t kept_ignored = hex_value(kept, "sigignored");
    CHECK_INT(kept_ignored & classic, ==, ignored & classic);
    CHECK_INT(kept_ignored & ~ignored, ==, 0);
}

void run_rlimits(Path path) {
    struct rlimit fsize;
    CHECK(getrlimit(RLIMIT_FSIZE, &fsize) == 0);
    IpcbSpawnRlimit limits[] = {
        {RLIMIT_CORE, {0, 0}},
        /* Not RLIMIT_NOFILE: valgrind keeps that one to itself. */
        {RLIMIT_MSGQUEUE, {1000, 2000}},
        {RLIMIT_FSIZE, {12345, fsize.rlim_max}},
    };
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.rlimits = limits;
    o.n_rlimits = G_N_ELEMENTS(limits);
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_STR(r.value("rlimit.4"), "0:0");
    CHECK_STR(r.value("rlimit.12"), "1000:2000");
    std::string hard = fsize.rlim_max == RLIM_INFINITY ? "inf" : std::to_string(fsize.rlim_max);
    CHECK_STR(r.value("rlimit.1"), "12345:" + hard);
}

void run_session(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    for (uint64_t flags : {uint64_t{IPCB_SPAWN_NEW_SESSION},
                           uint64_t{IPCB_SPAWN_NEW_SESSION | IPCB_SPAWN_NEW_PROCESS_GROUP}}) {
        o.flags = flags;
        Outcome r = spawn(o, {.path = path});
        expect_started(r, path);
        CHECK_STR(r.value("sid"), r.value("pid"));
        CHECK_STR(r.value("pgid"), r.value("pid"));
    }
}

void run_process_group(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.flags = IPCB_SPAWN_NEW_PROCESS_GROUP;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_STR(r.value("pgid"), r.value("pid"));
    CHECK_INT(atoi(r.value("sid").c_str()), ==, getsid(0));

    o.flags = 0;
    r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_INT(atoi(r.value("pgid").c_str()), ==, getpgid(0));
}

bool skip_unless_root() {
    if (geteuid() == 0) return false;
    g_test_skip("needs root to change ids");
    return true;
}

void run_ids(Path path) {
    if (skip_unless_root()) return;
    const char *argv[] = {g_inspect.c_str(), nullptr};
    const gid_t groups[] = {65534, 100, 5};
    IpcbSpawnOptions o = inspect_options(argv);
    o.flags = IPCB_SPAWN_SET_UID | IPCB_SPAWN_SET_GID | IPCB_SPAWN_SET_GROUPS;
    o.uid = 65534;
    o.gid = 65533;
    o.groups = groups;
    o.n_groups = G_N_ELEMENTS(groups);
    /* The parent-death signal survives the change of ids. */
    o.parent_death_signal = SIGUSR2;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_STR(r.value("uid"), "65534:65534:65534");
    CHECK_STR(r.value("gid"), "65533:65533:65533");
    std::vector<std::string> got = split(r.value("groups"), ',');
    std::sort(got.begin(), got.end());
    CHECK(got == (std::vector<std::string>{"100", "5", "65534"}));
    CHECK_INT(atoi(r.value("pdeathsig").c_str()), ==, SIGUSR2);

    /* An empty list drops every supplementary group. */
    o.flags = IPCB_SPAWN_SET_GROUPS;
    o.groups = nullptr;
    o.n_groups = 0;
    o.parent_death_signal = 0;
    r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_STR(r.value("groups"), "");
    CHECK_STR(r.value("uid"), "0:0:0");
}

void run_parent_death_signal(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.parent_death_signal = SIGUSR1;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_INT(atoi(r.value("pdeathsig").c_str()), ==, SIGUSR1);
}

void run_no_new_privs(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.flags = IPCB_SPAWN_NO_NEW_PRIVS;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_STR(r.value("no_new_privs"), "1");

    o.flags = 0;
    r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_INT(atoi(r.value("no_new_privs").c_str()), ==, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
}

/* The cgroup v2 hierarchy's mount point, or "". */
std::string cgroup2_root() {
    for (const char *dir : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
        std::string procs = std::string(dir) + "/cgroup.procs";
        std::string type = std::string(dir) + "/cgroup.controllers";
        if (access(procs.c_str(), F_OK) == 0 && access(type.c_str(), F_OK) == 0) return dir;
    }
    return "";
}

void run_cgroup(Path path) {
    std::string root = cgroup2_root();
    /* Where this process is in the v2 hierarchy: the "0::" line. */
    char *text = nullptr;
    CHECK(g_file_get_contents("/proc/self/cgroup", &text, nullptr, nullptr));
    std::string own;
    for (const std::string &line : split(text, '\n'))
        if (line.rfind("0::", 0) == 0) own = line.substr(3);
    g_free(text);
    std::string name = "/ipcb-spawn-plan-" + std::to_string(getpid());
    std::string rel = (own == "/" ? "" : own) + name;
    std::string dir = root + rel;
    if (root.empty() || own.empty() || mkdir(dir.c_str(), 0755) < 0) {
        g_test_skip("no cgroup v2 hierarchy to create a cgroup in");
        return;
    }
    int cgroup_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(cgroup_fd >= 0);
    const char *argv[] = {
        "/bin/sh", "-c",
        "while read l; do case $l in 0::*) echo cgroup=$l;; esac; done </proc/self/cgroup",
        nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.flags = IPCB_SPAWN_CGROUP;
    o.cgroup_fd = cgroup_fd;
    Outcome r = spawn(o, {.path = path});
    close(cgroup_fd);
    /* Empty again once the program ended. */
    int removed = rmdir(dir.c_str());
    expect_started(r, path);
    CHECK_STR(r.value("cgroup"), "0::" + rel);
    CHECK_INT(removed, ==, 0);
}

/* ---- finding the program ---- */

void run_path_found(Path path) {
    const char *argv[] = {kLinkName, "x", nullptr};
    std::string env_path = "PATH=/nonexistent:" + in_dir("empty") + ":" + in_dir("bin");
    const char *set[] = {env_path.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.env_set = set;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
    CHECK_STR(r.value("argv"), std::string(kLinkName) + "\x1fx");
}

/* A file that may not be executed is passed over for a later one. */
void run_path_not_executable_passed_over(Path path) {
    const char *argv[] = {kLinkName, nullptr};
    std::string env_path = "PATH=" + in_dir("noexec") + ":" + in_dir("bin");
    const char *set[] = {env_path.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.env_set = set;
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
}

/* A relative entry is under the child's cwd, as it is for execvp() after
 * chdir(). */
void run_path_relative_entry(Path path) {
    const char *argv[] = {kLinkName, nullptr};
    const char *envp[] = {"PATH=nonexistent:.", nullptr};
    std::string dir = in_dir("bin");
    IpcbSpawnOptions o = inspect_options(argv);
    o.envp = envp;
    o.cwd = dir.c_str();
    Outcome r = spawn(o, {.path = path});
    expect_started(r, path);
}

/* NO_PATH_SEARCH executes the name as given: relative to the cwd. */
void run_path_no_search(Path path) {
    const char *argv[] = {kLinkName, nullptr};
    std::string bin = in_dir("bin"), env_path = "PATH=" + bin;
    const char *set[] = {env_path.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.env_set = set;
    o.flags = IPCB_SPAWN_NO_PATH_SEARCH;
    Outcome r = spawn(o, {.path = path});
    expect_failed(r, path, IPCB_STEP_EXEC, ENOENT);

    o.cwd = bin.c_str();
    r = spawn(o, {.path = path});
    expect_started(r, path);
}

/* A name with a '/' is not searched, even where PATH has it. */
void run_path_slash_not_searched(Path path) {
    std::string name = std::string("bin/") + kLinkName;
    const char *argv[] = {name.c_str(), nullptr};
    std::string env_path = "PATH=" + in_dir("bin") + ":" + g_dir;
    const char *set[] = {env_path.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.env_set = set;
    Outcome r = spawn(o, {.path = path});
    expect_failed(r, path, IPCB_STEP_EXEC, ENOENT);

    o.cwd = g_dir.c_str();
    r = spawn(o, {.path = path});
    expect_started(r, path);
}

void run_path_eacces(Path path) {
    const char *argv[] = {kLinkName, nullptr};
    std::string env_path = "PATH=" + in_dir("empty") + ":" + in_dir("noexec");
    const char *set[] = {env_path.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.env_set = set;
    expect_refused(spawn(o, {.path = path}), IPCB_STEP_PATH, EACCES);
}

void run_path_enoent(Path path) {
    const char *argv[] = {kLinkName, nullptr};
    std::string env_path = "PATH=/nonexistent:" + in_dir("empty");
    const char *set[] = {env_path.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.env_set = set;
    expect_refused(spawn(o, {.path = path}), IPCB_STEP_PATH, ENOENT);

    const char *empty[] = {"", nullptr};
    expect_refused(spawn(inspect_options(empty), {.path = path}), IPCB_STEP_PATH, ENOENT);
}

/* The child's PATH decides, not the parent's. */
void run_path_child_path(Path path) {
    const char *argv[] = {kLinkName, nullptr};
    std::string env_path = "PATH=" + in_dir("bin");
    const char *envp[] = {env_path.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.envp = envp;
    CHECK(!strstr(g_getenv("PATH") ? g_getenv("PATH") : "", in_dir("bin").c_str()));
    expect_started(spawn(o, {.path = path}), path);

    /* And the parent's PATH does not help when the child's lacks it. */
    const char *unset[] = {"PATH", nullptr};
    const char *old = g_getenv("PATH");
    std::string saved = old ? old : "";
    g_setenv("PATH", in_dir("bin").c_str(), TRUE);
    o.envp = nullptr;
    o.env_unset = unset;
    Outcome r = spawn(o, {.path = path});
    if (old)
        g_setenv("PATH", saved.c_str(), TRUE);
    else
        g_unsetenv("PATH");
    expect_refused(r, IPCB_STEP_PATH, ENOENT);
}

void run_exec_fd(Path path) {
    for (int flags : {O_RDONLY | O_CLOEXEC, O_PATH | O_CLOEXEC}) {
        int fd = open(g_inspect.c_str(), flags);
        CHECK(fd >= 0);
        const char *argv[] = {"by-fd", nullptr};
        /* Its number is also a child fd: the copy executed is elsewhere. */
        IpcbSpawnFd fds[] = {{fd, -1}};
        IpcbSpawnOptions o = inspect_options(argv);
        o.flags = IPCB_SPAWN_EXEC_FD;
        o.exec_fd = fd;
        o.fds = fds;
        o.n_fds = 1;
        Outcome r = spawn(o, {.path = path});
        close(fd);
        expect_started(r, path);
        CHECK_STR(r.value("argv"), "by-fd");
        CHECK_STR(fd_string(r), "0,1,2," + std::to_string(fd));
    }
}

/* ---- every failure, with its step and errno ---- */

void run_fail_cwd(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.cwd = "/nonexistent/dir";
    expect_failed(spawn(o, {.path = path}), path, IPCB_STEP_CWD, ENOENT);
}

void run_fail_exec(Path path) {
    const char *argv[] = {"/nonexistent/program", nullptr};
    expect_failed(spawn(inspect_options(argv), {.path = path}), path, IPCB_STEP_EXEC, ENOENT);

    std::string noexec = in_dir("noexec") + "/" + kLinkName;
    const char *argv2[] = {noexec.c_str(), nullptr};
    expect_failed(spawn(inspect_options(argv2), {.path = path}), path, IPCB_STEP_EXEC, EACCES);
}

void run_fail_rlimits(Path path) {
    /* Beyond fs.nr_open, which even root cannot pass. */
    rlim_t huge = static_cast<rlim_t>(INT_MAX) + 1;
    IpcbSpawnRlimit limits[] = {{RLIMIT_CORE, {0, 0}}, {RLIMIT_NOFILE, {huge, huge}}};
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.rlimits = limits;
    o.n_rlimits = 2;
    expect_failed(spawn(o, {.path = path}), path, IPCB_STEP_RLIMITS, EPERM);
}

void run_fail_cgroup(Path path) {
    /* A directory, but no cgroup: it has no cgroup.procs. */
    int fd = open(g_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(fd >= 0);
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.flags = IPCB_SPAWN_CGROUP;
    o.cgroup_fd = fd;
    Outcome r = spawn(o, {.path = path});
    close(fd);
    expect_failed(r, path, IPCB_STEP_CGROUP, ENOENT);
}

int callback_fails(void *) {
    return -ENOTRECOVERABLE;
}

int callback_fails_oddly(void *) {
    return INT_MIN;
}

void run_fail_child_callback(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.child_callback = callback_fails;
    expect_failed(spawn(o, {.path = path}), path, IPCB_STEP_CHILD_CALLBACK, ENOTRECOVERABLE);
    /* Not an errno: EINVAL. */
    o.child_callback = callback_fails_oddly;
    expect_failed(spawn(o, {.path = path}), path, IPCB_STEP_CHILD_CALLBACK, EINVAL);
}

/* The parent gives up: the child fails at the barrier with the parent's
 * reason, or ECANCELED when it gave none. */
void run_fail_barrier(Path path) {
    const char *argv[] = {g_inspect.c_str(), nullptr};
    Outcome r = spawn(inspect_options(argv), {.path = path, .parent_abort = EHOSTDOWN});
    expect_failed(r, path, IPCB_STEP_BARRIER, EHOSTDOWN);
    r = spawn(inspect_options(argv), {.path = path, .parent_abort = -1});
    expect_failed(r, path, IPCB_STEP_BARRIER, ECANCELED);
}

/* ---- failures that need a spawner child ---- */

/* Only the soft limit: valgrind refuses to change the hard one. */
void lower_nofile(rlim_t n) {
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = n;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
}

void spawner_drop_to_nobody() {
    if (geteuid() != 0) return;
    CHECK(setgroups(0, nullptr) == 0);
    CHECK(setresgid(65534, 65534, 65534) == 0);
    CHECK(setresuid(65534, 65534, 65534) == 0);
}

struct IdFailCase {
    uint64_t flag;
    IpcbSpawnStep step;
    Path path;
};

/* Without privileges, each id change is refused with EPERM at its step. */
void spawner_fail_ids(void *data) {
    const auto *c = static_cast<const IdFailCase *>(data);
    spawner_drop_to_nobody();
    const gid_t root_group[] = {0};
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.flags = c->flag;
    o.uid = 0;
    o.gid = 0;
    if (c->flag == IPCB_SPAWN_SET_GROUPS) {
        o.groups = root_group;
        o.n_groups = 1;
    }
    expect_failed(spawn(o, {.path = c->path}), c->path, c->step, EPERM);
}

/* A full fd table in the child: it reports EMFILE at the step that needs
 * one more fd, and the parent learns it through the barrier. */
struct EmfileCase {
    Path path;
    std::vector<IpcbSpawnFd> mapping;
};

void spawner_emfile(void *data) {
    const auto *c = static_cast<const EmfileCase *>(data);
    /* A table of 64 that only stdio occupies, so that filling it is quick
     * and nothing inherited sits above the limit. */
    CHECK(syscall(SYS_close_range, 3U, ~0U, 0U) == 0);
    lower_nofile(64);
    FdSnapshot before, after;
    fd_snapshot(&before);
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.fds = c->mapping.data();
    o.n_fds = c->mapping.size();
    Outcome r = spawn(o, {.path = c->path, .capture = false, .fill_fds = true});
    expect_failed(r, c->path, IPCB_STEP_FDS, EMFILE);
    fd_snapshot(&after);
    CHECK_INT(fd_snapshot_diff(&before, &after), ==, -1);
}

/* The parent dies before the child set its parent-death signal: the child
 * finds another parent and fails with ESRCH instead of waiting for a
 * signal that will never come. The test process is the subreaper that
 * inherits it, and lets it go on only once it has reaped the spawner: the
 * kernel reparents a child before its dead parent can be reaped (but after
 * the dead parent's fds are closed, so an EOF would not do). */
struct Orphan {
    SpawnStatus status;
    pid_t child;
    int gate[2]; /* the test process writes one byte when the spawner is gone */
};

void spawner_orphan(void *data) {
    auto *shared = static_cast<Orphan *>(data);
    close(shared->gate[1]);
    const char *argv[] = {g_inspect.c_str(), nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.parent_death_signal = SIGTERM;
    PlanStorage storage;
    SpawnPlan plan;
    IpcbSpawnError error;
    PlanContext context{nullptr, -1, &shared->status, getpid(), -1};
    CHECK_INT(ipcbarrier::detail::plan_compile(&o, context, &storage, &plan, &error), ==, 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char c;
        while (read(shared->gate[0], &c, 1) < 0 && errno == EINTR) {
        }
        ipcbarrier::detail::plan_run(&plan);
        _exit(127);
    }
    shared->child = pid;
}

void test_fail_parent_death() {
    auto *shared = static_cast<Orphan *>(
        mmap(nullptr, sizeof(Orphan), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    g_assert_true(shared != MAP_FAILED);
    shared->child = 0;
    g_assert_cmpint(pipe2(shared->gate, O_CLOEXEC), ==, 0);
    g_assert_cmpint(prctl(PR_SET_CHILD_SUBREAPER, 1), ==, 0);
    int spawner = run_in_child(spawner_orphan, shared);
    g_assert_cmpint(write(shared->gate[1], "x", 1), ==, 1);
    int orphan = shared->child > 0 ? reap(shared->child) : -1;
    g_assert_cmpint(prctl(PR_SET_CHILD_SUBREAPER, 0), ==, 0);
    close(shared->gate[0]);
    close(shared->gate[1]);
    g_assert_cmpint(spawner, ==, 0);
    g_assert_cmpint(orphan, ==, 127);
    g_assert_cmpint(shared->status.fail_step, ==, IPCB_STEP_PARENT_DEATH);
    g_assert_cmpint(shared->status.fail_errno, ==, ESRCH);
    munmap(shared, sizeof *shared);
}

/* ---- compiling ---- */

/* A plan compiled for inspection only. */
struct Compiled {
    int r;
    IpcbSpawnError error{};
    PlanStorage storage;
    SpawnPlan plan{};
    SpawnStatus status{};
};

void compile_into(Compiled *c, const IpcbSpawnOptions &o, Barrier *barrier = nullptr,
                  int report_fd = -1) {
    PlanContext context{barrier, report_fd, &c->status, getpid(), -1};
    c->r = ipcbarrier::detail::plan_compile(&o, context, &c->storage, &c->plan, &c->error);
}

struct RefusalCase {
    const char *name;
    void (*mutate)(IpcbSpawnOptions *o, int closed_fd, int open_fd);
    int expect; /* a negative errno */
};

const char *const kArgv[] = {"/bin/true", nullptr};
const char *const kNoArgs[] = {nullptr};
const gid_t kGroups[] = {1};
const IpcbSpawnRlimit kBadResource[] = {{RLIM_NLIMITS, {1, 1}}};
const IpcbSpawnRlimit kNegativeResource[] = {{-1, {1, 1}}};
const IpcbSpawnRlimit kSoftAboveHard[] = {{RLIMIT_CORE, {2, 1}}};
const char *const kSetWithoutEquals[] = {"NAME", nullptr};
const char *const kSetWithoutName[] = {"=value", nullptr};
const char *const kUnsetWithEquals[] = {"A=B", nullptr};
const char *const kUnsetEmpty[] = {"", nullptr};

/* Each makes one field wrong in options that compile otherwise. */
const RefusalCase refusal_cases[] = {
    {"no-argv", [](IpcbSpawnOptions *o, int, int) { o->argv = nullptr; }, -EINVAL},
    {"empty-argv", [](IpcbSpawnOptions *o, int, int) { o->argv = kNoArgs; }, -EINVAL},
    {"unknown-flag", [](IpcbSpawnOptions *o, int, int) { o->flags |= UINT64_C(1) << 40; }, -EINVAL},
    {"negative-child-fd",
     [](IpcbSpawnOptions *o, int, int) {
         static const IpcbSpawnFd fds[] = {{-1, -1}};
         o->fds = fds;
         o->n_fds = 1;
     },
     -EINVAL},
    {"duplicate-child-fd",
     [](IpcbSpawnOptions *o, int, int) {
         static const IpcbSpawnFd fds[] = {{3, -1}, {4, -1}, {3, -1}};
         o->fds = fds;
         o->n_fds = 3;
     },
     -EINVAL},
    {"child-fd-int-max",
     [](IpcbSpawnOptions *o, int, int) {
         static const IpcbSpawnFd fds[] = {{INT_MAX, -1}};
         o->fds = fds;
         o->n_fds = 1;
     },
     -EINVAL},
    {"fds-null",
     [](IpcbSpawnOptions *o, int, int) {
         o->fds = nullptr;
         o->n_fds = 1;
     },
     -EINVAL},
    {"closed-parent-fd",
     [](IpcbSpawnOptions *o, int closed, int) {
         static IpcbSpawnFd fds[1];
         fds[0] = {1, closed};
         o->fds = fds;
         o->n_fds = 1;
     },
     -EBADF},
    {"parent-fd-below-minus-one",
     [](IpcbSpawnOptions *o, int, int) {
         static const IpcbSpawnFd fds[] = {{1, -2}};
         o->fds = fds;
         o->n_fds = 1;
     },
     -EBADF},
    {"rlimit-resource",
     [](IpcbSpawnOptions *o, int, int) {
         o->rlimits = kBadResource;
         o->n_rlimits = 1;
     },
     -EINVAL},
    {"rlimit-negative-resource",
     [](IpcbSpawnOptions *o, int, int) {
         o->rlimits = kNegativeResource;
         o->n_rlimits = 1;
     },
     -EINVAL},
    {"rlimit-soft-above-hard",
     [](IpcbSpawnOptions *o, int, int) {
         o->rlimits = kSoftAboveHard;
         o->n_rlimits = 1;
     },
     -EINVAL},
    {"groups-without-flag",
     [](IpcbSpawnOptions *o, int, int) {
         o->groups = kGroups;
         o->n_groups = 1;
     },
     -EINVAL},
    {"groups-null",
     [](IpcbSpawnOptions *o, int, int) {
         o->flags |= IPCB_SPAWN_SET_GROUPS;
         o->n_groups = 1;
     },
     -EINVAL},
    {"exec-fd-closed",
     [](IpcbSpawnOptions *o, int closed, int) {
         o->flags |= IPCB_SPAWN_EXEC_FD;
         o->exec_fd = closed;
     },
     -EBADF},
    {"exec-fd-and-path",
     [](IpcbSpawnOptions *o, int, int open_fd) {
         o->flags |= IPCB_SPAWN_EXEC_FD;
         o->exec_fd = open_fd;
         o->path = "/bin/true";
     },
     -EINVAL},
    {"cgroup-fd-closed",
     [](IpcbSpawnOptions *o, int closed, int) {
         o->flags |= IPCB_SPAWN_CGROUP;
         o->cgroup_fd = closed;
     },
     -EBADF},
    {"ready-without-barrier", [](IpcbSpawnOptions *o, int, int) { o->flags |= IPCB_SPAWN_READY; },
     -EINVAL},
    {"env-set-without-equals",
     [](IpcbSpawnOptions *o, int, int) { o->env_set = kSetWithoutEquals; }, -EINVAL},
    {"env-set-without-name", [](IpcbSpawnOptions *o, int, int) { o->env_set = kSetWithoutName; },
     -EINVAL},
    {"env-unset-with-equals",
     [](IpcbSpawnOptions *o, int, int) { o->env_unset = kUnsetWithEquals; }, -EINVAL},
    {"env-unset-empty", [](IpcbSpawnOptions *o, int, int) { o->env_unset = kUnsetEmpty; }, -EINVAL},
    {"parent-death-signal-invalid",
     [](IpcbSpawnOptions *o, int, int) { o->parent_death_signal = 65; }, -EINVAL},
    {"parent-death-signal-negative",
     [](IpcbSpawnOptions *o, int, int) { o->parent_death_signal = -1; }, -EINVAL},
    {"umask-bits",
     [](IpcbSpawnOptions *o, int, int) {
         o->flags |= IPCB_SPAWN_SET_UMASK;
         o->umask = 01777;
     },
     -EINVAL},
};

/* A refusal says PREPARE and the errno, and changes neither the plan nor
 * the storage. */
void test_refusal(const void *data) {
    const auto *c = static_cast<const RefusalCase *>(data);
    int open_fd = open_cloexec_null();
    int closed_fd = open_cloexec_null();
    close(closed_fd);
    IpcbSpawnOptions o = inspect_options(kArgv);
    c->mutate(&o, closed_fd, open_fd);

    Compiled comp;
    memset(&comp.plan, 0xa5, sizeof comp.plan);
    SpawnPlan before;
    memcpy(&before, &comp.plan, sizeof before);
    comp.storage.keep_fds = {12345};
    compile_into(&comp, o);
    close(open_fd);
    ASSERT_RET(comp.r, c->expect);
    g_assert_cmpint(comp.error.step, ==, IPCB_STEP_PREPARE);
    g_assert_cmpint(comp.error.error, ==, -c->expect);
    g_assert_cmpint(memcmp(&before, &comp.plan, sizeof before), ==, 0);
    g_assert_cmpuint(comp.storage.keep_fds.size(), ==, 1);
    g_assert_cmpint(comp.storage.keep_fds[0], ==, 12345);
}

void test_refusal_null_options() {
    Compiled comp;
    PlanContext context{nullptr, -1, &comp.status, getpid(), -1};
    IpcbSpawnError error{};
    ASSERT_RET(
        ipcbarrier::detail::plan_compile(nullptr, context, &comp.storage, &comp.plan, &error),
        -EINVAL);
    g_assert_cmpint(error.step, ==, IPCB_STEP_PREPARE);
    /* And no error to fill in. */
    IpcbSpawnOptions o = inspect_options(kNoArgs);
    ASSERT_RET(ipcbarrier::detail::plan_compile(&o, context, &comp.storage, &comp.plan, nullptr),
               -EINVAL);
}

/* An fd of the start cannot be a parent fd: the caller's fd of that number
 * was closed before the start took it. */
void test_refusal_own_fd() {
    int report[2];
    g_assert_cmpint(pipe2(report, O_CLOEXEC), ==, 0);
    IpcbSpawnFd fds[] = {{1, report[1]}};
    IpcbSpawnOptions o = inspect_options(kArgv);
    o.fds = fds;
    o.n_fds = 1;
    Compiled comp;
    compile_into(&comp, o, nullptr, report[1]);
    ASSERT_RET(comp.r, -EBADF);

    /* And the barrier's, once its role is set. */
    Barrier b = BARRIER_NULL;
    ASSERT_OK(barrier_create(&b));
    ASSERT_OK(barrier_set_role(&b, BARRIER_CHILD));
    int own[3];
    g_assert_cmpint(barrier_get_fds(&b, own), ==, 3);
    for (int fd : own) {
        fds[0].parent_fd = fd;
        Compiled c2;
        compile_into(&c2, o, &b, -1);
        ASSERT_RET(c2.r, -EBADF);
    }
    barrier_destroy(&b);
    close(report[0]);
    close(report[1]);
}

/* Without PATH in the child's environment the default list is searched. */
void test_compile_default_path() {
    const char *argv[] = {"sh", nullptr};
    const char *envp[] = {"HOME=/", nullptr};
    IpcbSpawnOptions o = inspect_options(argv);
    o.envp = envp;
    Compiled comp;
    compile_into(&comp, o);
    ASSERT_OK(comp.r);
    std::string expected;
    for (const char *dir : {"/usr/local/bin", "/usr/bin", "/bin"}) {
        std::string candidate = std::string(dir) + "/sh";
        if (access(candidate.c_str(), X_OK) == 0) {
            expected = candidate;
            break;
        }
    }
    g_assert_cmpstr(comp.plan.path, ==, expected.c_str());
    g_assert_true(comp.plan.envp[0] == envp[0]);
    g_assert_null(comp.plan.envp[1]);
}

/* The pointers of a plan survive moving its storage. */
void test_compile_storage_moves() {
    const char *argv[] = {kLinkName, nullptr};
    std::string env_path = "PATH=" + in_dir("bin");
    const char *set[] = {env_path.c_str(), nullptr};
    IpcbSpawnFd fds[] = {{3, -1}, {4, 0}};
    IpcbSpawnOptions o = inspect_options(argv);
    o.env_set = set;
    o.fds = fds;
    o.n_fds = 2;
    Barrier b = BARRIER_NULL;
    ASSERT_OK(barrier_create(&b));
    o.flags = IPCB_SPAWN_READY;
    Compiled comp;
    compile_into(&comp, o, &b);
    ASSERT_OK(comp.r);
    std::string path = in_dir("bin") + "/" + kLinkName;
    g_assert_cmpstr(comp.plan.path, ==, path.c_str());
    PlanStorage moved = std::move(comp.storage);
    g_assert_cmpstr(comp.plan.path, ==, path.c_str());
    g_assert_true(comp.plan.path == moved.path.data());
    g_assert_true(comp.plan.envp == moved.envp.data());
    g_assert_true(comp.plan.record_slot == moved.record_slot.data());
    g_assert_true(comp.plan.fd_moves == moved.fd_moves.data());
    g_assert_true(comp.plan.keep_fds == moved.keep_fds.data());
    g_assert_cmpstr(comp.plan.record_slot, ==, "IPCBARRIER=");
    g_assert_cmpuint(moved.record_slot.size(), ==, strlen("IPCBARRIER=") + BARRIER_RECORD_MAX);
    barrier_destroy(&b);
}

/* No fd is needed to compile (so none can leak): with the table full it
 * still works, the relative PATH search under a cwd included. */
void spawner_compile_without_fds(void *) {
    lower_nofile(64);
    while (open("/dev/null", O_RDONLY | O_CLOEXEC) >= 0) {
    }
    CHECK_INT(errno, ==, EMFILE);
    const char *argv[] = {kLinkName, nullptr};
    const char *envp[] = {"PATH=nonexistent:.", nullptr};
    std::string dir = in_dir("bin");
    IpcbSpawnFd fds[] = {{0, -1}, {1, 2}, {2, 1}};
    IpcbSpawnOptions o = inspect_options(argv);
    o.envp = envp;
    o.cwd = dir.c_str();
    o.fds = fds;
    o.n_fds = 3;
    Compiled comp;
    compile_into(&comp, o);
    CHECK_INT(comp.r, ==, 0);
    CHECK_STR(comp.plan.path, std::string("./") + kLinkName);
}

void test_compile_without_fds() {
    g_assert_cmpint(run_in_child(spawner_compile_without_fds, nullptr), ==, 0);
}

/* ---- the order of the fd moves, on a model of the fd table ---- */

constexpr int kNullFile = -1;

/* Runs the moves on table (fd -> file id) as the child would; checks that
 * no move writes a number at or above the floor or reads a closed fd, and
 * that at most one temporary of each kind lives at a time. */
void simulate(const SpawnPlan &plan, std::map<int, int> *table) {
    int saved = -1, null = -1;
    auto above = [&](int file) {
        int fd = plan.fd_floor;
        while (table->count(fd)) fd++;
        (*table)[fd] = file;
        return fd;
    };
    auto read = [&](int fd) {
        g_assert_true(table->count(fd));
        return (*table)[fd];
    };
    for (size_t i = 0; i < plan.n_fd_moves; i++) {
        const PlanFdMove &m = plan.fd_moves[i];
        switch (m.op) {
            case FdOp::dup:
                g_assert_cmpint(m.to, <, plan.fd_floor);
                g_assert_cmpint(m.from, !=, m.to);
                (*table)[m.to] = read(m.from);
                break;
            case FdOp::inherit:
                g_assert_cmpint(m.from, ==, m.to);
                (void)read(m.to);
                break;
            case FdOp::save:
                g_assert_cmpint(saved, ==, -1);
                saved = above(read(m.from));
                break;
            case FdOp::restore:
                g_assert_cmpint(m.to, <, plan.fd_floor);
                (*table)[m.to] = read(saved);
                table->erase(saved);
                saved = -1;
                break;
            case FdOp::open_null:
                g_assert_cmpint(null, ==, -1);
                null = above(kNullFile);
                break;
            case FdOp::null:
                g_assert_cmpint(m.to, <, plan.fd_floor);
                (*table)[m.to] = read(null);
                break;
            case FdOp::close_null:
                table->erase(null);
                null = -1;
                break;
        }
    }
    g_assert_cmpint(saved, ==, -1);
    g_assert_cmpint(null, ==, -1);
}

/* Random mappings over fds 0..11 (sources also -1), every source open
 * with its own file: afterwards each child fd holds what its parent fd
 * held before, and the keep list and the floor are right. */
/* Makes the numbers below limit open, as plan_compile() wants every parent
 * fd to be; closes what it opened when it goes. */
class OpenBelow {
  public:
    explicit OpenBelow(int limit) {
        for (int fd = 0; fd < limit; fd++)
            if (fd_is_closed(fd)) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                g_assert_cmpint(null, >=, 0);
                if (null != fd) {
                    g_assert_cmpint(dup3(null, fd, O_CLOEXEC), ==, fd);
                    close(null);
                }
                opened_.push_back(fd);
            }
    }
    ~OpenBelow() {
        for (int fd : opened_) close(fd);
    }
    OpenBelow(const OpenBelow &) = delete;
    OpenBelow &operator=(const OpenBelow &) = delete;

  private:
    std::vector<int> opened_;
};

void test_fd_moves_random() {
    OpenBelow open_below(12);
    GRand *rand = g_rand_new_with_seed(g_test_rand_int());
    const int rounds = test_slow() ? 100000 : 1000;
    for (int round = 0; round < rounds; round++) {
        int n = g_rand_int_range(rand, 1, 10);
        std::vector<int> targets;
        for (int fd = 0; fd < 12; fd++) targets.push_back(fd);
        for (int i = 11; i > 0; i--)
            std::swap(targets[i], targets[g_rand_int_range(rand, 0, i + 1)]);
        std::vector<IpcbSpawnFd> fds;
        for (int i = 0; i < n; i++) fds.push_back({targets[i], g_rand_int_range(rand, -1, 12)});

        IpcbSpawnOptions o = inspect_options(kArgv);
        o.fds = fds.data();
        o.n_fds = fds.size();
        std::map<int, int> table;
        for (int fd = 0; fd < 12; fd++) table[fd] = 100 + fd;
        Compiled comp;
        compile_into(&comp, o);
        ASSERT_OK(comp.r);
        const SpawnPlan &plan = comp.plan;
        int highest = 2;
        for (const IpcbSpawnFd &f : fds) highest = std::max(highest, f.child_fd);
        g_assert_cmpint(plan.fd_floor, ==, highest + 1);
        std::vector<int> keep(plan.keep_fds, plan.keep_fds + plan.n_keep_fds);
        std::vector<int> expected_keep;
        for (const IpcbSpawnFd &f : fds) expected_keep.push_back(f.child_fd);
        std::sort(expected_keep.begin(), expected_keep.end());
        g_assert_true(keep == expected_keep);

        simulate(plan, &table);
        for (const IpcbSpawnFd &f : fds)
            g_assert_cmpint(table[f.child_fd], ==, f.parent_fd < 0 ? kNullFile : 100 + f.parent_fd);
        /* The trampoline's format carries every order of moves. */
        PlanReadStorage read_storage;
        (void)through_format(plan, &read_storage);
    }
    g_rand_free(rand);
}

/* Chains need no temporary; a cycle needs exactly one, whatever its
 * length. */
void test_fd_moves_minimal() {
    OpenBelow open_below(8);
    struct {
        std::vector<IpcbSpawnFd> fds;
        size_t moves;
        size_t saves;
    } cases[] = {
        {{{0, 5}, {1, 6}, {2, 7}}, 3, 0},
        {{{3, 4}, {4, 5}, {5, 6}}, 3, 0},
        {{{1, 2}, {2, 1}}, 3, 1},
        {{{4, 3}, {5, 4}, {3, 5}}, 4, 1},
        {{{3, 4}, {4, 3}, {5, 6}, {6, 5}}, 6, 2},
        {{{3, 3}, {4, 4}}, 2, 0},
        {{{0, -1}, {5, 0}}, 4, 0},
    };
    for (auto &c : cases) {
        IpcbSpawnOptions o = inspect_options(kArgv);
        o.fds = c.fds.data();
        o.n_fds = c.fds.size();
        Compiled comp;
        compile_into(&comp, o);
        ASSERT_OK(comp.r);
        g_assert_cmpuint(comp.plan.n_fd_moves, ==, c.moves);
        size_t saves = 0;
        for (size_t i = 0; i < comp.plan.n_fd_moves; i++)
            if (comp.plan.fd_moves[i].op == FdOp::save) saves++;
        g_assert_cmpuint(saves, ==, c.saves);
    }
}

/* ---- the trampoline's format, on bytes ---- */

/* Options with every part of a plan the format carries, compiled with a
 * barrier for IPCB_SPAWN_READY: argv, envp with sets and unsets and the
 * record slot, cwd, umask, ids, groups, rlimits, the parent-death signal,
 * a blocked signal kept, a cgroup fd, a deadline, and fds that swap,
 * chain, stay and come from /dev/null; or, with exec_fd, the program as an
 * fd instead of a path. */
struct RichPlan {
    explicit RichPlan(bool exec_fd) {
        CHECK_INT(barrier_create(&barrier), ==, 0);
        for (int &fd : parent_fds) fd = open_cloexec_null();
        CHECK_INT(fd_set_inheritable(parent_fds[1]), ==, 0);
        fds = {{0, -1}, {1, 2}, {2, 1}, {3, parent_fds[0]}, {4, 3}, {parent_fds[1], parent_fds[1]}};
        IpcbSpawnOptions o = inspect_options(kArgv3);
        o.envp = kEnv;
        o.env_set = kEnvSet;
        o.env_unset = kEnvUnset;
        o.cwd = "/";
        o.umask = 027;
        o.uid = 65534;
        o.gid = 65534;
        o.groups = kRichGroups;
        o.n_groups = G_N_ELEMENTS(kRichGroups);
        o.rlimits = kRichRlimits;
        o.n_rlimits = G_N_ELEMENTS(kRichRlimits);
        o.parent_death_signal = SIGTERM;
        o.cgroup_fd = parent_fds[2];
        o.fds = fds.data();
        o.n_fds = fds.size();
        o.flags = IPCB_SPAWN_SET_UMASK | IPCB_SPAWN_SET_UID | IPCB_SPAWN_SET_GID |
                  IPCB_SPAWN_SET_GROUPS | IPCB_SPAWN_CGROUP | IPCB_SPAWN_READY |
                  IPCB_SPAWN_KEEP_SIGNALS | IPCB_SPAWN_NEW_SESSION | IPCB_SPAWN_NO_NEW_PRIVS;
        if (exec_fd) {
            o.flags |= IPCB_SPAWN_EXEC_FD;
            o.exec_fd = parent_fds[3];
        }
        sigset_t usr2, old;
        sigemptyset(&usr2);
        sigaddset(&usr2, SIGUSR2);
        CHECK(pthread_sigmask(SIG_BLOCK, &usr2, &old) == 0);
        PlanContext context{&barrier, -1, &status, getpid(), -1};
        CHECK_INT(ipcbarrier::detail::plan_compile(&o, context, &storage, &plan, &error), ==, 0);
        CHECK(pthread_sigmask(SIG_SETMASK, &old, nullptr) == 0);
        plan.deadline_usec = UINT64_C(123456789012);
        bytes_back = through_format(plan, &read_storage, &bytes);
    }
    ~RichPlan() {
        for (int fd : parent_fds) close(fd);
        barrier_destroy(&barrier);
    }
    RichPlan(const RichPlan &) = delete;
    RichPlan &operator=(const RichPlan &) = delete;

    static constexpr const char *kArgv3[] = {"/bin/true", "one", "", nullptr};
    static constexpr const char *kEnv[] = {"PATH=/bin", "HOME=/", "A=0", nullptr};
    static constexpr const char *kEnvSet[] = {"A=1", "EMPTY=", nullptr};
    static constexpr const char *kEnvUnset[] = {"HOME", nullptr};
    static constexpr gid_t kRichGroups[] = {65534, 100, 0};
    static constexpr IpcbSpawnRlimit kRichRlimits[] = {{RLIMIT_CORE, {0, RLIM_INFINITY}},
                                                       {RLIMIT_NOFILE, {64, 128}}};

    Barrier barrier = BARRIER_NULL;
    int parent_fds[4];
    std::vector<IpcbSpawnFd> fds;
    SpawnStatus status{};
    PlanStorage storage;
    SpawnPlan plan{};
    IpcbSpawnError error{};
    PlanReadStorage read_storage;
    SpawnPlan bytes_back{};
    std::vector<uint8_t> bytes;
};

/* plan_read() on bytes: its result, and, when it accepts them, that they
 * are what plan_write() makes of the plan it read (no other spelling of a
 * plan is accepted) and that it changed nothing on failure. */
int read_bytes(const std::vector<uint8_t> &bytes) {
    PlanReadStorage storage;
    storage.keep_fds = {12345};
    SpawnPlan plan;
    memset(&plan, 0xa5, sizeof plan);
    SpawnPlan before;
    memcpy(&before, &plan, sizeof plan);
    std::vector<HandedFd> handed = {{54321, true}};
    int r = ipcbarrier::detail::plan_read(bytes, &storage, &plan, &handed);
    if (r < 0) {
        CHECK(r == -EBADMSG || r == -EPROTONOSUPPORT || r == -E2BIG);
        CHECK(memcmp(&before, &plan, sizeof plan) == 0);
        CHECK(storage.keep_fds.size() == 1 && handed.size() == 1 && handed[0].fd == 54321);
        return r;
    }
    std::vector<uint8_t> again;
    CHECK_INT(ipcbarrier::detail::plan_write(plan, handed, &again), ==, 0);
    CHECK(again == bytes);
    return 0;
}

/* Every part, both ways of naming the program. */
void test_format_rich() {
    for (bool exec_fd : {false, true}) {
        RichPlan rich(exec_fd);
        CHECK_INT(read_bytes(rich.bytes), ==, 0);
        CHECK(rich.bytes_back.record_slot != nullptr);
        CHECK_STR(rich.bytes_back.record_slot, BARRIER_ENV "=");
        CHECK(sigismember(&rich.bytes_back.sigmask, SIGUSR2) == 1);
        CHECK(sigismember(&rich.bytes_back.sigmask, SIGUSR1) == 0);
    }
}

/* Every plan cut short is refused. */
void test_format_prefixes() {
    RichPlan rich(false);
    for (size_t n = 0; n < rich.bytes.size(); n++) {
        std::vector<uint8_t> cut(rich.bytes.begin(), rich.bytes.begin() + static_cast<long>(n));
        CHECK_INT(read_bytes(cut), ==, -EBADMSG);
    }
}

/* Every bit flipped: refused, or a plan that writes back to those very
 * bytes (a flipped character of a string, a number still in range). */
void test_format_bit_flips() {
    RichPlan rich(false);
    size_t accepted = 0;
    for (size_t i = 0; i < rich.bytes.size(); i++)
        for (int bit = 0; bit < 8; bit++) {
            std::vector<uint8_t> flipped = rich.bytes;
            flipped[i] ^= static_cast<uint8_t>(1u << bit);
            if (read_bytes(flipped) == 0) accepted++;
        }
    g_test_message("%zu of %zu flips still a plan", accepted, rich.bytes.size() * 8);
}

void test_format_refusals() {
    RichPlan rich(false);
    /* the version, the byte after the magic */
    std::vector<uint8_t> b = rich.bytes;
    b[8] = 2;
    CHECK_INT(read_bytes(b), ==, -EPROTONOSUPPORT);
    b = rich.bytes;
    b.push_back(0);
    CHECK_INT(read_bytes(b), ==, -EBADMSG);
    /* Too large is refused before the bytes are looked at: not one of them
     * is touched (the mapping is never written, so costs nothing). */
    size_t huge = ipcbarrier::detail::kPlanFormatMax + 1;
    void *p = mmap(nullptr, huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(p != MAP_FAILED);
    PlanReadStorage storage;
    SpawnPlan plan;
    std::vector<HandedFd> handed;
    CHECK_INT(ipcbarrier::detail::plan_read(std::span(static_cast<const uint8_t *>(p), huge),
                                            &storage, &plan, &handed),
              ==, -E2BIG);
    munmap(p, huge);

    /* What the writer refuses: a child callback (the helper cannot run the
     * caller's code), and handed fds that are not the plan's. */
    std::vector<HandedFd> rich_handed;
    CHECK_INT(ipcbarrier::detail::plan_handed_fds(rich.plan, &rich_handed), ==, 0);
    std::vector<uint8_t> out = {1, 2, 3};
    SpawnPlan with_callback = rich.plan;
    with_callback.child_callback = [](void *) { return 0; };
    CHECK_INT(ipcbarrier::detail::plan_write(with_callback, rich_handed, &out), ==, -EINVAL);
    std::vector<HandedFd> fewer(rich_handed.begin() + 1, rich_handed.end());
    CHECK_INT(ipcbarrier::detail::plan_write(rich.plan, fewer, &out), ==, -EINVAL);
    CHECK(out == std::vector<uint8_t>({1, 2, 3}));
    /* A closed fd has no state to hand on. */
    SpawnPlan closed = rich.plan;
    closed.cgroup_fd = open_cloexec_null();
    close(closed.cgroup_fd);
    CHECK_INT(ipcbarrier::detail::plan_handed_fds(closed, &rich_handed), ==, -EBADF);
}

/* ---- the helper program, run directly ---- */

std::string g_helper;

/* How the helper is started: the plan's bytes, and what is wrong with
 * what it gets besides. */
struct HelperSetup {
    bool report_not_pipe = false; /* /dev/null as the report fd */
    /* The barrier's fds as the helper is told of them: */
    enum class BarrierFds {
        as_is,         /* the eventfd written, the one read, the pipe's write end */
        swapped,       /* the pipe end first, the eventfd written last */
        repeated,      /* one eventfd twice */
        not_inherited, /* the eventfd read left close-on-exec */
    } barrier_fds = BarrierFds::as_is;
    bool bad_arguments = false; /* an unknown option */
    int close_in_child = -1;    /* an fd closed before the helper starts */
    bool capture = false;       /* child fd 1 is a pipe read into out */
};

struct HelperOutcome {
    int exit_code = -1;
    int step = 0, fail_step = 0, fail_errno = 0;
    int parent_sync = -1;
    std::string out;
};

/* Starts the helper the way the trampoline's vfork child does (here from
 * a forked child), with a plan made by make_plan from the start's context,
 * and meets it at the barrier as the parent does. */
template <class MakePlan>
HelperOutcome run_helper(const HelperSetup &setup, MakePlan make_plan) {
    HelperOutcome res;
    /* The state file: the status, then the plan. */
    int state_fd = memfd_create("test-state", MFD_CLOEXEC);
    CHECK(state_fd >= 0);
    CHECK_INT(ftruncate(state_fd, ipcbarrier::detail::kStatePlanOffset), ==, 0);
    void *map = mmap(nullptr, sizeof(SpawnStatus), PROT_READ | PROT_WRITE, MAP_SHARED, state_fd, 0);
    CHECK(map != MAP_FAILED);
    auto *status = static_cast<SpawnStatus *>(map);
    status->step = IPCB_STEP_HELPER;
    Barrier b = BARRIER_NULL;
    CHECK_INT(barrier_create(&b), ==, 0);
    int report[2], out[2] = {-1, -1};
    CHECK(pipe2(report, O_CLOEXEC) == 0);
    if (setup.capture) CHECK(pipe2(out, O_CLOEXEC) == 0);
    int report_fd = report[1];
    if (setup.report_not_pipe) report_fd = open_cloexec_null();

    std::vector<uint8_t> bytes =
        make_plan(PlanContext{&b, report_fd, status, getpid(), state_fd}, out[1]);
    CHECK_INT(pwrite(state_fd, bytes.data(), bytes.size(), ipcbarrier::detail::kStatePlanOffset),
              ==, bytes.size());
    /* The caller's fds that the child lets the helper inherit, where the
     * bytes are a plan. */
    std::vector<HandedFd> handed;
    {
        PlanReadStorage storage;
        SpawnPlan plan;
        (void)ipcbarrier::detail::plan_read(bytes, &storage, &plan, &handed);
    }

    char barrier_arg[64] = "--barrier-fds=";
    std::string state_arg = "--state-fd=" + std::to_string(state_fd);
    std::string report_arg = "--report-fd=" + std::to_string(report_fd);
    const char *argv[] = {"ipcbarrier-exec-helper", state_arg.c_str(),
                          setup.bad_arguments ? "--unknown=1" : report_arg.c_str(), barrier_arg,
                          nullptr};

    sigset_t all, old;
    sigfillset(&all);
    CHECK(pthread_sigmask(SIG_SETMASK, &all, &old) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (barrier_set_role(&b, BARRIER_CHILD) < 0) _exit(126);
        int fds[3];
        if (barrier_get_fds(&b, fds) != 3) _exit(126);
        for (int fd : fds)
            if (fd_set_inheritable(fd) < 0) _exit(126);
        using BarrierFds = HelperSetup::BarrierFds;
        if (setup.barrier_fds == BarrierFds::swapped) std::swap(fds[0], fds[2]);
        if (setup.barrier_fds == BarrierFds::repeated) fds[1] = fds[0];
        if (setup.barrier_fds == BarrierFds::not_inherited &&
            fcntl(fds[1], F_SETFD, FD_CLOEXEC) < 0)
            _exit(126);
        /* "M,T,P", without stdio in the child. */
        char *end = barrier_arg + strlen(barrier_arg);
        for (int i = 0; i < 3; i++) {
            char digits[12];
            int n = 0;
            for (int v = fds[i]; n == 0 || v > 0; v /= 10)
                digits[n++] = static_cast<char>('0' + v % 10);
            if (i > 0) *end++ = ',';
            while (n > 0) *end++ = digits[--n];
        }
        *end = '\0';
        for (int fd : {state_fd, report_fd})
            if (fd_set_inheritable(fd) < 0) _exit(126);
        for (const HandedFd &h : handed)
            if (fd_set_inheritable(h.fd) < 0) _exit(126);
        if (setup.close_in_child >= 0) close(setup.close_in_child);
        /* The usage message, when the arguments are wrong, is not for the
         * test's output. */
        if (setup.bad_arguments) {
            int null = open("/dev/null", O_WRONLY);
            if (null < 0 || dup2(null, STDERR_FILENO) < 0) _exit(126);
        }
        execv(g_helper.c_str(), const_cast<char *const *>(argv));
        _exit(126);
    }
    CHECK(pthread_sigmask(SIG_SETMASK, &old, nullptr) == 0);
    CHECK(pid > 0);
    close(report[1]);
    if (report_fd != report[1]) close(report_fd);
    out[1] = close_fd(out[1]);

    CHECK_INT(barrier_set_role(&b, BARRIER_PARENT), ==, 0);
    res.parent_sync = barrier_wait_next_timeout(&b, watchdog_usec());
    if (res.parent_sync == 1) CHECK(barrier_place(&b));
    if (setup.capture) res.out = read_all(out[0]);
    CHECK_STR(read_all(report[0]), "");
    res.exit_code = reap(pid);
    res.step = status->step;
    res.fail_step = status->fail_step;
    res.fail_errno = status->fail_errno;

    close_fd(out[0]);
    close(report[0]);
    close(state_fd);
    munmap(map, sizeof(SpawnStatus));
    barrier_destroy(&b);
    return res;
}

/* A plan for options, as the trampoline writes it. */
std::vector<uint8_t> plan_bytes(const IpcbSpawnOptions &o, const PlanContext &context) {
    PlanStorage storage;
    SpawnPlan plan;
    IpcbSpawnError error;
    CHECK_INT(ipcbarrier::detail::plan_compile(&o, context, &storage, &plan, &error), ==, 0);
    std::vector<HandedFd> handed;
    CHECK_INT(ipcbarrier::detail::plan_handed_fds(plan, &handed), ==, 0);
    std::vector<uint8_t> bytes;
    CHECK_INT(ipcbarrier::detail::plan_write(plan, handed, &bytes), ==, 0);
    return bytes;
}

/* The helper takes the start over and executes the program: with
 * IPCB_SPAWN_KEEP_FDS, the program gets what the caller let it inherit and
 * what the plan maps, and not the caller's close-on-exec fd that the plan
 * maps (which the helper got with close-on-exec cleared). */
void test_helper_runs() {
    int inherited = open_inheritable_null();
    int mapped = -1;
    HelperSetup setup;
    setup.capture = true;
    HelperOutcome r = run_helper(setup, [&](const PlanContext &context, int out) {
        static const char *argv[] = {g_inspect.c_str(), nullptr};
        IpcbSpawnOptions o = inspect_options(argv);
        mapped = out;
        IpcbSpawnFd fds[] = {{1, out}};
        o.fds = fds;
        o.n_fds = 1;
        o.flags = IPCB_SPAWN_KEEP_FDS;
        return plan_bytes(o, context);
    });
    CHECK_INT(r.exit_code, ==, 0);
    CHECK_INT(r.parent_sync, ==, 1);
    CHECK_INT(r.fail_step, ==, IPCB_STEP_NONE);
    CHECK_INT(r.step, ==, IPCB_STEP_EXEC);
    Outcome parsed;
    parsed.out = r.out;
    parse(&parsed);
    /* Besides whatever the test process inherited itself. */
    std::vector<std::pair<int, bool>> fds = fd_list(parsed);
    auto has = [&fds](int fd) {
        return std::find(fds.begin(), fds.end(), std::pair(fd, false)) != fds.end();
    };
    CHECK(has(0) && has(1) && has(2) && has(inherited));
    CHECK(mapped > 2 && !has(mapped));
    close(inherited);
}

/* The helper refuses what it is given: IPCB_STEP_HELPER with the errno,
 * exit status 127, and the parent learns it at the barrier (the helper's
 * end of it closes) without the program ever running. */
void expect_helper_refused(const HelperOutcome &r, int err) {
    CHECK_INT(r.exit_code, ==, 127);
    CHECK_INT(r.fail_step, ==, IPCB_STEP_HELPER);
    CHECK_INT(r.fail_errno, ==, err);
    CHECK_INT(r.step, ==, IPCB_STEP_HELPER);
    CHECK_INT(r.parent_sync, ==, 0);
}

std::vector<uint8_t> true_plan(const PlanContext &context, int) {
    static const char *argv[] = {"/bin/true", nullptr};
    return plan_bytes(inspect_options(argv), context);
}

struct HelperRefusal {
    const char *name;
    HelperSetup setup;
    /* changes the plan's bytes */
    void (*mutate)(std::vector<uint8_t> *bytes);
    int err;
};

const HelperRefusal helper_refusals[] = {
    {"not-a-plan", {}, [](std::vector<uint8_t> *b) { b->assign(40, 'x'); }, EBADMSG},
    {"truncated", {}, [](std::vector<uint8_t> *b) { b->pop_back(); }, EBADMSG},
    {"other-version", {}, [](std::vector<uint8_t> *b) { (*b)[8] = 9; }, EPROTONOSUPPORT},
    {"empty", {}, [](std::vector<uint8_t> *b) { b->clear(); }, EBADMSG},
    {"report-not-a-pipe", {.report_not_pipe = true}, nullptr, EBADFD},
    {"barrier-fds-swapped", {.barrier_fds = HelperSetup::BarrierFds::swapped}, nullptr, EBADFD},
    {"barrier-fd-repeated", {.barrier_fds = HelperSetup::BarrierFds::repeated}, nullptr, EBADFD},
    {"barrier-fd-not-inherited",
     {.barrier_fds = HelperSetup::BarrierFds::not_inherited},
     nullptr,
     EBADF},
};

void test_helper_refuses(const void *data) {
    const auto *c = static_cast<const HelperRefusal *>(data);
    HelperOutcome r = run_helper(c->setup, [c](const PlanContext &context, int out) {
        std::vector<uint8_t> bytes = true_plan(context, out);
        if (c->mutate) c->mutate(&bytes);
        return bytes;
    });
    expect_helper_refused(r, c->err);
}

/* A caller fd the plan maps is gone in the helper: EBADF, before the plan
 * runs. */
void test_helper_refuses_closed_fd() {
    int fd = open_cloexec_null();
    HelperSetup setup;
    setup.close_in_child = fd;
    HelperOutcome r = run_helper(setup, [fd](const PlanContext &context, int) {
        static const char *argv[] = {"/bin/true", nullptr};
        IpcbSpawnOptions o = inspect_options(argv);
        IpcbSpawnFd fds[] = {{3, fd}};
        o.fds = fds;
        o.n_fds = 1;
        return plan_bytes(o, context);
    });
    close(fd);
    expect_helper_refused(r, EBADF);
}

/* Arguments it does not know: nothing to report to (for all it knows),
 * so it ends with 127 and leaves the status alone. */
void test_helper_refuses_arguments() {
    HelperSetup setup;
    setup.bad_arguments = true;
    HelperOutcome r = run_helper(setup, true_plan);
    CHECK_INT(r.exit_code, ==, 127);
    CHECK_INT(r.fail_step, ==, IPCB_STEP_NONE);
    CHECK_INT(r.parent_sync, ==, 0);
}

/* IPCBARRIER_EXEC_HELPER names the helper, but not in a secure context:
 * spawn-helper-probe prints the helper the library would use and whether
 * it runs in one. It is started as is (the override wins), and as a
 * set-user-ID copy owned by nobody, which the kernel starts in a secure
 * context (the installed helper wins). Needs root, to give the copy away,
 * and a file system that honours set-user-ID. */
void test_helper_override_secure() {
    const char *probe = g_getenv("IPCBARRIER_TEST_HELPER_PROBE");
    g_assert_nonnull(probe);
    const char *override_path = "/nonexistent/ipcbarrier-test-helper";
    auto run_probe = [&](const char *program, std::string *ret) {
        const char *argv[] = {program, nullptr};
        gchar **env =
            g_environ_setenv(g_get_environ(), "IPCBARRIER_EXEC_HELPER", override_path, TRUE);
        gchar *out = nullptr;
        gint wait_status = 0;
        GError *error = nullptr;
        g_assert_true(g_spawn_sync(nullptr, const_cast<gchar **>(argv), env, G_SPAWN_DEFAULT,
                                   nullptr, nullptr, &out, nullptr, &wait_status, &error));
        g_assert_no_error(error);
        g_assert_true(g_spawn_check_wait_status(wait_status, nullptr));
        *ret = out;
        g_free(out);
        g_strfreev(env);
    };
    std::string plain;
    run_probe(probe, &plain);
    CHECK_STR(plain, std::string("secure=0\nhelper=") + override_path + "\n");

    if (geteuid() != 0) {
        g_test_skip("needs root to make a set-user-ID copy owned by another user");
        return;
    }
    std::string copy = g_dir + "/probe";
    gchar *contents = nullptr;
    gsize size = 0;
    g_assert_true(g_file_get_contents(probe, &contents, &size, nullptr));
    g_assert_true(g_file_set_contents(copy.c_str(), contents, static_cast<gssize>(size), nullptr));
    g_free(contents);
    g_assert_cmpint(chown(copy.c_str(), 65534, 65534), ==, 0);
    g_assert_cmpint(chmod(copy.c_str(), 04755), ==, 0);
    std::string secure;
    run_probe(copy.c_str(), &secure);
    g_unlink(copy.c_str());
    if (secure.rfind("secure=0\n", 0) == 0) {
        g_test_skip("the scratch directory's file system ignores set-user-ID");
        return;
    }
    CHECK(secure.rfind("secure=1\nhelper=/", 0) == 0);
    CHECK(secure.find(override_path) == std::string::npos);
    CHECK(secure.size() > strlen("/ipcbarrier-exec-helper\n"));
    CHECK_STR(secure.substr(secure.size() - strlen("/ipcbarrier-exec-helper\n")),
              "/ipcbarrier-exec-helper\n");
}

/* ---- registration ---- */

const RunCase run_cases[] = {
    {"argv", run_argv, false},
    {"argv/path-and-argv0", run_path_and_argv0, false},
    {"env/inherit", run_env_inherit, false},
    {"env/explicit", run_env_explicit, false},
    {"env/set-unset", run_env_set_unset, false},
    {"env/ready", run_ready, true},
    {"fds/exact", run_fds_exact, false},
    {"fds/keep-fds", run_fds_keep, false},
    {"fds/closed-before-barrier", run_fds_closed_before_barrier, false},
    {"fds/own-fds-moved", run_fds_own_moved, true},
    {"fds/dev-null", run_fds_dev_null, false},
    {"fds/stdio-from-pipes", run_fds_stdio_from_pipes, false},
    {"cwd", run_cwd, false},
    {"umask", run_umask, false},
    {"signals", run_signals, false},
    {"rlimits", run_rlimits, false},
    {"session", run_session, false},
    {"process-group", run_process_group, false},
    {"ids", run_ids, false},
    {"parent-death-signal", run_parent_death_signal, false},
    {"no-new-privs", run_no_new_privs, false},
    {"cgroup", run_cgroup, false},
    {"path/found", run_path_found, false},
    {"path/not-executable-passed-over", run_path_not_executable_passed_over, false},
    {"path/relative-entry-under-cwd", run_path_relative_entry, false},
    {"path/no-search", run_path_no_search, false},
    {"path/slash-not-searched", run_path_slash_not_searched, false},
    {"path/eacces", run_path_eacces, false},
    {"path/enoent", run_path_enoent, false},
    {"path/child-path", run_path_child_path, false},
    {"exec-fd", run_exec_fd, false},
    {"fail/cwd", run_fail_cwd, false},
    {"fail/exec", run_fail_exec, false},
    {"fail/rlimits", run_fail_rlimits, false},
    {"fail/cgroup", run_fail_cgroup, false},
    {"fail/child-callback", run_fail_child_callback, false},
    {"fail/barrier", run_fail_barrier, true},
};

struct RunInstance {
    const RunCase *c;
    Path path;
};

void test_run(const void *data) {
    const auto *i = static_cast<const RunInstance *>(data);
    i->c->fn(i->path);
}

/* A spawner case: fn(arg) in a child that plays the parent. */
struct SpawnerInstance {
    void (*fn)(void *);
    void *arg;
};

void test_in_spawner(const void *data) {
    const auto *s = static_cast<const SpawnerInstance *>(data);
    g_assert_cmpint(run_in_child(s->fn, s->arg), ==, 0);
}

/* The scratch directory; removed at exit. */
void make_dir() {
    GError *error = nullptr;
    char *dir = g_dir_make_tmp("test-spawn-plan-XXXXXX", &error);
    g_assert_no_error(error);
    g_dir = dir;
    g_free(dir);
    for (const char *sub : {"bin", "noexec", "empty"})
        g_assert_cmpint(mkdir(in_dir(sub).c_str(), 0755), ==, 0);
    std::string link = in_dir("bin") + "/" + kLinkName;
    g_assert_cmpint(symlink(g_inspect.c_str(), link.c_str()), ==, 0);
    std::string noexec = in_dir("noexec") + "/" + kLinkName;
    g_assert_true(g_file_set_contents(noexec.c_str(), "#!/bin/sh\n", -1, nullptr));
    g_assert_cmpint(chmod(noexec.c_str(), 0644), ==, 0);
    /* Others (uid 65534 in the id tests) may enter it. */
    g_assert_cmpint(chmod(g_dir.c_str(), 0755), ==, 0);
}

void remove_dir() {
    for (const char *f : {"bin/spawn-plan-inspect", "noexec/spawn-plan-inspect"})
        g_unlink(in_dir(f).c_str());
    for (const char *sub : {"bin", "noexec", "empty"}) g_rmdir(in_dir(sub).c_str());
    g_rmdir(g_dir.c_str());
}

}  // namespace

int main(int argc, char **argv) {
    /* The tests tell stdio from other fds by number: should the caller have
     * closed one of 0-2, fill it before anything else is opened. */
    for (int fd = 0; fd < 3; fd++)
        if (fd_is_closed(fd) && open("/dev/null", O_RDWR) != fd) return EXIT_FAILURE;
    g_test_init(&argc, &argv, nullptr);
    g_test_pid = getpid();

    const char *inspect = g_getenv("IPCBARRIER_SPAWN_INSPECT");
    char *dir = g_path_get_dirname(argv[0]);
    char *fallback = g_build_filename(dir, "spawn-inspect", nullptr);
    char *real = realpath(inspect ? inspect : fallback, nullptr);
    g_free(dir);
    g_free(fallback);
    if (!real) {
        g_printerr("spawn-inspect not found: set IPCBARRIER_SPAWN_INSPECT\n");
        return EXIT_FAILURE;
    }
    g_inspect = real;
    free(real);
    const char *helper = g_getenv("IPCBARRIER_EXEC_HELPER");
    if (!helper) {
        g_printerr("the trampoline's helper not found: set IPCBARRIER_EXEC_HELPER\n");
        return EXIT_FAILURE;
    }
    g_helper = helper;
    g_setenv("SPAWN_PLAN_INHERITED", "yes", TRUE);
    make_dir();

    for (const RefusalCase &c : refusal_cases) {
        std::string path = std::string("/spawn-plan/compile/refuses/") + c.name;
        test_add_data_fd_checked(path.c_str(), &c, test_refusal);
    }
    test_add_fd_checked("/spawn-plan/compile/refuses/null-options", test_refusal_null_options);
    test_add_fd_checked("/spawn-plan/compile/refuses/own-fd", test_refusal_own_fd);
    test_add_fd_checked("/spawn-plan/compile/default-path", test_compile_default_path);
    test_add_fd_checked("/spawn-plan/compile/storage-moves", test_compile_storage_moves);
    test_add_fd_checked("/spawn-plan/compile/without-fds", test_compile_without_fds);
    test_add_fd_checked("/spawn-plan/compile/fd-moves/random", test_fd_moves_random);
    test_add_fd_checked("/spawn-plan/compile/fd-moves/minimal", test_fd_moves_minimal);

    /* Static: the tests keep pointers into them until g_test_run() ends. */
    static std::vector<RunInstance> runs;
    runs.reserve(2 * G_N_ELEMENTS(run_cases));
    for (Path path : {Path::fork, Path::vfork})
        for (const RunCase &c : run_cases) {
            if (c.fork_only && path != Path::fork) continue;
            runs.push_back({&c, path});
            std::string name =
                std::string("/spawn-plan/") + (path == Path::fork ? "fork/" : "vfork/") + c.name;
            test_add_data_fd_checked(name.c_str(), &runs.back(), test_run);
        }

    static std::vector<ShuffleCase> shuffles = shuffle_cases();
    static std::vector<SpawnerInstance> spawners;
    spawners.reserve(64);
    for (ShuffleCase &c : shuffles) {
        spawners.push_back({spawner_shuffle, &c});
        std::string name = std::string("/spawn-plan/") +
                           (c.path == Path::fork ? "fork/" : "vfork/") + "fds/" + c.name;
        test_add_data_fd_checked(name.c_str(), &spawners.back(), test_in_spawner);
    }
    static const IdFailCase id_fails[] = {
        {IPCB_SPAWN_SET_GROUPS, IPCB_STEP_GROUPS, Path::fork},
        {IPCB_SPAWN_SET_GID, IPCB_STEP_GID, Path::fork},
        {IPCB_SPAWN_SET_UID, IPCB_STEP_UID, Path::fork},
        {IPCB_SPAWN_SET_GROUPS, IPCB_STEP_GROUPS, Path::vfork},
        {IPCB_SPAWN_SET_GID, IPCB_STEP_GID, Path::vfork},
        {IPCB_SPAWN_SET_UID, IPCB_STEP_UID, Path::vfork},
    };
    for (const IdFailCase &c : id_fails) {
        spawners.push_back({spawner_fail_ids, const_cast<IdFailCase *>(&c)});
        const char *what = c.step == IPCB_STEP_GROUPS ? "groups"
                           : c.step == IPCB_STEP_GID  ? "gid"
                                                      : "uid";
        std::string name = std::string("/spawn-plan/") +
                           (c.path == Path::fork ? "fork/" : "vfork/") + "fail/" + what;
        test_add_data_fd_checked(name.c_str(), &spawners.back(), test_in_spawner);
    }
    /* What needs the fd: /dev/null, the cycle's temporary, the start's own
     * fds (below 50, which the mapping makes the floor). */
    static const std::pair<const char *, EmfileCase> emfiles[] = {
        {"dev-null", {Path::fork, {{3, -1}}}},
        {"temporary", {Path::fork, {{0, 1}, {1, 0}}}},
        {"own-fds", {Path::fork, {{49, -1}}}},
        {"dev-null", {Path::vfork, {{3, -1}}}},
        {"temporary", {Path::vfork, {{0, 1}, {1, 0}}}},
    };
    for (const auto &[what, c] : emfiles) {
        spawners.push_back({spawner_emfile, const_cast<EmfileCase *>(&c)});
        std::string name = std::string("/spawn-plan/") +
                           (c.path == Path::fork ? "fork/" : "vfork/") + "fail/emfile/" + what;
        test_add_data_fd_checked(name.c_str(), &spawners.back(), test_in_spawner);
    }
    test_add_fd_checked("/spawn-plan/vfork/fail/parent-death", test_fail_parent_death);

    test_add_fd_checked("/spawn-plan/format/rich", test_format_rich);
    test_add_fd_checked("/spawn-plan/format/prefixes", test_format_prefixes);
    test_add_fd_checked("/spawn-plan/format/bit-flips", test_format_bit_flips);
    test_add_fd_checked("/spawn-plan/format/refusals", test_format_refusals);
    test_add_fd_checked("/spawn-plan/helper/runs", test_helper_runs);
    for (const HelperRefusal &c : helper_refusals) {
        std::string name = std::string("/spawn-plan/helper/refuses/") + c.name;
        test_add_data_fd_checked(name.c_str(), &c, test_helper_refuses);
    }
    test_add_fd_checked("/spawn-plan/helper/refuses/closed-fd", test_helper_refuses_closed_fd);
    test_add_fd_checked("/spawn-plan/helper/refuses/arguments", test_helper_refuses_arguments);
    test_add_fd_checked("/spawn-plan/helper/override-secure", test_helper_override_secure);

    int r = g_test_run();
    remove_dir();
    return r;
}
