/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* run: ipcbarrier-run and ipcbarrier-notify, driven as the programs they
 * are, from the outside: every option and what it does to COMMAND (which
 * is spawn-inspect where that tells), every exit status and its message,
 * readiness (ready, exited before, aborted with a reason, timed out),
 * signal forwarding, the pid file (there before COMMAND runs, gone after),
 * the fds COMMAND gets, malformed options and durations; ipcbarrier-notify
 * with and without a record. Also the parsers of the option values.
 *
 * The programs come from the Meson test environment (IPCBARRIER_RUN,
 * IPCBARRIER_NOTIFY, IPCBARRIER_SPAWN_INSPECT, IPCBARRIER_RUN_HELPER) and
 * are started with ipcb_spawn(), their stdout and stderr memfds read once
 * they have exited. Under valgrind they run under valgrind too. The test
 * process is a child subreaper, so that a COMMAND that outlives
 * ipcbarrier-run (--ready) becomes its child, and every case ends with no
 * child left. Orders come from handshakes; the only times are the time
 * limits under test and the watchdog. */

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <glib.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TEST_UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define TEST_UNDER_VALGRIND() false
#endif

#include <ipcbarrier/pipe-util.hh>
#include <ipcbarrier/spawn.hh>
#include <ipcbarrier/version.h>

#include "parse-util.hh"
#include "test-util.h"

namespace {

using ipcbarrier::Pipe;
using ipcbarrier::PipeMode;
using ipcbarrier::UniqueFd;

/* g_assert_cmpstr() for strings that may be temporaries. */
#define ASSERT_STR(a, b)                                           \
    do {                                                           \
        const std::string assert_a_ = (a), assert_b_ = (b);        \
        g_assert_cmpstr(assert_a_.c_str(), ==, assert_b_.c_str()); \
    } while (0)

/* That haystack contains needle. */
#define ASSERT_CONTAINS(haystack, needle)                                                     \
    do {                                                                                      \
        const std::string assert_h_ = (haystack), assert_n_ = (needle);                       \
        if (assert_h_.find(assert_n_) == std::string::npos)                                   \
            g_error("%s:%d: \"%s\" not found in:\n%s", __FILE__, __LINE__, assert_n_.c_str(), \
                    assert_h_.c_str());                                                       \
    } while (0)

const char *env_path(const char *name) {
    const char *path = getenv(name);
    if (!path) g_error("%s is not set: run the tests with meson test", name);
    return path;
}

const char *run_path() {
    return env_path("IPCBARRIER_RUN");
}
const char *notify_path() {
    return env_path("IPCBARRIER_NOTIFY");
}
const char *inspect_path() {
    return env_path("IPCBARRIER_SPAWN_INSPECT");
}
const char *helper_path() {
    return env_path("IPCBARRIER_RUN_HELPER");
}

std::string read_fd_from_start(int fd) {
    g_assert_cmpint(lseek(fd, 0, SEEK_SET), ==, 0);
    std::string text;
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        g_assert_cmpint(n, >=, 0);
        if (n == 0) return text;
        text.append(buf, static_cast<size_t>(n));
    }
}

/* Reads from a pipe up to its EOF (the watchdog bounds the wait). */
std::string read_to_eof(int fd) {
    std::string text;
    for (;;) {
        g_assert_true(wait_readable(fd, watchdog_ms()));
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        g_assert_cmpint(n, >=, 0);
        if (n == 0) return text;
        text.append(buf, static_cast<size_t>(n));
    }
}

/* Reads one byte from a pipe (the handshakes), with the watchdog. */
char read_byte(int fd) {
    g_assert_true(wait_readable(fd, watchdog_ms()));
    char c = 0;
    g_assert_cmpint(read(fd, &c, 1), ==, 1);
    return c;
}

/* The value of spawn-inspect's line "key=value"; "" if there is none. */
std::string value_of(const std::string &out, const char *key, bool *found = nullptr) {
    std::string prefix = std::string(key) + "=";
    size_t at = out.compare(0, prefix.size(), prefix) == 0 ? 0 : out.find("\n" + prefix);
    if (found) *found = at != std::string::npos;
    if (at == std::string::npos) return "";
    if (at > 0) at++;
    size_t start = at + prefix.size();
    size_t end = out.find('\n', start);
    return out.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

/* text without valgrind's notes ("--PID-- WARNING: unhandled syscall"),
 * which it prints even with --quiet; its errors ("==PID== ...") stay, to
 * fail the comparisons, besides the exit status they set. */
std::string without_valgrind_notes(const std::string &text) {
    std::string kept;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        end = end == std::string::npos ? text.size() : end + 1;
        std::string line = text.substr(start, end - start);
        start = end;
        size_t digits = line.size() > 2 && line.compare(0, 2, "--") == 0
                            ? line.find_first_not_of("0123456789", 2)
                            : std::string::npos;
        if (digits != std::string::npos && digits > 2 && line.compare(digits, 2, "--") == 0)
            continue;
        kept += line;
    }
    return kept;
}

/* What a program left behind: its status as a shell reports it (128+N
 * for signal N), its stdout and its stderr. */
struct Result {
    int status = -1;
    std::string out;
    std::string err;
};

/* One run of a program: its stdin /dev/null unless given, its stdout and
 * stderr memfds (which nobody has to drain, also when COMMAND outlives
 * the program), every other fd closed unless mapped or kept. */
class Invocation {
  public:
    Invocation(const char *program, std::vector<std::string> args) {
        argv_.push_back(program);
        for (std::string &a : args) argv_.push_back(std::move(a));
        /* Our own programs run under valgrind where the test does. */
        wrap_ = TEST_UNDER_VALGRIND() &&
                (strcmp(program, run_path()) == 0 || strcmp(program, notify_path()) == 0);
    }

    Invocation &stdin_from(int fd) {
        stdin_fd_ = fd;
        return *this;
    }
    Invocation &map_fd(int child_fd, int parent_fd) {
        extra_fds_.push_back({child_fd, parent_fd});
        return *this;
    }
    Invocation &keep_fds() {
        flags_ |= IPCB_SPAWN_KEEP_FDS;
        return *this;
    }
    /* The test's ignored signals stay ignored in the program. */
    Invocation &keep_signals() {
        flags_ |= IPCB_SPAWN_KEEP_SIGNALS;
        return *this;
    }
    Invocation &env(std::string name_value) {
        env_.push_back(std::move(name_value));
        return *this;
    }

    void start() {
        out_.reset(memfd_create("ipcbarrier-test-out", MFD_CLOEXEC));
        err_.reset(memfd_create("ipcbarrier-test-err", MFD_CLOEXEC));
        g_assert_true(out_ && err_);
        std::vector<const char *> argv;
        if (wrap_)
            for (const char *a :
                 {"valgrind", "--quiet", "--error-exitcode=66", "--leak-check=full",
                  "--errors-for-leak-kinds=definite", "--child-silent-after-fork=yes"})
                argv.push_back(a);
        for (const std::string &a : argv_) argv.push_back(a.c_str());
        argv.push_back(nullptr);
        std::vector<const char *> env;
        for (const std::string &e : env_) env.push_back(e.c_str());
        env.push_back(nullptr);
        std::vector<IpcbSpawnFd> fds = {{0, stdin_fd_}, {1, out_.get()}, {2, err_.get()}};
        fds.insert(fds.end(), extra_fds_.begin(), extra_fds_.end());
        IpcbSpawnOptions options = {
            .argv = argv.data(),
            .env_set = env.data(),
            .fds = fds.data(),
            .n_fds = fds.size(),
            .flags = flags_,
        };
        ipcbarrier::SpawnError error = {};
        int r = ipcbarrier::Process::spawn(options, &process_, &error);
        if (r < 0) {
            char msg[128];
            (void)ipcb_spawn_error_format(&error, msg, sizeof msg);
            g_error("starting %s: %s", argv_[0].c_str(), msg);
        }
    }

    [[nodiscard]] pid_t pid() const { return process_.pid(); }

    /* Waits for the program (with the watchdog) and collects its output. */
    Result finish() {
        siginfo_t si;
        ASSERT_OK(ipcb_process_wait(process_.c_process(), watchdog_usec(), &si));
        Result result;
        result.status = status_ = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
        result.out = read_fd_from_start(out_.get());
        result.err = read_fd_from_start(err_.get());
        if (wrap_) result.err = without_valgrind_notes(result.err);
        if (!result.err.empty())
            g_test_message("stderr of %s:\n%s", argv_[0].c_str(), result.err.c_str());
        return result;
    }

    /* The output again, as it is now (after what outlived the program
     * has written more), with the status of finish(). */
    Result finish_output() {
        Result result;
        result.status = status_;
        result.out = read_fd_from_start(out_.get());
        result.err = read_fd_from_start(err_.get());
        if (wrap_) result.err = without_valgrind_notes(result.err);
        return result;
    }

    Result run() {
        start();
        return finish();
    }

  private:
    std::vector<std::string> argv_;
    std::vector<std::string> env_;
    std::vector<IpcbSpawnFd> extra_fds_;
    int stdin_fd_ = -1;
    uint64_t flags_ = 0;
    bool wrap_ = false;
    int status_ = -1;
    UniqueFd out_, err_;
    ipcbarrier::Process process_;
};

Invocation run_cmd(std::vector<std::string> args) {
    return Invocation(run_path(), std::move(args));
}

Invocation notify_cmd(std::vector<std::string> args) {
    return Invocation(notify_path(), std::move(args));
}

Result run(std::vector<std::string> args) {
    return run_cmd(std::move(args)).run();
}

/* Runs ipcbarrier-run with each of the argument lists at once, so that
 * the cases of a table take the time of the longest, and returns the
 * results in their order. */
std::vector<Result> run_all(const std::vector<std::vector<std::string>> &arg_lists) {
    std::vector<Invocation> runs;
    runs.reserve(arg_lists.size());
    for (const std::vector<std::string> &args : arg_lists) {
        runs.push_back(run_cmd(args));
        runs.back().start();
    }
    std::vector<Result> results;
    for (Invocation &inv : runs) results.push_back(inv.finish());
    return results;
}

/* One error line of ipcbarrier-run, as it prints it. */
std::string run_error(const std::string &message) {
    return "ipcbarrier-run: " + message + "\n";
}

/* The events of a --verbose timeline, in order, without their times;
 * lines that are not events are kept as they are. Every time must be a
 * number of milliseconds, none smaller than the one before. */
std::vector<std::string> timeline_events(const std::string &err) {
    std::vector<std::string> events;
    double last = 0;
    size_t start = 0;
    while (start < err.size()) {
        size_t end = err.find('\n', start);
        if (end == std::string::npos) end = err.size();
        std::string line = err.substr(start, end - start);
        start = end + 1;
        const std::string prefix = "ipcbarrier-run: ";
        size_t ms = line.find(" ms  ");
        if (line.compare(0, prefix.size(), prefix) != 0 || ms == std::string::npos) {
            events.push_back(line);
            continue;
        }
        std::string time = line.substr(prefix.size(), ms - prefix.size());
        char *rest;
        double t = strtod(time.c_str(), &rest);
        if (*rest != '\0' || time.find_first_not_of(" 0123456789.") != std::string::npos) {
            events.push_back(line);
            continue;
        }
        g_assert_cmpfloat(t, >=, last);
        last = t;
        events.push_back(line.substr(ms + 5));
    }
    return events;
}

/* A directory of its own for the case's files, removed (with what is in
 * it) at the end. */
class TempDir {
  public:
    TempDir() : path_(g_dir_make_tmp("test-run-XXXXXX", nullptr)) { g_assert_nonnull(path_); }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    ~TempDir() {
        GDir *dir = g_dir_open(path_, 0, nullptr);
        if (dir) {
            while (const char *name = g_dir_read_name(dir)) {
                char *file = g_build_filename(path_, name, nullptr);
                (void)unlink(file);
                g_free(file);
            }
            g_dir_close(dir);
        }
        (void)rmdir(path_);
        g_free(path_);
    }
    [[nodiscard]] std::string path() const { return path_; }
    [[nodiscard]] std::string file(const char *name) const {
        return std::string(path_) + "/" + name;
    }
    /* The names in the directory, sorted, space-separated. */
    [[nodiscard]] std::string list() const {
        std::vector<std::string> names;
        GDir *dir = g_dir_open(path_, 0, nullptr);
        g_assert_nonnull(dir);
        while (const char *name = g_dir_read_name(dir)) names.emplace_back(name);
        g_dir_close(dir);
        std::sort(names.begin(), names.end());
        std::string all;
        for (const std::string &n : names) all += (all.empty() ? "" : " ") + n;
        return all;
    }

  private:
    char *path_;
};

bool file_exists(const std::string &path) {
    return access(path.c_str(), F_OK) == 0;
}

std::string read_file(const std::string &path) {
    gchar *text = nullptr;
    g_assert_true(g_file_get_contents(path.c_str(), &text, nullptr, nullptr));
    std::string s = text;
    g_free(text);
    return s;
}

/* --help and --version */

void test_help() {
    for (const char *program : {run_path(), notify_path()}) {
        Result r = Invocation(program, {"--help"}).run();
        g_assert_cmpint(r.status, ==, 0);
        ASSERT_CONTAINS(r.out, std::string("Usage: ") + (strrchr(program, '/') + 1) + " ");
        ASSERT_STR(r.err, "");
    }
}

void test_version() {
    for (const char *name : {"ipcbarrier-run", "ipcbarrier-notify"}) {
        const char *program = strcmp(name, "ipcbarrier-run") == 0 ? run_path() : notify_path();
        Result r = Invocation(program, {"--version"}).run();
        g_assert_cmpint(r.status, ==, 0);
        ASSERT_STR(r.out, std::string(name) + " (ipcbarrier) " IPCBARRIER_VERSION "\n");
        ASSERT_STR(r.err, "");
    }
}

/* Usage errors: 125 and one line that names the problem. */

struct UsageCase {
    std::vector<std::string> args;
    const char *message;
};

constexpr const char NOT_A_DURATION[] = ": not a duration (such as 0.5, 250ms, 2s, 1min)";
constexpr const char BAD_RLIMIT[] = ": not NAME=SOFT[:HARD] with a known NAME and SOFT <= HARD";

void test_usage_errors() {
    const std::vector<UsageCase> cases = {
        {{}, "no COMMAND given (see --help)"},
        {{"--bogus", "true"}, "unknown option --bogus (see --help)"},
        {{"-x", "true"}, "unknown option -x (see --help)"},
        {{"--chdir"}, "option --chdir needs a value (see --help)"},
        {{"--setsid=yes", "true"}, "option --setsid takes no value (see --help)"},
        {{"--ready-timeout=1s", "true"}, "--ready-timeout needs --ready"},
        {{"--method=vfork", "--ready", "true"}, "--method=vfork cannot be combined with --ready"},
        {{"--method=vfork", "--pidfile=/nonexistent/p", "true"},
         "--method=vfork cannot be combined with --pidfile"},
        {{"--method=spoon", "true"}, "--method=spoon: not one of auto, vfork, trampoline, fork"},
        {{"--umask=0888", "true"}, "--umask=0888: not an octal mode up to 0777"},
        {{"--umask=1777", "true"}, "--umask=1777: not an octal mode up to 0777"},
        {{"--env=NOVALUE", "true"}, "--env=NOVALUE: not NAME=VALUE"},
        {{"--env==x", "true"}, "--env==x: not NAME=VALUE"},
        {{"--unset=A=B", "true"}, "--unset=A=B: not a variable name"},
        {{"--rlimit=bogus=1", "true"}, BAD_RLIMIT},
        {{"--rlimit=nofile=5:1", "true"}, BAD_RLIMIT},
        {{"--rlimit=nofile", "true"}, BAD_RLIMIT},
        {{"--pdeathsig=FOO", "true"}, "--pdeathsig=FOO: not a signal"},
        {{"--fd=3", "true"}, "--fd=3: not CHILD=PARENT (two fd numbers)"},
        {{"--fd=3=900", "true"}, "--fd=3=900: Bad file descriptor"},
        {{"--fd=1=2", "--fd=1=0", "true"}, "--fd=1=0: that CHILD fd is given twice"},
        {{"--uid=ipcbarrier-no-such-user", "true"}, "--uid=ipcbarrier-no-such-user: no such user"},
        {{"--gid=ipcbarrier-no-such-group", "true"},
         "--gid=ipcbarrier-no-such-group: no such group"},
        {{"--pidfile=", "true"}, "--pidfile=: an empty path"},
    };
    std::vector<std::vector<std::string>> arg_lists;
    for (const UsageCase &c : cases) arg_lists.push_back(c.args);
    std::vector<Result> results = run_all(arg_lists);
    for (size_t i = 0; i < results.size(); i++) {
        std::string expected = cases[i].message;
        /* The cases of one message for many values name the option. */
        if (expected[0] == ':') expected = cases[i].args[0] + expected;
        g_assert_cmpint(results[i].status, ==, 125);
        ASSERT_STR(results[i].err, run_error(expected));
        ASSERT_STR(results[i].out, "");
    }
}

/* Malformed durations are refused, and well-formed ones are accepted
 * (the parser, which all the options share, has its own cases below). */
void test_durations() {
    const char *malformed[] = {"abc", "-1", "1m", ""};
    std::vector<std::vector<std::string>> arg_lists;
    std::vector<std::string> expected;
    for (const char *value : malformed) {
        std::string arg = std::string("--setup-timeout=") + value;
        arg_lists.push_back({arg, "true"});
        expected.push_back(run_error(arg + NOT_A_DURATION));
    }
    for (const char *option : {"--setup-timeout", "--ready-timeout"}) {
        std::string too_long = std::string(option) + "=99999999999999999999h";
        arg_lists.push_back({"--ready", too_long, "true"});
        expected.push_back(run_error(too_long + ": too long"));
    }
    arg_lists.push_back({"--ready", "--ready-timeout=soon", "true"});
    expected.push_back(run_error(std::string("--ready-timeout=soon") + NOT_A_DURATION));
    /* Limits that are long enough, written every way. */
    for (const char *value : {"0", "0.5min", "250000ms", ".75h"}) {
        arg_lists.push_back({std::string("--setup-timeout=") + value, "true"});
        expected.emplace_back("");
    }
    std::vector<Result> results = run_all(arg_lists);
    for (size_t i = 0; i < results.size(); i++) {
        g_assert_cmpint(results[i].status, ==, expected[i].empty() ? 0 : 125);
        ASSERT_STR(results[i].err, expected[i]);
    }
}

/* Exit statuses */

void test_status_exit() {
    Result r = run({"--", inspect_path(), "--exit=7"});
    g_assert_cmpint(r.status, ==, 7);
    ASSERT_STR(r.err, "");
    ASSERT_STR(value_of(r.out, "argv"), std::string(inspect_path()) + "\x1f--exit=7");
    r = run({"sh", "-c", "exit 0"});
    g_assert_cmpint(r.status, ==, 0);
    assert_no_children();
}

void test_status_signal() {
    Result r = run({"sh", "-c", "kill -USR1 $$"});
    g_assert_cmpint(r.status, ==, 128 + SIGUSR1);
    ASSERT_STR(r.err, "");
    r = run({"--verbose", "sh", "-c", "kill -KILL $$"});
    g_assert_cmpint(r.status, ==, 128 + SIGKILL);
    std::vector<std::string> events = timeline_events(r.err);
    g_assert_cmpuint(events.size(), ==, 3);
    ASSERT_STR(events[2], "was killed by signal 9 (KILL)");
    assert_no_children();
}

void test_status_not_found() {
    Result r = run({"ipcbarrier-test-no-such-program", "arg"});
    g_assert_cmpint(r.status, ==, 127);
    ASSERT_STR(r.err,
               run_error("PATH search ipcbarrier-test-no-such-program: No such file or directory"));
    r = run({"/nonexistent/ipcbarrier-test-program"});
    g_assert_cmpint(r.status, ==, 127);
    ASSERT_STR(r.err,
               run_error("execve /nonexistent/ipcbarrier-test-program: No such file or directory"));
    assert_no_children();
}

void test_status_cannot_execute() {
    TempDir dir;
    std::string file = dir.file("not-executable");
    g_assert_true(g_file_set_contents(file.c_str(), "#!/bin/sh\n", -1, nullptr));
    g_assert_cmpint(chmod(file.c_str(), 0644), ==, 0);
    Result r = run({file});
    g_assert_cmpint(r.status, ==, 126);
    ASSERT_STR(r.err, run_error("execve " + file + ": Permission denied"));
    /* A directory is found, and cannot be executed. */
    r = run({dir.path()});
    g_assert_cmpint(r.status, ==, 126);
    ASSERT_STR(r.err, run_error("execve " + dir.path() + ": Permission denied"));
    assert_no_children();
}

/* 125: a step of the setup failed, and COMMAND never ran. */
void test_status_setup_failed() {
    Result r = run({"--chdir=/nonexistent/ipcbarrier-test-dir", inspect_path()});
    g_assert_cmpint(r.status, ==, 125);
    ASSERT_STR(r.err,
               run_error("chdir /nonexistent/ipcbarrier-test-dir: No such file or directory"));
    ASSERT_STR(r.out, "");
    assert_no_children();
}

/* The options, and what COMMAND gets of them (spawn-inspect tells). */

void test_chdir() {
    Result r = run({"--chdir=/", inspect_path()});
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, "cwd"), "/");
    /* A COMMAND with a slash is taken from there, as with env --chdir. */
    gchar *dir = g_path_get_dirname(inspect_path());
    r = run({std::string("--chdir=") + dir, "./spawn-inspect"});
    g_free(dir);
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, "argv"), "./spawn-inspect");
}

void test_umask() {
    Result r = run({"--umask=027", inspect_path()});
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, "umask"), "0027");
    r = run({"--umask=0", inspect_path()});
    ASSERT_STR(value_of(r.out, "umask"), "0000");
}

void test_env() {
    Result r = run_cmd({"--env=IPCB_TEST_A=1", "--env=IPCB_TEST_B=x=y", "--env=IPCB_TEST_A=2",
                        "--unset=IPCB_TEST_GONE", inspect_path()})
                   .env("IPCB_TEST_GONE=here")
                   .env("IPCB_TEST_KEPT=kept")
                   .run();
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_CONTAINS(r.out, "\nenv.IPCB_TEST_A=2\n");
    ASSERT_CONTAINS(r.out, "\nenv.IPCB_TEST_B=x=y\n");
    ASSERT_CONTAINS(r.out, "\nenv.IPCB_TEST_KEPT=kept\n");
    g_assert_true(r.out.find("IPCB_TEST_GONE") == std::string::npos);
    g_assert_true(r.out.find("IPCB_TEST_A=1") == std::string::npos);
}

void test_clear_env() {
    Result r = run({"--clear-env", "--env=ONLY=this", inspect_path()});
    g_assert_cmpint(r.status, ==, 0);
    std::string env;
    size_t at = 0;
    while ((at = r.out.find("env.", at)) != std::string::npos) {
        size_t end = r.out.find('\n', at);
        env += r.out.substr(at, end - at) + ";";
        at = end;
    }
    ASSERT_STR(env, "env.ONLY=this;");
    /* Without PATH, COMMAND is searched in the default path. */
    r = run({"--clear-env", "true"});
    g_assert_cmpint(r.status, ==, 0);
}

void test_setsid() {
    Result r = run({inspect_path()});
    std::string pid = value_of(r.out, "pid");
    g_assert_true(value_of(r.out, "sid") != pid);
    r = run({"--setsid", inspect_path()});
    g_assert_cmpint(r.status, ==, 0);
    pid = value_of(r.out, "pid");
    ASSERT_STR(value_of(r.out, "sid"), pid);
    ASSERT_STR(value_of(r.out, "pgid"), pid);
}

/* (Not RLIMIT_NOFILE, whose hard limit valgrind does not let the child
 * of the fork path change.) */
void test_rlimit() {
    std::string msgqueue = "rlimit." + std::to_string(RLIMIT_MSGQUEUE);
    std::string core = "rlimit." + std::to_string(RLIMIT_CORE);
    Result r = run({"--rlimit=msgqueue=100:200", "--rlimit=CORE=0", inspect_path()});
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, msgqueue.c_str()), "100:200");
    ASSERT_STR(value_of(r.out, core.c_str()), "0:0");
    r = run({"--rlimit=RLIMIT_MSGQUEUE=64", inspect_path()});
    ASSERT_STR(value_of(r.out, msgqueue.c_str()), "64:64");
    /* A hard limit above ours: only a privileged caller may raise it. */
    struct rlimit mine;
    g_assert_cmpint(getrlimit(RLIMIT_MSGQUEUE, &mine), ==, 0);
    if (mine.rlim_max != RLIM_INFINITY && geteuid() != 0) {
        r = run({"--rlimit=msgqueue=infinity", inspect_path()});
        g_assert_cmpint(r.status, ==, 125);
        ASSERT_STR(r.err, run_error("setrlimit msgqueue=infinity: Operation not permitted"));
    }
}

/* --uid and --gid: another user gets that user's groups. As root only. */
void test_ids() {
    if (geteuid() != 0) {
        /* The caller's own ids are allowed to anyone, and change nothing. */
        std::string uid = std::to_string(getuid());
        Result r = run({"--uid=" + uid, inspect_path()});
        g_assert_cmpint(r.status, ==, 0);
        ASSERT_STR(value_of(r.out, "uid"), uid + ":" + uid + ":" + uid);
        g_test_skip("changing to other ids needs root");
        return;
    }
    const struct passwd *pw = getpwnam("nobody");
    if (!pw) {
        g_test_skip("no user nobody");
        return;
    }
    std::string uid = std::to_string(pw->pw_uid), gid = std::to_string(pw->pw_gid);
    std::vector<gid_t> groups(64);
    int n = static_cast<int>(groups.size());
    g_assert_cmpint(getgrouplist("nobody", pw->pw_gid, groups.data(), &n), >=, 0);
    std::string group_list;
    for (int i = 0; i < n; i++) group_list += (i ? "," : "") + std::to_string(groups[i]);

    Result r = run({"--uid=nobody", inspect_path()});
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, "uid"), uid + ":" + uid + ":" + uid);
    ASSERT_STR(value_of(r.out, "gid"), gid + ":" + gid + ":" + gid);
    ASSERT_STR(value_of(r.out, "groups"), group_list);

    /* By number, and with a group of its own. */
    r = run({"--uid=" + uid, "--gid=12345", inspect_path()});
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, "gid"), "12345:12345:12345");
    /* A uid without a user: no supplementary groups. */
    r = run({"--uid=54321", inspect_path()});
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, "uid"), "54321:54321:54321");
    ASSERT_STR(value_of(r.out, "groups"), "");
    /* --gid alone leaves the groups. */
    r = run({"--gid=12345", inspect_path()});
    ASSERT_STR(value_of(r.out, "gid"), "12345:12345:12345");
    ASSERT_STR(value_of(r.out, "uid"), "0:0:0");
}

void test_no_new_privs() {
    Result r = run({inspect_path()});
    ASSERT_STR(value_of(r.out, "no_new_privs"), "0");
    r = run({"--no-new-privs", inspect_path()});
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, "no_new_privs"), "1");
}

void test_pdeathsig() {
    Result r = run({"--pdeathsig=SIGUSR2", inspect_path()});
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, "pdeathsig"), std::to_string(SIGUSR2));
    r = run({"--pdeathsig=term", inspect_path()});
    ASSERT_STR(value_of(r.out, "pdeathsig"), std::to_string(SIGTERM));
    r = run({"--pdeathsig=9", inspect_path()});
    ASSERT_STR(value_of(r.out, "pdeathsig"), "9");
}

/* The cgroup v2 directory of this process, or "" where there is none that
 * it may create a child in. */
std::string own_cgroup_dir() {
    std::string mount, path;
    gchar *text = nullptr;
    if (g_file_get_contents("/proc/self/mountinfo", &text, nullptr, nullptr)) {
        gchar **lines = g_strsplit(text, "\n", -1);
        for (gchar **l = lines; *l && mount.empty(); l++) {
            gchar **f = g_strsplit(*l, " ", -1);
            guint n = g_strv_length(f);
            for (guint i = 0; i + 1 < n; i++)
                if (strcmp(f[i], "-") == 0 && strcmp(f[i + 1], "cgroup2") == 0) mount = f[4];
            g_strfreev(f);
        }
        g_strfreev(lines);
        g_free(text);
    }
    if (mount.empty() || !g_file_get_contents("/proc/self/cgroup", &text, nullptr, nullptr))
        return "";
    const char *line = strstr(text, "0::");
    if (line && (line == text || line[-1] == '\n')) {
        const char *end = strchr(line, '\n');
        path = std::string(line + 3, end ? static_cast<size_t>(end - line - 3) : strlen(line + 3));
    }
    g_free(text);
    return path.empty() ? "" : mount + (path == "/" ? "" : path);
}

void test_cgroup() {
    /* Not a directory: ipcbarrier-run's own step. */
    Result r = run({"--cgroup=/nonexistent/ipcbarrier-cg", "true"});
    g_assert_cmpint(r.status, ==, 125);
    ASSERT_STR(r.err, run_error("cgroup /nonexistent/ipcbarrier-cg: No such file or directory"));
    /* A directory that is no cgroup: the child's step. */
    TempDir dir;
    r = run({"--cgroup=" + dir.path(), "true"});
    g_assert_cmpint(r.status, ==, 125);
    ASSERT_STR(r.err, run_error("cgroup " + dir.path() + ": No such file or directory"));

    std::string parent = own_cgroup_dir();
    std::string cgroup = parent + "/ipcbarrier-test-run-" + std::to_string(getpid());
    if (parent.empty() || mkdir(cgroup.c_str(), 0755) < 0) {
        g_test_message("no cgroup v2 directory to create one in: %s", strerror(errno));
        return;
    }
    r = run({"--cgroup=" + cgroup, "cat", "/proc/self/cgroup"});
    g_assert_cmpint(rmdir(cgroup.c_str()), ==, 0);
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_CONTAINS(r.out, "0::/" + cgroup.substr(cgroup.rfind('/') + 1));
}

/* Fds: COMMAND gets 0-2 only, whatever the caller has open, unless it
 * asks for more with --fd or --keep-fds. */
void test_fds() {
    Pipe extra;
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &extra));
    /* The caller of ipcbarrier-run passes it two fds of its own, 5 and
     * 6, inheritable. */
    Result r = run_cmd({inspect_path()})
                   .map_fd(5, extra.read_end.get())
                   .map_fd(6, extra.write_end.get())
                   .run();
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, "fds"), "0,1,2");

    r = run_cmd({"--keep-fds", inspect_path()})
            .map_fd(5, extra.read_end.get())
            .map_fd(6, extra.write_end.get())
            .run();
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(value_of(r.out, "fds"), "0,1,2,5,6");

    /* With --ready, the barrier's three fds besides, and nothing else.
     * COMMAND outlives ipcbarrier-run: its output is complete once it has
     * been reaped, by the test as the subreaper. */
    TempDir dir;
    std::string pidfile = dir.file("command.pid");
    Invocation ready = run_cmd({"--ready", "--pidfile=" + pidfile, "sh", "-c",
                                "\"$IPCBARRIER_NOTIFY\" --ready && exec \"$0\"", inspect_path()});
    ready.map_fd(5, extra.read_end.get()).map_fd(6, extra.write_end.get()).start();
    r = ready.finish();
    g_assert_cmpint(r.status, ==, 0);
    g_assert_cmpint(wait_exit_status(atoi(read_file(pidfile).c_str())), ==, 0);
    r = ready.finish_output();
    std::string fds = value_of(r.out, "fds");
    if (!g_regex_match_simple("^0,1,2,[0-9]+,[0-9]+,[0-9]+$", fds.c_str(), G_REGEX_DEFAULT,
                              G_REGEX_MATCH_DEFAULT) ||
        fds.find(",5,") != std::string::npos || fds.find(",6,") != std::string::npos)
        g_error("fds of a --ready COMMAND: %s", fds.c_str());
    g_test_message("fds of a --ready COMMAND: %s", fds.c_str());

    /* --fd: under a number of its own; swapping stdout and stderr. */
    r = run_cmd({"--fd=9=5", "--fd=1=2", "--fd=2=1", inspect_path()})
            .map_fd(5, extra.read_end.get())
            .map_fd(6, extra.write_end.get())
            .run();
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(r.out, "");
    ASSERT_STR(value_of(r.err, "fds"), "0,1,2,9");
    assert_no_children();
}

/* --pidfile: COMMAND finds its pid there (the file exists before it runs),
 * and the file is gone once ipcbarrier-run has seen it end. */
void test_pidfile() {
    TempDir dir;
    std::string pidfile = dir.file("command.pid");
    const char *check =
        "[ \"$(cat \"$0\")\" = \"$$\" ] || { echo \"pid file $0: $(cat \"$0\"), pid $$\" >&2; exit "
        "1; }"
        "; ls \"${0%/*}\"";
    Result r = run({"--pidfile=" + pidfile, "--verbose", "sh", "-c", check, pidfile});
    g_assert_cmpint(r.status, ==, 0);
    /* Nothing but the pid file was in the directory: no temporary left. */
    ASSERT_STR(r.out, "command.pid\n");
    g_assert_false(file_exists(pidfile));
    ASSERT_STR(dir.list(), "");
    std::vector<std::string> events = timeline_events(r.err);
    g_assert_cmpuint(events.size(), ==, 7);
    g_assert_true(g_str_has_prefix(events[0].c_str(), "spawned pid "));
    ASSERT_STR(events[1], "parent setup done: wrote pid file " + pidfile);
    ASSERT_STR(events[2], "child setup done");
    ASSERT_STR(events[3], "synced");
    g_assert_true(g_str_has_prefix(events[4].c_str(), "executed sh, pid "));
    ASSERT_STR(events[5], "exited with status 0");
    ASSERT_STR(events[6], "removed pid file " + pidfile);

    /* A pid file that names another process by then stays. */
    r = run({"--pidfile=" + pidfile, "sh", "-c", "echo 1 >\"$0\"", pidfile});
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(read_file(pidfile), "1\n");
    g_assert_cmpint(unlink(pidfile.c_str()), ==, 0);

    /* The start fails in the child after the pid file was written: the
     * file goes. */
    r = run({"--pidfile=" + pidfile, "--chdir=/nonexistent/ipcbarrier-test-dir", "true"});
    g_assert_cmpint(r.status, ==, 125);
    g_assert_false(file_exists(pidfile));
    ASSERT_STR(dir.list(), "");
    assert_no_children();
}

void test_pidfile_fails() {
    Result r = run({"--pidfile=/nonexistent/ipcbarrier-test.pid", inspect_path()});
    g_assert_cmpint(r.status, ==, 125);
    ASSERT_STR(r.err,
               run_error("pid file /nonexistent/ipcbarrier-test.pid: No such file or directory"));
    /* COMMAND never ran. */
    ASSERT_STR(r.out, "");
    assert_no_children();
}

/* --setup-timeout: the child is stuck in a step (its "cgroup" is a
 * directory whose cgroup.procs is a FIFO nobody reads, so opening it never
 * returns) and the start fails with 125 once the time is up. */
void test_setup_timeout() {
    TempDir dir;
    std::string fifo = dir.file("cgroup.procs");
    g_assert_cmpint(mkfifo(fifo.c_str(), 0600), ==, 0);
    /* Long enough for the child to get there, under valgrind too. */
    std::string timeout = TEST_UNDER_VALGRIND() ? "3s" : "100ms";
    Result r = run({"--setup-timeout=" + timeout, "--cgroup=" + dir.path(), inspect_path()});
    g_assert_cmpint(r.status, ==, 125);
    ASSERT_STR(r.err,
               run_error("cgroup " + dir.path() + ": --setup-timeout=" + timeout + " expired"));
    ASSERT_STR(r.out, "");
    assert_no_children();
}

/* --method: each path starts COMMAND the same way. */
void test_method() {
    for (const char *method : {"auto", "vfork", "fork", "trampoline"}) {
        Result r = run({std::string("--method=") + method, "--verbose", inspect_path(), "x"});
        /* The trampoline path is the library's to have or not. */
        if (strcmp(method, "trampoline") == 0 && r.status == 125) {
            ASSERT_STR(r.err, run_error("prepare --method=trampoline: Operation not supported"));
            continue;
        }
        g_assert_cmpint(r.status, ==, 0);
        ASSERT_STR(value_of(r.out, "argv"), std::string(inspect_path()) + "\x1fx");
        ASSERT_STR(value_of(r.out, "fds"), "0,1,2");
        std::vector<std::string> events = timeline_events(r.err);
        /* The paths that meet the parent tell of the meeting; the vfork
         * path (auto's here, without --pidfile or --ready) has none. */
        bool meets = strcmp(method, "fork") == 0 || strcmp(method, "trampoline") == 0;
        g_assert_cmpuint(events.size(), ==, meets ? 6 : 3);
        std::string pid = value_of(r.out, "pid");
        ASSERT_STR(events[0], "spawned pid " + pid);
        if (meets) {
            ASSERT_STR(events[1], "parent setup done");
            ASSERT_STR(events[2], "child setup done");
            ASSERT_STR(events[3], "synced");
        }
        ASSERT_STR(events[meets ? 4 : 1],
                   std::string("executed ") + inspect_path() + ", pid " + pid);
        ASSERT_STR(events.back(), "exited with status 0");
    }
    assert_no_children();
}

/* Readiness */

/* The script signals readiness and serves until its stdin closes:
 * ipcbarrier-run exits 0 while it runs, its pid file stays; the script
 * (our child now, as the subreaper) then ends as told. */
void test_ready() {
    TempDir dir;
    std::string pidfile = dir.file("daemon.pid");
    Pipe in;
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &in));
    Result r = run_cmd({"--ready", "--verbose", "--pidfile=" + pidfile, "--", "sh", "-c",
                        "\"$IPCBARRIER_NOTIFY\" --ready || exit 9; read line; exit 4"})
                   .stdin_from(in.read_end.get())
                   .run();
    g_assert_cmpint(r.status, ==, 0);
    /* It runs on, under the pid it was given. */
    std::string pid_text = read_file(pidfile);
    pid_t pid = atoi(pid_text.c_str());
    g_assert_cmpint(pid, >, 0);
    ASSERT_STR(pid_text, std::to_string(pid) + "\n");
    /* The whole timeline, each side's setup and the meeting included. */
    std::vector<std::string> events = timeline_events(r.err);
    g_assert_cmpuint(events.size(), ==, 6);
    ASSERT_STR(events[0], "spawned pid " + std::to_string(pid));
    ASSERT_STR(events[1], "parent setup done: wrote pid file " + pidfile);
    ASSERT_STR(events[2], "child setup done");
    ASSERT_STR(events[3], "synced");
    ASSERT_STR(events[4], "executed sh, pid " + std::to_string(pid));
    ASSERT_STR(events[5], "ready");
    siginfo_t si;
    memset(&si, 0, sizeof si);
    g_assert_cmpint(waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT), ==, 0);
    g_assert_cmpint(si.si_pid, ==, 0);
    in.write_end.reset();
    g_assert_cmpint(wait_exit_status(pid), ==, 4);
    assert_no_children();
}

/* COMMAND ends before it is ready: its status, and a message with it. */
void test_ready_exits_first() {
    TempDir dir;
    std::string pidfile = dir.file("daemon.pid");
    Result r = run({"--ready", "--pidfile=" + pidfile, "sh", "-c", "exit 78"});
    g_assert_cmpint(r.status, ==, 78);
    ASSERT_STR(r.err, run_error("ready: sh exited with status 78 before it was ready"));
    g_assert_false(file_exists(pidfile));

    /* Status 0 is a failure to start all the same. */
    r = run({"--ready", "true"});
    g_assert_cmpint(r.status, ==, 125);
    ASSERT_STR(r.err, run_error("ready: true exited with status 0 before it was ready"));

    r = run({"--ready", "sh", "-c", "kill -TERM $$"});
    g_assert_cmpint(r.status, ==, 128 + SIGTERM);
    ASSERT_STR(r.err, run_error("ready: sh was killed by signal 15 (TERM) before it was ready"));
    assert_no_children();
}

/* COMMAND aborts its barrier with a reason, and exits. */
void test_ready_aborted() {
    Result r = run({"--ready", "--verbose", helper_path(), "ready-abort", std::to_string(EACCES)});
    g_assert_cmpint(r.status, ==, 3);
    std::vector<std::string> events = timeline_events(r.err);
    ASSERT_STR(events.back() + "\n", run_error(std::string("ready: ") + helper_path() +
                                               " exited with status 3 before it was ready "
                                               "(Permission denied)"));
    ASSERT_STR(events[events.size() - 3],
               "the barrier was closed without readiness: Permission denied");
    assert_no_children();
}

/* --ready-timeout: COMMAND, which never gets ready, is terminated, and
 * ipcbarrier-run exits 124 once it has ended. */
void test_ready_timeout() {
    TempDir dir;
    std::string pidfile = dir.file("daemon.pid");
    Pipe in;
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &in));
    Result r = run_cmd({"--ready", "--ready-timeout=100ms", "--verbose", "--pidfile=" + pidfile,
                        "sh", "-c", "read line"})
                   .stdin_from(in.read_end.get())
                   .run();
    g_assert_cmpint(r.status, ==, 124);
    std::vector<std::string> events = timeline_events(r.err);
    g_assert_cmpuint(events.size(), ==, 9);
    ASSERT_STR(events[5] + "\n",
               run_error("ready: sh is not ready after --ready-timeout=100ms; terminating it"));
    ASSERT_STR(events[6], "sent SIGTERM");
    ASSERT_STR(events[7], "was killed by signal 15 (TERM)");
    ASSERT_STR(events[8], "removed pid file " + pidfile);
    g_assert_false(file_exists(pidfile));
    assert_no_children();
}

/* Under --setsid the termination reaches COMMAND's whole process group:
 * here a child it started, which becomes ours once COMMAND is gone. */
void test_ready_timeout_group() {
    Pipe report;
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &report));
    Invocation inv = run_cmd({"--ready", "--ready-timeout=100ms", "--setsid", "--fd=3=3", "sh",
                              "-c", "sleep 1000 & echo $! >&3; wait"});
    inv.map_fd(3, report.write_end.get()).start();
    report.write_end.reset();
    Result r = inv.finish();
    g_assert_cmpint(r.status, ==, 124);
    std::string sleeper = read_to_eof(report.read_end.get());
    if (sleeper.empty()) {
        g_test_message("the time ran out before the script started its child");
    } else {
        g_assert_cmpint(wait_exit_status(atoi(sleeper.c_str())), ==, 128 + SIGTERM);
    }
    assert_no_children();
}

/* Signals */

/* Each forwarded signal reaches COMMAND, which reports them once it has
 * the last one, TERM; ipcbarrier-run exits with its status. */
void test_forward_signals() {
    for (bool group : {false, true}) {
        Pipe handshake;
        ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &handshake));
        std::vector<std::string> args = {"--verbose", "--fd=3=3"};
        if (group) args.push_back("--setsid");
        for (const char *a : {helper_path(), "sigwait"}) args.emplace_back(a);
        /* With --setsid the one that waits is COMMAND's child, which only
         * a signal to the process group reaches. */
        if (group) args.emplace_back("--fork");
        for (const char *a : {"HUP", "INT", "QUIT", "USR1", "USR2", "TERM"}) args.emplace_back(a);
        Invocation inv = run_cmd(args);
        inv.map_fd(3, handshake.write_end.get()).start();
        handshake.write_end.reset();
        g_assert_cmpint(read_byte(handshake.read_end.get()), ==, 'r');
        for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM})
            g_assert_cmpint(kill(inv.pid(), sig), ==, 0);
        Result r = inv.finish();
        g_assert_cmpint(r.status, ==, 0);
        ASSERT_STR(r.out, "HUP INT QUIT USR1 USR2 TERM\n");
        ASSERT_CONTAINS(
            r.err, group ? "forwarded SIGTERM to process group " : "forwarded SIGTERM to pid ");
    }
    assert_no_children();
}

/* A forwarded SIGTERM ends a COMMAND that does not handle it: 128+15. */
void test_forward_terminates() {
    Pipe handshake, in;
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &handshake));
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &in));
    Invocation inv = run_cmd({"--fd=3=3", "sh", "-c", "echo r >&3; read line"});
    inv.map_fd(3, handshake.write_end.get()).stdin_from(in.read_end.get()).start();
    handshake.write_end.reset();
    in.read_end.reset();
    g_assert_cmpint(read_byte(handshake.read_end.get()), ==, 'r');
    g_assert_cmpint(kill(inv.pid(), SIGTERM), ==, 0);
    Result r = inv.finish();
    g_assert_cmpint(r.status, ==, 128 + SIGTERM);
    ASSERT_STR(r.err, "");
    assert_no_children();
}

/* A signal that was ignored when ipcbarrier-run started is not forwarded
 * (nohup): COMMAND gets TERM only. */
void test_ignored_not_forwarded() {
    Pipe handshake;
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &handshake));
    struct sigaction ignore = {}, old;
    ignore.sa_handler = SIG_IGN;
    g_assert_cmpint(sigaction(SIGHUP, &ignore, &old), ==, 0);
    Invocation inv = run_cmd({"--fd=3=3", helper_path(), "sigwait", "HUP", "TERM"});
    inv.map_fd(3, handshake.write_end.get()).keep_signals().start();
    g_assert_cmpint(sigaction(SIGHUP, &old, nullptr), ==, 0);
    handshake.write_end.reset();
    g_assert_cmpint(read_byte(handshake.read_end.get()), ==, 'r');
    g_assert_cmpint(kill(inv.pid(), SIGHUP), ==, 0);
    g_assert_cmpint(kill(inv.pid(), SIGTERM), ==, 0);
    Result r = inv.finish();
    g_assert_cmpint(r.status, ==, 0);
    ASSERT_STR(r.out, "TERM\n");
    assert_no_children();
}

/* SIGINT from the terminal: the kernel sends it to the whole foreground
 * process group, COMMAND included, so ipcbarrier-run does not send it a
 * second time. ipcbarrier-run leads a session on a pseudo-terminal here,
 * and COMMAND, in its process group, reports each signal as it gets it.
 * ipcbarrier-run is stopped while COMMAND takes the terminal's SIGINT, so
 * that a second one could not merge with it, still pending; then it goes
 * on, and a SIGTERM is sent to it, which it forwards. A second SIGINT
 * would come before that TERM: ipcbarrier-run reads the lower signal
 * first. */
void test_terminal_sigint() {
    UniqueFd master(posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master) {
        g_test_skip("no pseudo-terminal");
        return;
    }
    g_assert_cmpint(grantpt(master.get()), ==, 0);
    g_assert_cmpint(unlockpt(master.get()), ==, 0);
    char pts[64];
    g_assert_cmpint(ptsname_r(master.get(), pts, sizeof pts), ==, 0);
    Pipe out, handshake;
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &out));
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &handshake));
    const char *argv[] = {run_path(), "--fd=3=3", helper_path(), "sigwait", "INT", "TERM", nullptr};

    pid_t pid = fork_test_child();
    if (pid == 0) {
        CHILD_ASSERT(setsid() > 0);
        /* The first terminal a session leader opens becomes its
         * controlling terminal, with its process group in the
         * foreground. */
        int tty = open(pts, O_RDWR | O_CLOEXEC);
        CHILD_ASSERT(tty >= 0);
        CHILD_ASSERT(dup2(out.write_end.get(), STDOUT_FILENO) == STDOUT_FILENO);
        CHILD_ASSERT(dup2(handshake.write_end.get(), 3) == 3);
        execv(argv[0], const_cast<char *const *>(argv));
        child_fail("execv ipcbarrier-run failed");
    }
    out.write_end.reset();
    handshake.write_end.reset();
    g_assert_cmpint(read_byte(handshake.read_end.get()), ==, 'r');
    g_assert_cmpint(kill(pid, SIGSTOP), ==, 0);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    g_assert_cmpint(waitid(P_PID, static_cast<id_t>(pid), &si, WSTOPPED), ==, 0);
    /* ^C */
    g_assert_cmpint(write(master.get(), "\x03", 1), ==, 1);
    std::string got;
    while (got.find("INT") == std::string::npos) got += read_byte(out.read_end.get());
    g_assert_cmpint(kill(pid, SIGCONT), ==, 0);
    g_assert_cmpint(kill(pid, SIGTERM), ==, 0);
    got += read_to_eof(out.read_end.get());
    ASSERT_STR(got, "INT TERM\n");
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    assert_no_children();
}

/* ipcbarrier-notify */

const char NOTIFY_NO_RECORD[] =
    "ipcbarrier-notify: no barrier: $IPCBARRIER is not set (start the script with "
    "ipcbarrier-run --ready)\n";

void test_notify_no_record() {
    Result r = notify_cmd({"--ready"}).run();
    g_assert_cmpint(r.status, ==, 1);
    ASSERT_STR(r.err, NOTIFY_NO_RECORD);
    r = notify_cmd({"--wait"}).run();
    g_assert_cmpint(r.status, ==, 1);
    ASSERT_STR(r.err, NOTIFY_NO_RECORD);
    r = notify_cmd({"--ready"}).env("IPCBARRIER=ipcbarrier2 nonsense").run();
    g_assert_cmpint(r.status, ==, 1);
    ASSERT_STR(r.err, "ipcbarrier-notify: $IPCBARRIER does not hold a barrier record\n");
}

void test_notify_usage() {
    const std::vector<std::pair<std::vector<std::string>, const char *>> cases = {
        {{}, "nothing to do: give --ready or --wait (see --help)"},
        {{"--timeout=1s", "--ready"}, "--timeout needs --wait"},
        {{"--wait", "--timeout=soon"},
         "--timeout=soon: not a duration (such as 0.5, 250ms, 2s, 1min)"},
        {{"--wait", "--timeout"}, "option --timeout needs a value (see --help)"},
        {{"--ready=1"}, "option --ready takes no value (see --help)"},
        {{"--bogus"}, "unknown option --bogus (see --help)"},
        {{"--ready", "extra"}, "unexpected argument extra (see --help)"},
    };
    for (const auto &[args, message] : cases) {
        Result r = notify_cmd(args).run();
        g_assert_cmpint(r.status, ==, 2);
        ASSERT_STR(r.err, std::string("ipcbarrier-notify: ") + message + "\n");
    }
}

/* A script started with IPCB_SPAWN_READY by the test, which holds the
 * other side: the script's stdout is a pipe the test reads. */
struct Script {
    explicit Script(const char *script) {
        ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &out));
        const char *argv[] = {"sh", "-c", script, nullptr};
        IpcbSpawnFd fds[] = {{0, -1}, {1, out.write_end.get()}, {2, 2}};
        IpcbSpawnOptions options = {
            .argv = argv,
            .fds = fds,
            .n_fds = 3,
            .flags = IPCB_SPAWN_READY,
        };
        ASSERT_OK(ipcbarrier::Process::spawn(options, &process));
        out.write_end.reset();
    }
    int wait_exit() {
        siginfo_t si;
        ASSERT_OK(process.wait_for(std::chrono::milliseconds(watchdog_ms()), &si));
        return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
    }
    Pipe out;
    ipcbarrier::Process process;
};

/* --ready from a script places the point the test waits for; --wait
 * waits for the test's; the script goes on with the barrier after each. */
void test_notify_ready_and_wait() {
    Script s(
        "\"$IPCBARRIER_NOTIFY\" --ready || exit 10; "
        "\"$IPCBARRIER_NOTIFY\" --wait || exit 11; "
        "\"$IPCBARRIER_NOTIFY\" --wait --timeout=20ms 2>&1; echo \"timeout $?\"; "
        "\"$IPCBARRIER_NOTIFY\" --ready || exit 12; "
        "\"$IPCBARRIER_NOTIFY\" --wait 2>&1; echo \"gone $?\"");
    ASSERT_RET(barrier_wait_next_timeout(s.process.barrier(), watchdog_usec()), 1);
    g_assert_true(barrier_place(s.process.barrier()));
    /* The script's --wait with a timeout runs out before the next point:
     * it only comes after the script's next --ready. */
    ASSERT_RET(barrier_wait_next_timeout(s.process.barrier(), watchdog_usec()), 1);
    barrier_destroy(s.process.barrier());
    std::string out = read_to_eof(s.out.read_end.get());
    ASSERT_STR(out,
               "ipcbarrier-notify: wait: no sync point after --timeout=20ms\n"
               "timeout 124\n"
               "ipcbarrier-notify: wait: the other side has given up or gone away\n"
               "gone 1\n");
    g_assert_cmpint(s.wait_exit(), ==, 0);
    assert_no_children();
}

/* The record is meant for the script: a grandchild of it cannot use it,
 * and one that the script execs in its place can. */
void test_notify_owner() {
    {
        Script s("sh -c '\"$IPCBARRIER_NOTIFY\" --ready; exit $?' 2>&1; echo \"status $?\"");
        std::string out = read_to_eof(s.out.read_end.get());
        ASSERT_STR(out,
                   "ipcbarrier-notify: the barrier in $IPCBARRIER is not meant for this program's "
                   "parent (call ipcbarrier-notify from the script that was started with it)\n"
                   "status 1\n");
        g_assert_cmpint(s.wait_exit(), ==, 0);
        ASSERT_RET(barrier_wait_next_timeout(s.process.barrier(), 0), 0);
    }
    {
        Script s("exec \"$IPCBARRIER_NOTIFY\" --ready");
        ASSERT_RET(barrier_wait_next_timeout(s.process.barrier(), watchdog_usec()), 1);
        g_assert_cmpint(s.wait_exit(), ==, 0);
    }
    assert_no_children();
}

/* The parsers of the option values */

void test_parse_duration() {
    const std::pair<const char *, uint64_t> good[] = {
        {"0", 0},
        {"1", 1000000},
        {"0.3", 300000},
        {".5", 500000},
        {"250ms", 250000},
        {"250msec", 250000},
        {"2s", 2000000},
        {"2sec", 2000000},
        {"1min", 60000000},
        {"1.5min", 90000000},
        {"1h", 3600000000},
        {"7us", 7},
        {"7usec", 7},
        {"0.0000001", 1},
        {"1.0000001s", 1000001},
        {"0.5us", 1},
        {"0.000000000000000000000001h", 1},
        {"0.000", 0},
        {"18446744073709.551614s", UINT64_MAX - 1},
    };
    for (const auto &[text, usec] : good) {
        uint64_t got = 12345;
        ASSERT_OK(ipcbarrier::run::parse_duration(text, &got));
        if (got != usec) g_error("parse_duration(\"%s\") = %" G_GUINT64_FORMAT, text, got);
    }
    for (const char *text :
         {"", "s", ".", "1.", "-1", "+1", "1 s", "1m", "1d", "1.2.3", "1e3", "0x1", "1S", "١"}) {
        uint64_t got = 12345;
        ASSERT_RET(ipcbarrier::run::parse_duration(text, &got), -EINVAL);
        g_assert_cmpuint(got, ==, 12345);
    }
    for (const char *text : {"18446744073709.551615s", "99999999999999999999999", "5124096000h"}) {
        uint64_t got = 12345;
        ASSERT_RET(ipcbarrier::run::parse_duration(text, &got), -ERANGE);
    }
}

void test_parse_values() {
    int sig = 0;
    ASSERT_OK(ipcbarrier::run::parse_signal("TERM", &sig));
    g_assert_cmpint(sig, ==, SIGTERM);
    ASSERT_OK(ipcbarrier::run::parse_signal("sigkill", &sig));
    g_assert_cmpint(sig, ==, SIGKILL);
    ASSERT_OK(ipcbarrier::run::parse_signal("10", &sig));
    g_assert_cmpint(sig, ==, 10);
    for (const char *bad : {"", "SIG", "0", "65", "TERMX", "-1"})
        ASSERT_RET(ipcbarrier::run::parse_signal(bad, &sig), -EINVAL);
    g_assert_cmpstr(ipcbarrier::run::signal_name(SIGUSR1), ==, "USR1");

    mode_t mode = 0;
    ASSERT_OK(ipcbarrier::run::parse_mode("0750", &mode));
    g_assert_cmpuint(mode, ==, 0750);
    for (const char *bad : {"", "8", "1000", "00000", "-1", "0o7"})
        ASSERT_RET(ipcbarrier::run::parse_mode(bad, &mode), -EINVAL);

    IpcbSpawnFd fd = {};
    ASSERT_OK(ipcbarrier::run::parse_fd_mapping("3=10", &fd));
    g_assert_cmpint(fd.child_fd, ==, 3);
    g_assert_cmpint(fd.parent_fd, ==, 10);
    for (const char *bad : {"", "3", "=3", "3=", "a=1", "3=4=5", "3=2147483648"})
        ASSERT_RET(ipcbarrier::run::parse_fd_mapping(bad, &fd), -EINVAL);

    IpcbSpawnRlimit limit = {};
    ASSERT_OK(ipcbarrier::run::parse_rlimit("NoFile=10:infinity", &limit));
    g_assert_cmpint(limit.resource, ==, RLIMIT_NOFILE);
    g_assert_cmpuint(limit.limit.rlim_cur, ==, 10);
    g_assert_true(limit.limit.rlim_max == RLIM_INFINITY);
    ASSERT_OK(ipcbarrier::run::parse_rlimit("RLIMIT_CORE=unlimited", &limit));
    g_assert_cmpint(limit.resource, ==, RLIMIT_CORE);
    g_assert_true(limit.limit.rlim_cur == RLIM_INFINITY && limit.limit.rlim_max == RLIM_INFINITY);
    for (const char *bad : {"", "nofile", "nofile=", "nofile=:1", "nofile=2:1", "nofile=infinity:1",
                            "x=1", "nofile=1:2:3", "nofile=-1"})
        ASSERT_RET(ipcbarrier::run::parse_rlimit(bad, &limit), -EINVAL);
}

}  // namespace

int main(int argc, char **argv) {
    g_test_init(&argc, &argv, nullptr);
    for (const char *path : {run_path(), notify_path(), inspect_path(), helper_path()}) (void)path;
    /* Orphans (a COMMAND that outlives ipcbarrier-run) become ours. */
    g_assert_cmpint(prctl(PR_SET_CHILD_SUBREAPER, 1), ==, 0);

    test_add_fd_checked("/run/help", test_help);
    test_add_fd_checked("/run/version", test_version);
    test_add_fd_checked("/run/usage-errors", test_usage_errors);
    test_add_fd_checked("/run/durations", test_durations);
    test_add_fd_checked("/run/status-exit", test_status_exit);
    test_add_fd_checked("/run/status-signal", test_status_signal);
    test_add_fd_checked("/run/status-not-found", test_status_not_found);
    test_add_fd_checked("/run/status-cannot-execute", test_status_cannot_execute);
    test_add_fd_checked("/run/status-setup-failed", test_status_setup_failed);
    test_add_fd_checked("/run/chdir", test_chdir);
    test_add_fd_checked("/run/umask", test_umask);
    test_add_fd_checked("/run/env", test_env);
    test_add_fd_checked("/run/clear-env", test_clear_env);
    test_add_fd_checked("/run/setsid", test_setsid);
    test_add_fd_checked("/run/rlimit", test_rlimit);
    test_add_fd_checked("/run/ids", test_ids);
    test_add_fd_checked("/run/no-new-privs", test_no_new_privs);
    test_add_fd_checked("/run/pdeathsig", test_pdeathsig);
    test_add_fd_checked("/run/cgroup", test_cgroup);
    test_add_fd_checked("/run/fds", test_fds);
    test_add_fd_checked("/run/pidfile", test_pidfile);
    test_add_fd_checked("/run/pidfile-fails", test_pidfile_fails);
    test_add_fd_checked("/run/setup-timeout", test_setup_timeout);
    test_add_fd_checked("/run/method", test_method);
    test_add_fd_checked("/run-ready/ready", test_ready);
    test_add_fd_checked("/run-ready/exits-first", test_ready_exits_first);
    test_add_fd_checked("/run-ready/aborted", test_ready_aborted);
    test_add_fd_checked("/run-ready/timeout", test_ready_timeout);
    test_add_fd_checked("/run-ready/timeout-group", test_ready_timeout_group);
    test_add_fd_checked("/run-ready/forward-signals", test_forward_signals);
    test_add_fd_checked("/run-ready/forward-terminates", test_forward_terminates);
    test_add_fd_checked("/run-ready/ignored-not-forwarded", test_ignored_not_forwarded);
    test_add_fd_checked("/run-ready/terminal-sigint", test_terminal_sigint);
    test_add_fd_checked("/notify/no-record", test_notify_no_record);
    test_add_fd_checked("/notify/usage", test_notify_usage);
    test_add_fd_checked("/notify/ready-and-wait", test_notify_ready_and_wait);
    test_add_fd_checked("/notify/owner", test_notify_owner);
    test_add_fd_checked("/run-parse/duration", test_parse_duration);
    test_add_fd_checked("/run-parse/values", test_parse_values);
    return g_test_run();
}
