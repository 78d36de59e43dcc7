/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* spawn: ipcb_spawn() and the process handle through the public API, on
 * the vfork, trampoline and fork paths from one table that says which
 * paths a case applies to: success, the exact step and errno of a failed
 * start, setup failures that abort the other side, readiness, the pre-exec
 * deadline, the progress events, signals, running out of fds at each
 * creation point, and many starts from a parent whose other threads
 * allocate and fork meanwhile.
 * Every case checks that no child of the test is left, zombie or not, and
 * (with test_add_fd_checked()) that no fd is.
 *
 * The program started is spawn-inspect (IPCBARRIER_SPAWN_INSPECT, set by
 * the Meson test environment), which prints what it sees of its process,
 * or a system program where only its life matters. The trampoline path's
 * helper is the build tree's (IPCBARRIER_EXEC_HELPER). The library opens
 * the helper when it is loaded and keeps it open, so the cases about
 * opening the helper run in a fresh process: the test binary executed
 * again with --fresh=CASE. */

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TEST_UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define TEST_UNDER_VALGRIND() false
#endif

#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif
#ifndef TEST_UNDER_ASAN
#define TEST_UNDER_ASAN 0
#endif

#include <ipcbarrier/barrier-event.h>
#include <ipcbarrier/pipe-util.hh>
#include <ipcbarrier/spawn.hh>

#include "test-util.h"

namespace {

using ipcbarrier::Pipe;
using ipcbarrier::PipeMode;
using ipcbarrier::UniqueFd;

/* Stores in *e a value outside its enumerators, as a C caller may (C++
 * cannot make one, nor read one as the enum type). */
template <class E>
void set_enum_bytes(E *e, int v) {
    static_assert(sizeof(E) == sizeof(int));
    memcpy(e, &v, sizeof v);
}

/* g_assert_cmpstr() for strings that may be temporaries (whose c_str()
 * would not outlive the macro's first statement). */
#define ASSERT_STR(a, b)                                           \
    do {                                                           \
        const std::string assert_a_ = (a), assert_b_ = (b);        \
        g_assert_cmpstr(assert_a_.c_str(), ==, assert_b_.c_str()); \
    } while (0)

const char *inspect_path() {
    const char *path = getenv("IPCBARRIER_SPAWN_INSPECT");
    if (!path) g_error("IPCBARRIER_SPAWN_INSPECT is not set: run the tests with meson test");
    return path;
}

const char *helper_path() {
    const char *path = getenv("IPCBARRIER_EXEC_HELPER");
    if (!path) g_error("IPCBARRIER_EXEC_HELPER is not set: run the tests with meson test");
    return path;
}

const char *method_name(IpcbSpawnMethod method) {
    switch (method) {
        case IPCB_METHOD_VFORK:
            return "vfork";
        case IPCB_METHOD_TRAMPOLINE:
            return "trampoline";
        case IPCB_METHOD_FORK:
            return "fork";
        default:
            return "auto";
    }
}

/* Whether this case cannot run here: valgrind cannot run a child that
 * shares the caller's memory (clone(CLONE_VM)), so the library takes the
 * fork path there instead, which the fork cases cover; the ASan/UBSan
 * build covers the vfork path. The trampoline path runs under valgrind as
 * it is (its child shares nothing with the caller but the status page, a
 * MAP_SHARED memfd); valgrind checks the caller's side, and the helper
 * runs natively (valgrind does not follow execve()). */
bool skip_method(IpcbSpawnMethod method) {
    if (method == IPCB_METHOD_VFORK && TEST_UNDER_VALGRIND()) {
        g_test_skip(
            "valgrind cannot run a clone(CLONE_VM|CLONE_VFORK) child: the library takes the fork "
            "path under valgrind; the vfork path is covered by the ASan/UBSan build");
        return true;
    }
    return false;
}

/* pid is not a child of ours any more: it was reaped. */
void assert_reaped(pid_t pid) {
    g_assert_cmpint(pid, >, 0);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    g_assert_cmpint(waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG), ==, -1);
    g_assert_cmpint(errno, ==, ECHILD);
}

/* Everything fd has to give, up to its EOF. */
std::string read_all(int fd) {
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

/* The value of spawn-inspect's line "key=value"; "" (and *found false)
 * if there is no such line. */
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

/* Waits for p (with the watchdog) and wants it to have exited with code. */
void assert_exits(IpcbProcess *p, int code) {
    siginfo_t si;
    ASSERT_OK(ipcb_process_wait(p, watchdog_usec(), &si));
    g_assert_cmpint(si.si_code, ==, CLD_EXITED);
    g_assert_cmpint(si.si_status, ==, code);
    g_assert_cmpint(p->pid, ==, 0);
}

/* Waits for p (with the watchdog) and wants it to have been killed by sig. */
void assert_killed(IpcbProcess *p, int sig) {
    siginfo_t si;
    ASSERT_OK(ipcb_process_wait(p, watchdog_usec(), &si));
    g_assert_cmpint(si.si_code, ==, CLD_KILLED);
    g_assert_cmpint(si.si_status, ==, sig);
}

/* One start under test: the options, with the child's stdin /dev/null,
 * its stdout a pipe the test reads, its stderr the test's, plus the
 * mappings a case adds. */
struct Start {
    explicit Start(IpcbSpawnMethod method) {
        ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &out));
        fds = {{0, -1}, {1, out.write_end.get()}, {2, 2}};
        options.method = method;
    }
    Start(const Start &) = delete;
    Start &operator=(const Start &) = delete;
    ~Start() { ipcb_process_close(&process); }

    void map_fd(int child_fd, int parent_fd) { fds.push_back({child_fd, parent_fd}); }

    /* Starts argv; closes the test's copy of the stdout write end, so that
     * the pipe's EOF comes when the program and all it started are done. */
    int run(std::vector<const char *> argv) {
        argv.push_back(nullptr);
        options.argv = argv.data();
        options.fds = fds.data();
        options.n_fds = fds.size();
        memset(&error, 0x55, sizeof error);
        int r = ipcb_spawn(&options, &process, &error);
        out.write_end.reset();
        return r;
    }

    /* Wants the start to have failed at step with -err, leaving *ret
     * (the process) untouched and no child behind. */
    void assert_failed(int r, IpcbSpawnStep step, int err) {
        if (r < 0) {
            char msg[256];
            (void)ipcb_spawn_error_format(&error, msg, sizeof msg);
            g_test_message("start failed as expected: %s", msg);
        }
        ASSERT_RET(r, -err);
        g_assert_cmpstr(ipcb_spawn_step_to_string(error.step), ==, ipcb_spawn_step_to_string(step));
        g_assert_cmpint(error.error, ==, err);
        g_assert_cmpint(process.pid, ==, 0);
        g_assert_cmpint(process.pidfd, ==, -1);
        assert_no_children();
    }

    /* What the program wrote to its stdout, up to EOF. */
    std::string output() { return read_all(out.read_end.get()); }

    Pipe out;
    std::vector<IpcbSpawnFd> fds;
    IpcbSpawnOptions options = {};
    IpcbProcess process = IPCB_PROCESS_NULL;
    IpcbSpawnError error = {};
};

/* What a parent setup saw of the child, and what it is to do. */
struct ParentSetup {
    pid_t pid = 0;
    int pidfd = -1;
    bool pidfd_worked = false;
    int wait_fd = -1;  /* wait for a byte on it first, if >= 0 */
    int close_fd = -1; /* close it first, if >= 0 */
    int eof_fd = -1;   /* then wait for its EOF, if >= 0 */
    int result = 0;    /* what to return */
    bool kill_child = false;
    bool wait_child_end = false; /* wait until the child has ended (not reaping it) */
    uint64_t block_for_usec = 0; /* counted from the call, which comes after
                                  * the start (and its deadline) began */
    int calls = 0;
    bool child_ended_first = false; /* the child ended before wait_fd's byte came */
};

int parent_setup(const IpcbSpawnChild *child, void *userdata) {
    auto *s = static_cast<ParentSetup *>(userdata);
    const uint64_t until = static_cast<uint64_t>(g_get_monotonic_time()) + s->block_for_usec;
    s->calls++;
    s->pid = child->pid;
    s->pidfd = child->pidfd;
    s->pidfd_worked =
        child->pidfd >= 0 && syscall(SYS_pidfd_send_signal, child->pidfd, 0, nullptr, 0) == 0;
    if (s->wait_fd >= 0) {
        /* The child's end, too: one killed by its deadline before it got
         * to write would leave this waiting for the watchdog. */
        pollfd fds[2] = {{s->wait_fd, POLLIN, 0}, {child->pidfd, POLLIN, 0}};
        g_assert_cmpint(poll(fds, child->pidfd >= 0 ? 2 : 1, watchdog_ms()), >, 0);
        if (!(fds[0].revents & POLLIN)) {
            s->child_ended_first = true;
            return s->result;
        }
        char c;
        g_assert_cmpint(read(s->wait_fd, &c, 1), ==, 1);
    }
    if (s->close_fd >= 0) s->close_fd = ipcbarrier::safe_close(s->close_fd);
    if (s->eof_fd >= 0) ASSERT_STR(read_all(s->eof_fd), "");
    if (s->kill_child) g_assert_cmpint(kill(child->pid, SIGKILL), ==, 0);
    if (s->wait_child_end) {
        siginfo_t si;
        g_assert_cmpint(waitid(P_PID, static_cast<id_t>(child->pid), &si, WEXITED | WNOWAIT), ==,
                        0);
    }
    /* The time it takes: until the deadline has passed, however long the
     * machine takes to get there. */
    while (static_cast<uint64_t>(g_get_monotonic_time()) < until) (void)poll(nullptr, 0, 5);
    return s->result;
}

void use_parent_setup(Start *start, ParentSetup *s) {
    start->options.parent_setup = parent_setup;
    start->options.parent_setup_userdata = s;
}

/* Child callbacks: async-signal-safe, in the fork child. The fd they use
 * is mapped into the child as CALLBACK_FD. */
constexpr int CALLBACK_FD = 3;

int callback_fails(void *) {
    return -EIO;
}

/* Tells the parent it got here, then blocks until killed. */
int callback_blocks(void *) {
    (void)!write(CALLBACK_FD, "c", 1);
    for (;;) pause();
}

/* Starts a grandchild in the child's new process group that holds
 * CALLBACK_FD and blocks; the grandchild tells the parent it exists. */
int callback_forks_and_blocks(void *) {
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) {
        (void)!write(CALLBACK_FD, "g", 1);
        for (;;) pause();
    }
    for (;;) pause();
}

/* Tells the parent it passed its own setup. */
int callback_reports(void *) {
    return write(CALLBACK_FD, "c", 1) == 1 ? 0 : -errno;
}

int callback_reports_nothing(void *) {
    return 0;
}

/* The pre-exec deadline of the cases that let it expire: long enough for
 * any child to reach its callback first, under valgrind too. */
uint64_t short_deadline_usec() {
    return TEST_UNDER_VALGRIND() ? 3 * G_USEC_PER_SEC : 100 * 1000;
}

/* Cases for both paths. */

/* The program runs with the argv given, as our child, and its exit code
 * comes back through ipcb_process_wait(). */
void case_success(IpcbSpawnMethod method) {
    Start start(method);
    ASSERT_OK(start.run({inspect_path(), "--exit=7", "two words", ""}));
    g_assert_cmpint(start.process.pid, >, 0);
    std::string out = start.output();
    ASSERT_STR(value_of(out, "argv"),
               std::string(inspect_path()) + "\x1f--exit=7\x1ftwo words\x1f");
    g_assert_cmpint(atoi(value_of(out, "pid").c_str()), ==, start.process.pid);
    g_assert_cmpint(atoi(value_of(out, "ppid").c_str()), ==, getpid());
    /* Nothing of the start is left in the program: the fds of the barrier
     * and the report pipe were close-on-exec. */
    ASSERT_STR(value_of(out, "fds"), "0,1,2");
    bool found;
    (void)value_of(out, "env.IPCBARRIER", &found);
    g_assert_false(found);
    if (start.process.pidfd >= 0)
        g_assert_cmpint(fcntl(start.process.pidfd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
    assert_exits(&start.process, 7);
    assert_no_children();
}

/* The deadline expires while the child is stuck in a step of its own, on
 * either path (the vfork parent is suspended meanwhile: the child's own
 * timer kills it): -ETIMEDOUT at that step, no sooner than the deadline.
 * The step blocks for real: the "cgroup" is a directory whose cgroup.procs
 * is a FIFO without a reader, whose opening for writing never returns. */
void case_deadline_stuck_in_step(IpcbSpawnMethod method) {
    char *dir = g_dir_make_tmp("test-spawn-XXXXXX", nullptr);
    g_assert_nonnull(dir);
    char *fifo = g_build_filename(dir, "cgroup.procs", nullptr);
    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    UniqueFd cgroup(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    g_assert_true(cgroup);

    Start start(method);
    start.options.flags = IPCB_SPAWN_CGROUP;
    start.options.cgroup_fd = cgroup.get();
    start.options.setup_timeout_usec = short_deadline_usec();
    const uint64_t begin = static_cast<uint64_t>(g_get_monotonic_time());
    int r = start.run({inspect_path()});
    const uint64_t elapsed = static_cast<uint64_t>(g_get_monotonic_time()) - begin;
    start.assert_failed(r, IPCB_STEP_CGROUP, ETIMEDOUT);
    g_assert_cmpuint(elapsed, >=, start.options.setup_timeout_usec);

    g_assert_cmpint(unlink(fifo), ==, 0);
    g_assert_cmpint(rmdir(dir), ==, 0);
    g_free(fifo);
    g_free(dir);
}

void case_exec_enoent(IpcbSpawnMethod method) {
    Start start(method);
    start.options.flags = IPCB_SPAWN_NO_PATH_SEARCH;
    int r = start.run({"/nonexistent/ipcbarrier-test-program"});
    start.assert_failed(r, IPCB_STEP_EXEC, ENOENT);
    ASSERT_STR(start.output(), "");
}

void case_exec_eacces(IpcbSpawnMethod method) {
    /* A file without any x bit: execve() refuses it even to root. */
    gchar *path = nullptr;
    int fd = g_file_open_tmp("ipcbarrier-spawn-XXXXXX", &path, nullptr);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fchmod(fd, 0644), ==, 0);
    close(fd);
    Start start(method);
    int r = start.run({path});
    start.assert_failed(r, IPCB_STEP_EXEC, EACCES);
    ASSERT_STR(start.output(), "");
    g_assert_cmpint(unlink(path), ==, 0);
    g_free(path);
}

void case_path_not_found(IpcbSpawnMethod method) {
    Start start(method);
    int r = start.run({"ipcbarrier-test-no-such-program"});
    start.assert_failed(r, IPCB_STEP_PATH, ENOENT);
}

void case_chdir_fails(IpcbSpawnMethod method) {
    Start start(method);
    start.options.cwd = "/nonexistent/ipcbarrier-test-dir";
    int r = start.run({inspect_path()});
    start.assert_failed(r, IPCB_STEP_CWD, ENOENT);
    ASSERT_STR(start.output(), "");
}

/* cat reads the stdin the test holds, so it lives until the test lets go
 * of it. */
struct LongLived {
    explicit LongLived(Start *start) {
        ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &in));
        start->fds[0].parent_fd = in.read_end.get();
    }
    Pipe in;
};

/* ipcb_process_wait(): a running program is not waited for past the
 * timeout; once it ended it is reaped, pid 0, and -ECHILD after. */
void case_wait_timeout(IpcbSpawnMethod method) {
    Start start(method);
    LongLived cat(&start);
    ASSERT_OK(start.run({"/bin/cat"}));
    cat.in.read_end.reset();
    siginfo_t si;
    ASSERT_RET(ipcb_process_wait(&start.process, 0, &si), -ETIMEDOUT);
    ASSERT_RET(ipcb_process_wait(&start.process, 10 * 1000, &si), -ETIMEDOUT);
    g_assert_cmpint(start.process.pid, >, 0);
    cat.in.write_end.reset();
    assert_exits(&start.process, 0);
    ASSERT_RET(ipcb_process_wait(&start.process, 0, &si), -ECHILD);
    ASSERT_RET(ipcb_process_kill(&start.process, SIGTERM, false), -ESRCH);
    assert_no_children();
}

/* ipcb_process_kill() reaches the program through its pidfd. */
void case_kill(IpcbSpawnMethod method) {
    Start start(method);
    LongLived cat(&start);
    ASSERT_OK(start.run({"/bin/cat"}));
    ASSERT_OK(ipcb_process_kill(&start.process, SIGTERM, false));
    assert_killed(&start.process, SIGTERM);
    ASSERT_RET(ipcb_process_kill(&start.process, SIGTERM, false), -ESRCH);
    assert_no_children();
}

/* With group, the program's process group goes too: a shell and the
 * sleep it started in the background, which holds the stdout pipe. */
void case_kill_group(IpcbSpawnMethod method) {
    Start start(method);
    start.options.flags = IPCB_SPAWN_NEW_PROCESS_GROUP;
    ASSERT_OK(start.run({"/bin/sh", "-c", "sleep 1000 & echo started; wait"}));
    /* The sleep exists once the shell says so. */
    g_assert_true(wait_readable(start.out.read_end.get(), watchdog_ms()));
    char buf[8];
    g_assert_cmpint(read(start.out.read_end.get(), buf, sizeof buf), ==, 8);
    g_assert_cmpint(memcmp(buf, "started\n", 8), ==, 0);
    ASSERT_OK(ipcb_process_kill(&start.process, SIGKILL, true));
    assert_killed(&start.process, SIGKILL);
    /* EOF: the sleep, the last holder of the write end, is gone too. */
    ASSERT_STR(start.output(), "");
    ASSERT_RET(ipcb_process_kill(&start.process, SIGKILL, true), -ESRCH);
    assert_no_children();
}

/* A process-group kill of a program that made no group of its own reaches
 * nobody (and certainly not the test's own group). */
void case_kill_group_without_group(IpcbSpawnMethod method) {
    Start start(method);
    LongLived cat(&start);
    ASSERT_OK(start.run({"/bin/cat"}));
    ASSERT_RET(ipcb_process_kill(&start.process, SIGKILL, true), -ESRCH);
    cat.in.write_end.reset();
    assert_exits(&start.process, 0);
}

/* Cases for the trampoline and fork paths (a parent setup or readiness
 * make AUTO choose the trampoline, a child callback the fork path, and the
 * vfork path refuses them). */

/* The parent setup gets the pid and a working pidfd while the child
 * waits, and the start succeeds after it. */
void case_parent_setup_runs(IpcbSpawnMethod method) {
    Start start(method);
    ParentSetup s;
    use_parent_setup(&start, &s);
    ASSERT_OK(start.run({inspect_path()}));
    g_assert_cmpint(s.calls, ==, 1);
    g_assert_cmpint(s.pid, ==, start.process.pid);
    g_assert_cmpint(s.pidfd, ==, start.process.pidfd);
    if (s.pidfd >= 0) g_assert_true(s.pidfd_worked);
    std::string out = start.output();
    g_assert_cmpint(atoi(value_of(out, "pid").c_str()), ==, s.pid);
    assert_exits(&start.process, 0);
    assert_no_children();
}

/* A failing parent setup aborts the start: the child, which got past its
 * own setup and waits at the barrier, never executes (spawn-inspect would
 * print), and the error is the callback's. On the fork path the child
 * callback says when the child is past its setup; without one, the child
 * shows it by closing the fds it does not pass on, which it does just
 * before it meets the parent: among them an inherited write end, whose
 * EOF the parent setup waits for once it has closed its own copy. */
void case_parent_setup_fails(IpcbSpawnMethod method) {
    Start start(method);
    Pipe reached;
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &reached));
    ParentSetup s;
    if (method == IPCB_METHOD_FORK) {
        start.map_fd(CALLBACK_FD, reached.write_end.get());
        start.options.child_callback = callback_reports;
        s.wait_fd = reached.read_end.get();
    } else {
        ASSERT_OK(fd_set_inheritable(reached.write_end.get()));
        s.close_fd = reached.write_end.release();
        s.eof_fd = reached.read_end.get();
    }
    s.result = -EPERM;
    use_parent_setup(&start, &s);
    int r = start.run({inspect_path()});
    reached.write_end.reset();
    g_assert_cmpint(s.close_fd, ==, -1);
    start.assert_failed(r, IPCB_STEP_PARENT_SETUP, EPERM);
    ASSERT_STR(start.output(), "");
    assert_reaped(s.pid);
}

/* A failing child callback fails the start with its step and errno. */
void case_child_callback_fails(IpcbSpawnMethod method) {
    Start start(method);
    start.options.child_callback = callback_fails;
    ParentSetup s;
    use_parent_setup(&start, &s);
    int r = start.run({inspect_path()});
    start.assert_failed(r, IPCB_STEP_CHILD_CALLBACK, EIO);
    ASSERT_STR(start.output(), "");
    assert_reaped(s.pid);
}

/* A child killed before it executes (here by the parent's setup) is an
 * error at the step it was in, not a hang and not a success. */
void case_child_killed(IpcbSpawnMethod method) {
    Start start(method);
    ParentSetup s;
    s.kill_child = true;
    use_parent_setup(&start, &s);
    int r = start.run({inspect_path()});
    ASSERT_RET(r, -ESRCH);
    g_assert_cmpint(start.error.error, ==, ESRCH);
    /* the child may not have taken its first step yet */
    g_assert_cmpint(start.error.step, >=, IPCB_STEP_CLONE);
    g_assert_cmpint(start.error.step, <, IPCB_STEP_EXEC);
    g_assert_cmpint(start.process.pid, ==, 0);
    ASSERT_STR(start.output(), "");
    assert_reaped(s.pid);
    assert_no_children();
}

/* With IPCB_SPAWN_READY the program gets the barrier and says when it is
 * ready; the caller waits for that on its side. */
void case_ready(IpcbSpawnMethod method) {
    Start start(method);
    start.options.flags = IPCB_SPAWN_READY;
    ASSERT_OK(start.run({inspect_path(), "--ready"}));
    ASSERT_RET(barrier_wait_next_timeout(&start.process.barrier, watchdog_usec()), 1);
    std::string out = start.output();
    /* It took the record out of its environment and let go of the
     * barrier before it printed its fd table. */
    bool found;
    (void)value_of(out, "env.IPCBARRIER", &found);
    g_assert_false(found);
    ASSERT_STR(value_of(out, "fds"), "0,1,2");
    assert_exits(&start.process, 0);
    assert_no_children();
}

/* A program that ends without placing its point is seen as an abortion. */
void case_ready_program_exits(IpcbSpawnMethod method) {
    Start start(method);
    start.options.flags = IPCB_SPAWN_READY;
    ASSERT_OK(start.run({"/bin/true"}));
    ASSERT_RET(barrier_wait_next_timeout(&start.process.barrier, watchdog_usec()), 0);
    g_assert_true(barrier_they_aborted(&start.process.barrier));
    assert_exits(&start.process, 0);
}

/* The caller's wait for readiness keeps its deadline: a program that
 * neither gets ready nor ends times it out, and then is killed. */
void case_ready_deadline(IpcbSpawnMethod method) {
    Start start(method);
    LongLived cat(&start);
    start.options.flags = IPCB_SPAWN_READY;
    ASSERT_OK(start.run({"/bin/cat"}));
    cat.in.read_end.reset();
    ASSERT_RET(barrier_wait_next_timeout(&start.process.barrier, 20 * 1000), -ETIMEDOUT);
    ASSERT_OK(ipcb_process_kill(&start.process, SIGKILL, false));
    ASSERT_RET(barrier_wait_next_timeout(&start.process.barrier, watchdog_usec()), 0);
    assert_killed(&start.process, SIGKILL);
}

/* The pre-exec deadline passes while the parent setup runs: -ETIMEDOUT at
 * "parent setup", the child killed and reaped before the call returns. */
void case_deadline_parent_setup(IpcbSpawnMethod method) {
    Start start(method);
    start.options.setup_timeout_usec = short_deadline_usec();
    ParentSetup s;
    s.block_for_usec = start.options.setup_timeout_usec;
    use_parent_setup(&start, &s);
    int r = start.run({inspect_path()});
    start.assert_failed(r, IPCB_STEP_PARENT_SETUP, ETIMEDOUT);
    ASSERT_STR(start.output(), "");
    assert_reaped(s.pid);
}

/* Runs a deadline case whose child must get to its callback before the
 * deadline. On a loaded machine it may not: its timer kills it first, and
 * the parent setup sees it end instead (run_case() returns false). The
 * case then runs again with twice the time, up to 64 times the first. */
template <class RunCase>
void with_callback_reached(RunCase run_case) {
    for (uint64_t deadline = short_deadline_usec();; deadline *= 2) {
        if (run_case(deadline)) return;
        g_assert_cmpuint(deadline, <, 64 * short_deadline_usec());
        g_test_message(
            "the child did not get to its callback within %.1f ms: again with "
            "twice the time",
            static_cast<double>(deadline) / 1000);
        assert_no_children();
    }
}

/* A deadline case whose child blocks in its callback (after it has
 * written a byte that the parent setup waits for): the start fails with
 * -ETIMEDOUT at "child callback". */
struct CallbackDeadline {
    ipcb_child_callback_t callback;
    uint64_t flags;
    bool parent_setup_overruns; /* the parent setup blocks past the deadline too */
};

void run_callback_deadline(IpcbSpawnMethod method, const CallbackDeadline &c) {
    with_callback_reached([method, &c](uint64_t deadline) {
        Start start(method);
        Pipe reached;
        ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &reached));
        start.map_fd(CALLBACK_FD, reached.write_end.get());
        start.options.flags = c.flags;
        start.options.child_callback = c.callback;
        start.options.setup_timeout_usec = deadline;
        ParentSetup s;
        s.wait_fd = reached.read_end.get();
        if (c.parent_setup_overruns) s.block_for_usec = deadline;
        use_parent_setup(&start, &s);
        int r = start.run({inspect_path()});
        reached.write_end.reset();
        /* Nothing the callback started is left holding the pipe. */
        ASSERT_STR(read_all(reached.read_end.get()), "");
        if (s.child_ended_first) return false;
        start.assert_failed(r, IPCB_STEP_CHILD_CALLBACK, ETIMEDOUT);
        assert_reaped(s.pid);
        return true;
    });
}

/* The deadline passes while the parent setup runs and the child is still
 * busy with its own: the child's step is named, as it was late too. */
void case_deadline_parent_setup_child_late(IpcbSpawnMethod method) {
    run_callback_deadline(method, {callback_blocks, 0, true});
}

/* A child that failed while the parent setup overran its deadline is
 * reported with its own failure, the more exact answer. */
void case_deadline_parent_setup_child_failed(IpcbSpawnMethod method) {
    Start start(method);
    start.options.cwd = "/nonexistent/ipcbarrier-test-dir";
    start.options.setup_timeout_usec = short_deadline_usec();
    ParentSetup s;
    s.wait_child_end = true;
    s.block_for_usec = start.options.setup_timeout_usec;
    use_parent_setup(&start, &s);
    int r = start.run({inspect_path()});
    start.assert_failed(r, IPCB_STEP_CWD, ENOENT);
    assert_reaped(s.pid);
}

/* The deadline passes while the child callback blocks: -ETIMEDOUT at
 * "child callback". */
void case_deadline_child_callback(IpcbSpawnMethod method) {
    run_callback_deadline(method, {callback_blocks, 0, false});
}

/* On expiry the child's new process group is killed with it: the
 * grandchild its callback started (which holds the pipe) is gone too. */
void case_deadline_kills_group(IpcbSpawnMethod method) {
    run_callback_deadline(method, {callback_forks_and_blocks, IPCB_SPAWN_NEW_PROCESS_GROUP, false});
}

/* Running out of fds at each point where a start creates one (the status
 * and stack are mappings; the barrier, the report pipe and the pidfd are
 * fds) fails cleanly with -EMFILE and leaves nothing open; with enough
 * room the start works. In a child, where the lowered limit stays. */
struct EmfileCase {
    IpcbSpawnMethod method;
    bool pidfds; /* whether the kernel (or valgrind) makes pidfds */
};

void child_emfile(void *arg) {
    const auto *c = static_cast<const EmfileCase *>(arg);
    const IpcbSpawnMethod method = c->method;
    int highest = fill_fd_holes();
    CHILD_ASSERT(highest >= 2);
    struct rlimit rl;
    CHILD_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    const char *argv[] = {"/bin/true", nullptr};
    IpcbSpawnOptions options = {};
    options.argv = argv;
    options.method = method;
    bool failed_in_prepare = false, failed_in_clone = false;
    for (int room = 0;; room++) {
        CHILD_ASSERT(room < 32);
        rl.rlim_cur = static_cast<rlim_t>(highest + 1 + room);
        CHILD_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);
        FdSnapshot before, after;
        fd_snapshot(&before);
        IpcbProcess p = {12345, 54321, BARRIER_NULL};
        IpcbSpawnError error = {IPCB_STEP_NONE, 0};
        int r = ipcb_spawn(&options, &p, &error);
        if (r == 0) {
            CHILD_ASSERT(p.pid > 0);
            siginfo_t si;
            CHILD_ASSERT(ipcb_process_wait(&p, watchdog_usec(), &si) == 0);
            CHILD_ASSERT(si.si_code == CLD_EXITED && si.si_status == 0);
            ipcb_process_close(&p);
            break;
        }
        CHILD_ASSERT(r == -EMFILE);
        CHILD_ASSERT(error.error == EMFILE);
        CHILD_ASSERT(error.step == IPCB_STEP_PREPARE || error.step == IPCB_STEP_CLONE);
        failed_in_prepare |= error.step == IPCB_STEP_PREPARE;
        failed_in_clone |= error.step == IPCB_STEP_CLONE;
        CHILD_ASSERT(p.pid == 12345 && p.pidfd == 54321);
        fd_snapshot(&after);
        CHILD_ASSERT(fd_snapshot_diff(&before, &after) == -1);
        siginfo_t si;
        CHILD_ASSERT(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD);
    }
    /* The pidfd is the last fd made, when a child exists: it was hit. The
     * fork path makes the barrier and the report pipe before, the
     * trampoline path those and its state memfd. */
    if (c->pidfds) CHILD_ASSERT(failed_in_clone);
    if (method != IPCB_METHOD_VFORK) CHILD_ASSERT(failed_in_prepare);
}

void case_emfile(IpcbSpawnMethod method) {
    EmfileCase c = {method, true};
    long fd = syscall(SYS_pidfd_open, getpid(), 0);
    if (fd >= 0)
        close(static_cast<int>(fd));
    else
        c.pidfds = false;
    if (!c.pidfds) g_test_message("no pidfds here: no pidfd to run out of fds for");
    g_assert_cmpint(run_in_child(child_emfile, &c), ==, 0);
}

void count_signal(int) {}

/* Signals that keep arriving (to a handler without SA_RESTART) neither cut
 * a start short nor a wait: ipcb_process_wait() keeps its timeout and
 * returns -ETIMEDOUT, never -EINTR. */
void case_signals_arrive(IpcbSpawnMethod method) {
    struct sigaction sa = {}, old_sa;
    sa.sa_handler = count_signal;
    g_assert_cmpint(sigaction(SIGUSR1, &sa, &old_sa), ==, 0);
    std::atomic<bool> stop{false};
    pthread_t waiter = pthread_self();
    std::thread sender([&] {
        while (!stop.load(std::memory_order_relaxed)) {
            g_assert_cmpint(pthread_kill(waiter, SIGUSR1), ==, 0);
            (void)poll(nullptr, 0, 1);
        }
    });

    Start start(method);
    LongLived cat(&start);
    ParentSetup s;
    if (method != IPCB_METHOD_VFORK) use_parent_setup(&start, &s);
    ASSERT_OK(start.run({"/bin/cat"}));
    cat.in.read_end.reset();
    siginfo_t si;
    int64_t before = g_get_monotonic_time();
    ASSERT_RET(ipcb_process_wait(&start.process, 50 * 1000, &si), -ETIMEDOUT);
    g_assert_cmpint(g_get_monotonic_time() - before, >=, 50 * 1000);
    cat.in.write_end.reset();
    assert_exits(&start.process, 0);

    stop = true;
    sender.join();
    g_assert_cmpint(sigaction(SIGUSR1, &old_sa, nullptr), ==, 0);
    assert_no_children();
}

/* Many starts of /bin/true while two other threads allocate and free, and
 * fork children that exit at once: no start deadlocks (the child takes no
 * lock), fails or leaves anything behind. */
void case_stress(IpcbSpawnMethod method) {
    const bool under_valgrind = TEST_UNDER_VALGRIND();
    /* 1000 per path with -m slow (CI runs that); fewer by default, so
     * that the whole suite, three paths of them included, stays a matter
     * of seconds. */
    int n = test_slow() ? 1000 : 120;
    /* What these builds look for shows in far fewer starts, and each one
     * costs more: under ASan fork() copies the page tables of its shadow
     * memory (about 30 ms a start), and the trampoline's helper starts
     * the sanitizers' runtime; valgrind runs one thread at a time. */
    if (TEST_UNDER_ASAN && !test_slow()) n = 60;
    if (under_valgrind) n = 50;
    std::atomic<bool> stop{false};
    std::atomic<long> allocations{0}, forks{0};
    std::thread allocator([&] {
        std::vector<void *> held(64, nullptr);
        for (unsigned i = 0; !stop.load(std::memory_order_relaxed); i++) {
            void *&slot = held[i % held.size()];
            free(slot);
            slot = malloc(16 + (i * 7919) % 65536);
            g_assert_nonnull(slot);
            memset(slot, 1, 16);
            allocations.fetch_add(1, std::memory_order_relaxed);
            /* valgrind runs one thread at a time, and one that never makes
             * a system call can keep the others waiting for long */
            if (under_valgrind) sched_yield();
        }
        for (void *p : held) free(p);
    });
    std::thread forker([&] {
        while (!stop.load(std::memory_order_relaxed)) {
            pid_t pid = fork();
            if (pid == 0) {
                /* valgrind would check the child for leaks at its exit,
                 * slowly, and find the other threads' blocks, which the
                 * child inherited without their owners; SIGKILL ends it
                 * before valgrind can. */
                if (under_valgrind) raise(SIGKILL);
                _exit(0);
            }
            g_assert_cmpint(pid, >, 0);
            siginfo_t si;
            /* by pid: the starts' children are not this thread's */
            g_assert_cmpint(waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED), ==, 0);
            forks.fetch_add(1, std::memory_order_relaxed);
        }
    });

    const char *argv[] = {"/bin/true", nullptr};
    IpcbSpawnOptions options = {};
    options.argv = argv;
    options.method = method;
    int64_t started = g_get_monotonic_time();
    for (int i = 0; i < n; i++) {
        IpcbProcess p = IPCB_PROCESS_NULL;
        IpcbSpawnError error;
        int r = ipcb_spawn(&options, &p, &error);
        if (r < 0) {
            char msg[256];
            (void)ipcb_spawn_error_format(&error, msg, sizeof msg);
            g_test_message("start %d failed: %s", i, msg);
        }
        ASSERT_OK(r);
        assert_exits(&p, 0);
        ipcb_process_close(&p);
    }
    int64_t took = g_get_monotonic_time() - started;
    stop = true;
    allocator.join();
    forker.join();
    g_test_message("%d starts in %.3f s (%.1f us each); meanwhile %ld allocations, %ld forks", n,
                   static_cast<double>(took) / 1e6, static_cast<double>(took) / n,
                   allocations.load(), forks.load());
    assert_no_children();
}

/* Progress */

/* What the progress callback was told, as one line of event names, with
 * the parent setup's call where it came; and whether every event came in
 * the calling thread and named one child, whose pidfd was open. */
struct ProgressLog {
    std::string events;
    int calls = 0;
    pid_t pid = 0;
    int pidfd = -1;
    const pid_t thread = gettid();
    bool same_child = true;
    bool calling_thread = true;
    bool pidfd_open = true;
    int parent_setup_result = 0;

    void add(const char *name) {
        if (!events.empty()) events += ' ';
        events += name;
    }
};

const char *progress_name(IpcbSpawnProgress event) {
    switch (event) {
        case IPCB_PROGRESS_SPAWNED:
            return "spawned";
        case IPCB_PROGRESS_PARENT_SETUP_DONE:
            return "parent-setup-done";
        case IPCB_PROGRESS_CHILD_SETUP_DONE:
            return "child-setup-done";
        case IPCB_PROGRESS_SYNCED:
            return "synced";
        case IPCB_PROGRESS_EXECUTED:
            return "executed";
        default:
            return "unknown";
    }
}

void log_progress(IpcbSpawnProgress event, const IpcbSpawnChild *child, void *userdata) {
    auto *log = static_cast<ProgressLog *>(userdata);
    if (log->calls++ == 0) {
        log->pid = child->pid;
        log->pidfd = child->pidfd;
    }
    log->same_child &= child->pid == log->pid && child->pidfd == log->pidfd;
    log->calling_thread &= gettid() == log->thread;
    log->pidfd_open &= child->pidfd < 0 || fd_is_open(child->pidfd);
    log->add(progress_name(event));
}

int parent_setup_logs(const IpcbSpawnChild *, void *userdata) {
    auto *log = static_cast<ProgressLog *>(userdata);
    log->add("(parent-setup)");
    return log->parent_setup_result;
}

void use_progress(IpcbSpawnOptions *options, ProgressLog *log, bool with_parent_setup) {
    options->progress = log_progress;
    options->progress_userdata = log;
    if (with_parent_setup) {
        options->parent_setup = parent_setup_logs;
        options->parent_setup_userdata = log;
    }
}

/* The events of a start that succeeds, in order: on the vfork path, which
 * has no meeting, that the child exists and that it executed; on the
 * paths that meet, the parent's setup (whose callback runs after the
 * first), the child's, the meeting and the execution, with or without a
 * parent setup callback. Each came in the calling thread and named the
 * child that *ret holds. */
void case_progress(IpcbSpawnMethod method) {
    const bool meets = method != IPCB_METHOD_VFORK;
    for (bool with_parent_setup : {false, true}) {
        if (with_parent_setup && !meets) continue;
        Start start(method);
        ProgressLog log;
        use_progress(&start.options, &log, with_parent_setup);
        ASSERT_OK(start.run({inspect_path()}));
        ASSERT_STR(log.events, !meets ? "spawned executed"
                               : with_parent_setup
                                   ? "spawned (parent-setup) parent-setup-done "
                                     "child-setup-done synced executed"
                                   : "spawned parent-setup-done child-setup-done synced "
                                     "executed");
        g_assert_true(log.same_child);
        g_assert_true(log.calling_thread);
        g_assert_true(log.pidfd_open);
        g_assert_cmpint(log.pid, ==, start.process.pid);
        g_assert_cmpint(log.pidfd, ==, start.process.pidfd);
        g_assert_cmpint(atoi(value_of(start.output(), "pid").c_str()), ==, log.pid);
        assert_exits(&start.process, 0);
    }
    assert_no_children();
}

/* A start that fails before any child exists reports nothing. */
void case_progress_no_child(IpcbSpawnMethod method) {
    Start start(method);
    ProgressLog log;
    use_progress(&start.options, &log, false);
    int r = start.run({"ipcbarrier-test-no-such-program"});
    start.assert_failed(r, IPCB_STEP_PATH, ENOENT);
    ASSERT_STR(log.events, "");
}

/* A child whose setup fails: the events stop before "child-setup-done"
 * (on the vfork path, after "spawned"), and the child they named is
 * reaped. */
void case_progress_child_fails(IpcbSpawnMethod method) {
    Start start(method);
    ProgressLog log;
    use_progress(&start.options, &log, false);
    start.options.cwd = "/nonexistent/ipcbarrier-test-dir";
    int r = start.run({inspect_path()});
    start.assert_failed(r, IPCB_STEP_CWD, ENOENT);
    ASSERT_STR(log.events, method == IPCB_METHOD_VFORK ? "spawned" : "spawned parent-setup-done");
    assert_reaped(log.pid);
}

/* A program that cannot be executed: everything but "executed". */
void case_progress_exec_fails(IpcbSpawnMethod method) {
    Start start(method);
    ProgressLog log;
    use_progress(&start.options, &log, false);
    start.options.flags = IPCB_SPAWN_NO_PATH_SEARCH;
    int r = start.run({"/nonexistent/ipcbarrier-test-program"});
    start.assert_failed(r, IPCB_STEP_EXEC, ENOENT);
    ASSERT_STR(log.events, method == IPCB_METHOD_VFORK
                               ? "spawned"
                               : "spawned parent-setup-done child-setup-done synced");
    assert_reaped(log.pid);
}

/* A parent setup that fails: nothing after its call. */
void case_progress_parent_setup_fails(IpcbSpawnMethod method) {
    Start start(method);
    ProgressLog log;
    log.parent_setup_result = -EPERM;
    use_progress(&start.options, &log, true);
    int r = start.run({inspect_path()});
    start.assert_failed(r, IPCB_STEP_PARENT_SETUP, EPERM);
    ASSERT_STR(log.events, "spawned (parent-setup)");
    assert_reaped(log.pid);
}

/* Cgroups */

/* The "0::" line of /proc/PID/cgroup, without it: the process's cgroup
 * in the v2 hierarchy, or "" where it has none. */
std::string cgroup_of(const std::string &pid) {
    gchar *text = nullptr;
    if (!g_file_get_contents(("/proc/" + pid + "/cgroup").c_str(), &text, nullptr, nullptr))
        return "";
    std::string found;
    gchar **lines = g_strsplit(text, "\n", -1);
    for (gchar **line = lines; *line; line++)
        if (g_str_has_prefix(*line, "0::")) found = *line + 3;
    g_strfreev(lines);
    g_free(text);
    return found;
}

/* A cgroup v2 directory made for a case inside this process's own cgroup
 * and removed with it; none (g_test_skip()) where the hierarchy is not
 * mounted or not writable. */
struct TestCgroup {
    std::string name; /* as /proc/PID/cgroup shows it */
    std::string dir;
    UniqueFd fd;

    TestCgroup() {
        std::string own = cgroup_of("self");
        for (const char *root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
            if (own.empty() || access((std::string(root) + "/cgroup.controllers").c_str(), F_OK))
                continue;
            name = (own == "/" ? "" : own) + "/ipcb-test-spawn-" + std::to_string(getpid());
            dir = root + name;
            if (mkdir(dir.c_str(), 0755) == 0) break;
            dir.clear();
        }
        if (dir.empty()) return;
        fd.reset(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        g_assert_true(fd);
    }
    ~TestCgroup() {
        for (auto it = subdirs.rbegin(); it != subdirs.rend(); ++it)
            g_assert_cmpint(rmdir((dir + "/" + *it).c_str()), ==, 0);
        if (!dir.empty()) g_assert_cmpint(rmdir(dir.c_str()), ==, 0);
    }

    /* Makes the cgroup name below this one; returns whether it could. */
    bool make_subdir(const std::string &sub) {
        if (mkdir((dir + "/" + sub).c_str(), 0755) < 0) return false;
        subdirs.push_back(sub);
        return true;
    }

    std::vector<std::string> subdirs;
};

/* Whether clone3() starts a child in the cgroup of cgroup_fd here (Linux
 * 5.7 and no seccomp filter against it): tried with a child that only
 * exits. */
bool clone_into_cgroup_works(int cgroup_fd) {
    struct {
        uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
            set_tid_size, cgroup;
    } args = {};
    args.flags = 0x200000000ULL; /* CLONE_INTO_CGROUP */
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) _exit(0);
    if (pid < 0) return false;
    g_assert_cmpint(wait_exit_status(static_cast<pid_t>(pid)), ==, 0);
    return true;
}

/* Where the parent setup found its child. */
int parent_setup_cgroup(const IpcbSpawnChild *child, void *userdata) {
    *static_cast<std::string *>(userdata) = cgroup_of(std::to_string(child->pid));
    return 0;
}

/* IPCB_SPAWN_CGROUP puts the program in the cgroup on every path. The vfork
 * and trampoline paths create the child in it with clone3()'s
 * CLONE_INTO_CGROUP (the fork path's child, a fork(), joins it by
 * itself): so on the trampoline path the parent's setup, which runs while
 * the child starts the helper, finds it there already. */
void case_cgroup(IpcbSpawnMethod method) {
    std::string seen_by_parent;
    {
        TestCgroup cgroup;
        if (cgroup.dir.empty()) {
            g_test_skip("no cgroup v2 hierarchy to make a cgroup in");
            return;
        }
        Start start(method);
        start.options.flags = IPCB_SPAWN_CGROUP;
        start.options.cgroup_fd = cgroup.fd.get();
        if (method == IPCB_METHOD_TRAMPOLINE) {
            start.options.parent_setup = parent_setup_cgroup;
            start.options.parent_setup_userdata = &seen_by_parent;
        }
        ASSERT_OK(start.run({"/bin/cat", "/proc/self/cgroup"}));
        std::string out = start.output();
        if (out.find("0::" + cgroup.name + "\n") == std::string::npos)
            g_error("the program is not in %s: %s", cgroup.name.c_str(), out.c_str());
        assert_exits(&start.process, 0);
        /* valgrind does not know clone3(), nor does an old kernel do it:
         * there the child joins by itself. */
        if (method == IPCB_METHOD_TRAMPOLINE && !TEST_UNDER_VALGRIND() &&
            clone_into_cgroup_works(cgroup.fd.get()))
            ASSERT_STR(seen_by_parent, cgroup.name);
    }
    assert_no_children();
}

/* Where a seccomp filter refuses clone3() (EPERM), as some container
 * runtimes' do, the vfork and trampoline paths start the child as the
 * fork path does, and it joins its cgroup by itself. The filter goes on a
 * forked copy of the test, which makes the start and reports. */
void case_cgroup_clone3_filtered(IpcbSpawnMethod method) {
    TestCgroup cgroup;
    if (cgroup.dir.empty()) {
        g_test_skip("no cgroup v2 hierarchy to make a cgroup in");
        return;
    }
    const std::string expected = "0::" + cgroup.name + "\n";
    Pipe out;
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &out));
    const IpcbSpawnFd fds[] = {{0, -1}, {1, out.write_end.get()}, {2, 2}};
    const char *argv[] = {"/bin/cat", "/proc/self/cgroup", nullptr};
    IpcbSpawnOptions o = IpcbSpawnOptions();
    o.argv = argv;
    o.fds = fds;
    o.n_fds = std::size(fds);
    o.flags = IPCB_SPAWN_CGROUP;
    o.cgroup_fd = cgroup.fd.get();
    o.method = method;
    if (method == IPCB_METHOD_TRAMPOLINE) o.parent_setup = parent_setup_cgroup;
    std::string seen_by_parent;
    o.parent_setup_userdata = &seen_by_parent;
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog = {static_cast<unsigned short>(std::size(filter)), filter};

    pid_t pid = fork_test_child();
    if (pid == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
            child_fail("cannot install the seccomp filter");
        IpcbProcess p = IPCB_PROCESS_NULL;
        IpcbSpawnError error;
        if (ipcb_spawn(&o, &p, &error) < 0) child_fail("the start failed");
        out.write_end.reset();
        char buf[512];
        size_t len = 0;
        for (ssize_t n; (n = read(out.read_end.get(), buf + len, sizeof buf - 1 - len)) > 0;)
            len += static_cast<size_t>(n);
        buf[len] = '\0';
        if (!strstr(buf, expected.c_str())) child_fail("the program is not in its cgroup");
        siginfo_t si;
        if (ipcb_process_wait(&p, UINT64_MAX, &si) < 0 || si.si_status != 0)
            child_fail("the program failed");
        ipcb_process_close(&p);
        _exit(0);
    }
    out.write_end.reset();
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* A cgroup that refuses processes fails the start at the cgroup step with
 * the kernel's errno, whether the child is created there or joins it: one
 * in the "domain invalid" state (a sibling became threaded), EOPNOTSUPP. */
void case_cgroup_refused(IpcbSpawnMethod method) {
    {
        TestCgroup cgroup;
        if (cgroup.dir.empty() || !cgroup.make_subdir("threaded") ||
            !cgroup.make_subdir("invalid")) {
            g_test_skip("no cgroup v2 hierarchy to make cgroups in");
            return;
        }
        int type = open((cgroup.dir + "/threaded/cgroup.type").c_str(), O_WRONLY | O_CLOEXEC);
        g_assert_cmpint(type, >=, 0);
        g_assert_cmpint(write(type, "threaded", 8), ==, 8);
        g_assert_cmpint(close(type), ==, 0);
        UniqueFd invalid(
            open((cgroup.dir + "/invalid").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        g_assert_true(invalid);

        Start start(method);
        start.options.flags = IPCB_SPAWN_CGROUP;
        start.options.cgroup_fd = invalid.get();
        start.assert_failed(start.run({inspect_path()}), IPCB_STEP_CGROUP, EOPNOTSUPP);
    }
    assert_no_children();
}

/* The paths a case runs on. */
enum : unsigned {
    VFORK = 1u << 0,
    TRAMPOLINE = 1u << 1,
    FORK = 1u << 2,
    ALL = VFORK | TRAMPOLINE | FORK,
    MEETING = TRAMPOLINE | FORK, /* a parent setup or readiness */
};

struct Case {
    const char *name;
    void (*fn)(IpcbSpawnMethod method);
    unsigned paths;
};

const Case cases[] = {
    {"success", case_success, ALL},
    {"exec-enoent", case_exec_enoent, ALL},
    {"exec-eacces", case_exec_eacces, ALL},
    {"path-not-found", case_path_not_found, ALL},
    {"chdir-fails", case_chdir_fails, ALL},
    {"wait-timeout", case_wait_timeout, ALL},
    {"kill", case_kill, ALL},
    {"kill-group", case_kill_group, ALL},
    {"kill-group-without-group", case_kill_group_without_group, ALL},
    {"signals-arrive", case_signals_arrive, ALL},
    {"emfile", case_emfile, ALL},
    {"deadline-stuck-in-step", case_deadline_stuck_in_step, ALL},
    {"progress", case_progress, ALL},
    {"progress-no-child", case_progress_no_child, ALL},
    {"progress-child-fails", case_progress_child_fails, ALL},
    {"progress-exec-fails", case_progress_exec_fails, ALL},
    {"stress", case_stress, ALL},
    {"cgroup", case_cgroup, ALL},
    {"cgroup-refused", case_cgroup_refused, ALL},
    {"cgroup-clone3-filtered", case_cgroup_clone3_filtered, VFORK | TRAMPOLINE},
    {"parent-setup-runs", case_parent_setup_runs, MEETING},
    {"parent-setup-fails", case_parent_setup_fails, MEETING},
    {"child-callback-fails", case_child_callback_fails, FORK},
    {"child-killed", case_child_killed, MEETING},
    {"ready", case_ready, MEETING},
    {"ready-program-exits", case_ready_program_exits, MEETING},
    {"ready-deadline", case_ready_deadline, MEETING},
    {"progress-parent-setup-fails", case_progress_parent_setup_fails, MEETING},
    /* The parent's side of a deadline is one code for both paths that
     * meet: the variants run on the fork path. */
    {"deadline-parent-setup", case_deadline_parent_setup, FORK},
    {"deadline-parent-setup-child-late", case_deadline_parent_setup_child_late, FORK},
    {"deadline-parent-setup-child-failed", case_deadline_parent_setup_child_failed, FORK},
    {"deadline-child-callback", case_deadline_child_callback, FORK},
    {"deadline-kills-group", case_deadline_kills_group, FORK},
};

unsigned path_bit(IpcbSpawnMethod method) {
    switch (method) {
        case IPCB_METHOD_VFORK:
            return VFORK;
        case IPCB_METHOD_TRAMPOLINE:
            return TRAMPOLINE;
        default:
            return FORK;
    }
}

struct CaseRun {
    const Case *c;
    IpcbSpawnMethod method;
};

void run_case(const void *data) {
    const auto *run = static_cast<const CaseRun *>(data);
    if (skip_method(run->method)) return;
    run->c->fn(run->method);
}

/* Cases on no particular path. */

/* Options the chosen path cannot honour, and bad arguments, fail before
 * anything exists, at "prepare", leaving *ret alone. */
void test_refused() {
    const char *argv[] = {"/bin/true", nullptr};
    struct Refused {
        const char *what;
        IpcbSpawnOptions options;
        int expected;
    };
    ParentSetup s;
    std::vector<Refused> refused;
    auto add = [&](const char *what, int expected, auto &&set) {
        IpcbSpawnOptions o = {};
        o.argv = argv;
        set(&o);
        refused.push_back({what, o, expected});
    };
    add("vfork with a parent setup", -EINVAL, [&](IpcbSpawnOptions *o) {
        o->method = IPCB_METHOD_VFORK;
        o->parent_setup = parent_setup;
        o->parent_setup_userdata = &s;
    });
    add("vfork with a child callback", -EINVAL, [](IpcbSpawnOptions *o) {
        o->method = IPCB_METHOD_VFORK;
        o->child_callback = callback_fails;
    });
    add("vfork with readiness", -EINVAL, [](IpcbSpawnOptions *o) {
        o->method = IPCB_METHOD_VFORK;
        o->flags = IPCB_SPAWN_READY;
    });
    add("trampoline with a child callback", -EINVAL, [](IpcbSpawnOptions *o) {
        o->method = IPCB_METHOD_TRAMPOLINE;
        o->child_callback = callback_fails;
    });
    add("unknown method", -EINVAL, [](IpcbSpawnOptions *o) { set_enum_bytes(&o->method, 42); });
    for (const Refused &r : refused) {
        g_test_message("%s", r.what);
        IpcbProcess p = {12345, 54321, BARRIER_NULL};
        IpcbSpawnError error = {IPCB_STEP_NONE, 0};
        ASSERT_RET(ipcb_spawn(&r.options, &p, &error), r.expected);
        g_assert_cmpint(error.step, ==, IPCB_STEP_PREPARE);
        g_assert_cmpint(error.error, ==, -r.expected);
        g_assert_cmpint(p.pid, ==, 12345);
        g_assert_cmpint(p.pidfd, ==, 54321);
    }
    g_assert_cmpint(s.calls, ==, 0);

    IpcbProcess p = IPCB_PROCESS_NULL;
    IpcbSpawnError error = {IPCB_STEP_NONE, 0};
    IpcbSpawnOptions o = {};
    o.argv = argv;
    ASSERT_RET(ipcb_spawn(nullptr, &p, &error), -EINVAL);
    g_assert_cmpint(error.step, ==, IPCB_STEP_PREPARE);
    ASSERT_RET(ipcb_spawn(&o, nullptr, nullptr), -EINVAL);
    assert_no_children();
}

/* AUTO takes the vfork path when it can, the trampoline path when a side
 * must meet the other, and the fork path for a child callback; all work
 * (which one ran shows only in cost). Under valgrind, which cannot run a
 * vfork child, the library takes the fork path for the vfork path and for
 * AUTO's trampoline too, and a start still works. */
void test_auto() {
    const char *argv[] = {"/bin/true", nullptr};
    IpcbSpawnOptions o = {};
    o.argv = argv;
    IpcbProcess p = IPCB_PROCESS_NULL;
    for (IpcbSpawnMethod method : {IPCB_METHOD_AUTO, IPCB_METHOD_VFORK}) {
        o.method = method;
        ASSERT_OK(ipcb_spawn(&o, &p, nullptr));
        assert_exits(&p, 0);
        ipcb_process_close(&p);
    }
    ParentSetup s;
    o.method = IPCB_METHOD_AUTO;
    o.parent_setup = parent_setup;
    o.parent_setup_userdata = &s;
    IpcbSpawnError error = {IPCB_STEP_CWD, ENOENT};
    ASSERT_OK(ipcb_spawn(&o, &p, &error));
    g_assert_cmpint(s.calls, ==, 1);
    /* success clears the error */
    g_assert_cmpint(error.step, ==, IPCB_STEP_NONE);
    g_assert_cmpint(error.error, ==, 0);
    assert_exits(&p, 0);
    ipcb_process_close(&p);
    o.child_callback = callback_reports_nothing;
    ASSERT_OK(ipcb_spawn(&o, &p, &error));
    g_assert_cmpint(s.calls, ==, 2);
    assert_exits(&p, 0);
    ipcb_process_close(&p);
    assert_no_children();
}

/* Without a callback (progress_userdata alone counts for nothing) a start
 * works as ever. With one, what AUTO chose shows, and only that: the
 * vfork path's two events, also under valgrind, where the fork path runs
 * it; all five once a parent setup makes the sides meet. */
void test_progress_auto() {
    const char *argv[] = {"/bin/true", nullptr};
    IpcbProcess p = IPCB_PROCESS_NULL;
    ProgressLog unused;
    IpcbSpawnOptions o = {};
    o.argv = argv;
    o.progress_userdata = &unused;
    ASSERT_OK(ipcb_spawn(&o, &p, nullptr));
    assert_exits(&p, 0);
    ipcb_process_close(&p);
    g_assert_cmpint(unused.calls, ==, 0);

    for (bool with_parent_setup : {false, true}) {
        ProgressLog log;
        o = {};
        o.argv = argv;
        use_progress(&o, &log, with_parent_setup);
        ASSERT_OK(ipcb_spawn(&o, &p, nullptr));
        ASSERT_STR(log.events, with_parent_setup ? "spawned (parent-setup) parent-setup-done "
                                                   "child-setup-done synced executed"
                                                 : "spawned executed");
        g_assert_true(log.same_child);
        g_assert_true(log.calling_thread);
        g_assert_cmpint(log.pid, ==, p.pid);
        assert_exits(&p, 0);
        ipcb_process_close(&p);
    }
    assert_no_children();
}

void test_step_names() {
    struct {
        IpcbSpawnStep step;
        const char *name;
    } named[] = {
        {IPCB_STEP_PREPARE, "prepare"},
        {IPCB_STEP_PATH, "PATH search"},
        {IPCB_STEP_CLONE, "clone"},
        {IPCB_STEP_HELPER, "helper"},
        {IPCB_STEP_CWD, "chdir"},
        {IPCB_STEP_UID, "setresuid"},
        {IPCB_STEP_CHILD_CALLBACK, "child callback"},
        {IPCB_STEP_PARENT_SETUP, "parent setup"},
        {IPCB_STEP_EXEC, "execve"},
    };
    for (const auto &n : named) g_assert_cmpstr(ipcb_spawn_step_to_string(n.step), ==, n.name);
    /* Every step has a name of its own. */
    for (int a = IPCB_STEP_NONE; a < _IPCB_STEP_MAX; a++) {
        const char *name = ipcb_spawn_step_to_string(static_cast<IpcbSpawnStep>(a));
        g_assert_nonnull(name);
        g_assert_cmpuint(strlen(name), >, 0);
        for (int b = IPCB_STEP_NONE; b < a; b++)
            g_assert_cmpstr(ipcb_spawn_step_to_string(static_cast<IpcbSpawnStep>(b)), !=, name);
    }
    g_assert_null(ipcb_spawn_step_to_string(_IPCB_STEP_MAX));
    /* the largest value the enum type holds in C++ */
    g_assert_null(ipcb_spawn_step_to_string(static_cast<IpcbSpawnStep>(31)));
}

void test_error_format() {
    IpcbSpawnError e = {IPCB_STEP_CWD, ENOENT};
    std::string want = std::string("chdir: ") + strerror(ENOENT);
    char buf[128];
    g_assert_cmpint(ipcb_spawn_error_format(&e, buf, sizeof buf), ==, want.size());
    g_assert_cmpstr(buf, ==, want.c_str());
    /* snprintf(): truncated with its NUL, the length it needed returned */
    memset(buf, 'x', sizeof buf);
    g_assert_cmpint(ipcb_spawn_error_format(&e, buf, 5), ==, want.size());
    g_assert_cmpstr(buf, ==, "chdi");
    g_assert_cmpint(buf[5], ==, 'x');
    g_assert_cmpint(ipcb_spawn_error_format(&e, nullptr, 0), ==, want.size());

    e = {IPCB_STEP_PARENT_SETUP, EPERM};
    g_assert_cmpint(ipcb_spawn_error_format(&e, buf, sizeof buf), >, 0);
    ASSERT_STR(buf, std::string("parent setup: ") + strerror(EPERM));
    e.error = EIO;
    set_enum_bytes(&e.step, 99);
    g_assert_cmpint(ipcb_spawn_error_format(&e, buf, sizeof buf), >, 0);
    ASSERT_STR(buf, std::string("step 99: ") + strerror(EIO));
    ASSERT_RET(ipcb_spawn_error_format(nullptr, buf, sizeof buf), -EINVAL);
}

/* ipcb_process_close() lets go without waiting: the fds are closed, the
 * process goes on, and closing again (or an empty handle) is harmless. */
void test_process_close() {
    IpcbProcess empty = IPCB_PROCESS_NULL;
    ipcb_process_close(&empty);
    ipcb_process_close(&empty);
    ipcb_process_close(nullptr);

    Start start(IPCB_METHOD_FORK);
    LongLived cat(&start);
    start.options.flags = IPCB_SPAWN_READY;
    ASSERT_OK(start.run({"/bin/cat"}));
    cat.in.read_end.reset();
    pid_t pid = start.process.pid;
    int pidfd = start.process.pidfd;
    int barrier_fds[3];
    g_assert_cmpint(barrier_get_fds(&start.process.barrier, barrier_fds), ==, 3);
    ipcb_process_close(&start.process);
    g_assert_cmpint(start.process.pid, ==, 0);
    g_assert_cmpint(start.process.pidfd, ==, -1);
    if (pidfd >= 0) g_assert_true(fd_is_closed(pidfd));
    for (int fd : barrier_fds) g_assert_true(fd_is_closed(fd));
    ipcb_process_close(&start.process);
    /* still running: cat ends when its stdin does */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    g_assert_cmpint(waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG), ==, 0);
    g_assert_cmpint(si.si_pid, ==, 0);
    cat.in.write_end.reset();
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
}

/* What a barrier watch was told, and where the barrier was then. */
struct WatchLog {
    std::vector<std::pair<BarrierWatchEvent, Barrier *>> events;
};

void log_watch(Barrier *b, BarrierWatchEvent event, void *userdata) {
    static_cast<WatchLog *>(userdata)->events.emplace_back(event, b);
}

/* The C++ Process: moving it moves the barrier with barrier_move(), so
 * that an event source attached to it follows, and leaves the source
 * empty; destroying it closes the barrier, which tells the source. */
void test_cxx_process() {
    Pipe in;
    ASSERT_OK(ipcbarrier::pipe_new(PipeMode::blocking, &in));
    const char *argv[] = {"/bin/cat", nullptr};
    IpcbSpawnFd fds[] = {{0, in.read_end.get()}, {1, -1}, {2, 2}};
    ipcbarrier::SpawnOptions options = {};
    options.argv = argv;
    options.fds = fds;
    options.n_fds = 3;
    options.flags = IPCB_SPAWN_READY;
    WatchLog log;
    BarrierWatch watch;
    pid_t pid;
    int barrier_fds[3];
    {
        ipcbarrier::Process a;
        ipcbarrier::SpawnError error;
        ASSERT_OK(ipcbarrier::Process::spawn(options, &a, &error));
        in.read_end.reset();
        pid = a.pid();
        g_assert_cmpint(barrier_get_fds(a.barrier(), barrier_fds), ==, 3);
        ASSERT_OK(barrier_watch(a.barrier(), &watch, log_watch, &log));

        ipcbarrier::Process b(std::move(a));
        g_assert_cmpint(a.pid(), ==, 0);
        g_assert_cmpint(a.pidfd(), ==, -1);
        g_assert_cmpint(barrier_get_fds(a.barrier(), barrier_fds), ==, -EBADF);
        g_assert_cmpint(b.pid(), ==, pid);
        int moved[3];
        g_assert_cmpint(barrier_get_fds(b.barrier(), moved), ==, 3);
        g_assert_cmpint(moved[0], ==, barrier_fds[0]);

        ipcbarrier::Process c;
        c = std::move(b);
        g_assert_cmpint(b.pid(), ==, 0);
        g_assert_cmpint(c.pid(), ==, pid);
        g_assert_cmpuint(log.events.size(), ==, 2);
        g_assert_cmpint(log.events[0].first, ==, BARRIER_WATCH_MOVED);
        g_assert_true(log.events[1].first == BARRIER_WATCH_MOVED &&
                      log.events[1].second == c.barrier());
        ASSERT_RET(barrier_wait_next_timeout(c.barrier(), 0), -ETIMEDOUT);
        siginfo_t si;
        ASSERT_RET(c.wait_for(std::chrono::milliseconds(1), &si), -ETIMEDOUT);
        in.write_end.reset();
        ASSERT_OK(c.wait(&si));
        g_assert_cmpint(si.si_code, ==, CLD_EXITED);
        ASSERT_RET(c.kill(SIGTERM), -ESRCH);
    }
    g_assert_cmpuint(log.events.size(), ==, 3);
    g_assert_cmpint(log.events[2].first, ==, BARRIER_WATCH_CLOSING);
    for (int fd : barrier_fds) g_assert_true(fd_is_closed(fd));
    assert_no_children();
}

/* ---- the helper, in a fresh process ---- */

/* The test binary itself, executed again for a case in a fresh process. */
std::string g_self;

/* In the fresh process: a message on stderr and exit status 1. */
[[noreturn]] void fresh_fail(const char *what, int r) {
    fprintf(stderr, "test-spawn --fresh: %s: %d (%s)\n", what, r, r < 0 ? strerror(-r) : "");
    exit(1);
}

/* In the fresh process: a start of /bin/true with method (and a parent
 * setup, if asked), waited for. Returns 0, or the start's -errno with the
 * error in *ret_error. */
int fresh_start(IpcbSpawnMethod method, bool with_parent_setup, IpcbSpawnError *ret_error) {
    const char *argv[] = {"/bin/true", nullptr};
    IpcbSpawnOptions o = {};
    o.argv = argv;
    o.method = method;
    ParentSetup s;
    if (with_parent_setup) {
        o.parent_setup = parent_setup;
        o.parent_setup_userdata = &s;
    }
    IpcbProcess p = IPCB_PROCESS_NULL;
    int r = ipcb_spawn(&o, &p, ret_error);
    if (r < 0) return r;
    siginfo_t si;
    r = ipcb_process_wait(&p, watchdog_usec(), &si);
    ipcb_process_close(&p);
    if (r < 0) fresh_fail("ipcb_process_wait", r);
    if (si.si_code != CLD_EXITED || si.si_status != 0) fresh_fail("/bin/true failed", 0);
    if (with_parent_setup && s.calls != 1) fresh_fail("the parent setup did not run", 0);
    return 0;
}

void fresh_expect_ok(IpcbSpawnMethod method, bool with_parent_setup, const char *what) {
    IpcbSpawnError error;
    int r = fresh_start(method, with_parent_setup, &error);
    if (r < 0) {
        char msg[256];
        (void)ipcb_spawn_error_format(&error, msg, sizeof msg);
        fprintf(stderr, "test-spawn --fresh: %s: %s\n", what, msg);
        exit(1);
    }
}

void fresh_expect_helper_error(int err, const char *what) {
    IpcbSpawnError error = {IPCB_STEP_NONE, 0};
    int r = fresh_start(IPCB_METHOD_TRAMPOLINE, false, &error);
    if (r != -err) fresh_fail(what, r);
    if (error.step != IPCB_STEP_HELPER || error.error != err) fresh_fail(what, -error.error);
}

/* The installed helper is replaced the way a package upgrade replaces it
 * (a new file renamed over it), before the process first starts anything
 * and again between starts, then removed: starts go on working, as the
 * library executes the file it opened when it was loaded. */
void fresh_replaced(const char *dir) {
    std::string helper = std::string(dir) + "/helper";
    std::string next = helper + ".new";
    auto replace = [&]() {
        if (!g_file_set_contents(next.c_str(), "not a program\n", -1, nullptr) ||
            chmod(next.c_str(), 0755) < 0 || rename(next.c_str(), helper.c_str()) < 0)
            fresh_fail("replacing the helper", -errno);
    };
    replace();
    fresh_expect_ok(IPCB_METHOD_TRAMPOLINE, true, "first start, after a replacement");
    replace();
    fresh_expect_ok(IPCB_METHOD_TRAMPOLINE, true, "start after another replacement");
    fresh_expect_ok(IPCB_METHOD_AUTO, true, "AUTO start after the replacements");
    if (unlink(helper.c_str()) < 0) fresh_fail("removing the helper", -errno);
    fresh_expect_ok(IPCB_METHOD_TRAMPOLINE, false, "start after the removal");
}

/* Without a helper the trampoline fails at its step, and AUTO takes the
 * fork path instead. */
void fresh_missing() {
    fresh_expect_helper_error(ENOENT, "trampoline without a helper");
    fresh_expect_ok(IPCB_METHOD_AUTO, true, "AUTO without a helper");
    fresh_expect_helper_error(ENOENT, "trampoline without a helper, again");
}

/* The process closes every fd it does not know of, the library's helper
 * among them, and has no fd left for opening it again: a clean -EMFILE at
 * the helper's step, nothing left open; with more room the library opens
 * the helper again and the start works. */
void fresh_emfile() {
    if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0) fresh_fail("close_range", -errno);
    int highest = fill_fd_holes();
    if (highest < 2) fresh_fail("fill_fd_holes", highest);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) fresh_fail("getrlimit", -errno);
    const rlim_t saved = rl.rlim_cur;
    rl.rlim_cur = static_cast<rlim_t>(highest + 1);
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) fresh_fail("setrlimit", -errno);
    FdSnapshot before, after;
    fd_snapshot(&before);
    fresh_expect_helper_error(EMFILE, "opening the helper without an fd");
    fd_snapshot(&after);
    if (fd_snapshot_diff(&before, &after) >= 0) fresh_fail("an fd was left", 0);
    rl.rlim_cur = saved;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) fresh_fail("setrlimit", -errno);
    fresh_expect_ok(IPCB_METHOD_TRAMPOLINE, true, "start with fds");
}

int run_fresh(const char *what, const char *dir) {
    if (strcmp(what, "replaced") == 0 && dir)
        fresh_replaced(dir);
    else if (strcmp(what, "missing") == 0)
        fresh_missing();
    else if (strcmp(what, "emfile") == 0)
        fresh_emfile();
    else
        fresh_fail("unknown case", 0);
    siginfo_t si;
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0 || errno != ECHILD)
        fresh_fail("a child was left", 0);
    return 0;
}

/* Copies the build tree's helper to dir/helper. */
std::string copy_helper(const char *dir) {
    gchar *contents = nullptr;
    gsize size = 0;
    g_assert_true(g_file_get_contents(helper_path(), &contents, &size, nullptr));
    std::string copy = std::string(dir) + "/helper";
    g_assert_true(g_file_set_contents(copy.c_str(), contents, static_cast<gssize>(size), nullptr));
    g_free(contents);
    g_assert_cmpint(chmod(copy.c_str(), 0755), ==, 0);
    return copy;
}

/* Runs the fresh-process case what, with IPCBARRIER_EXEC_HELPER naming
 * helper ("" for the build tree's), in a scratch directory. */
void run_fresh_case(const char *what, bool copy) {
    char *dir = g_dir_make_tmp("test-spawn-XXXXXX", nullptr);
    g_assert_nonnull(dir);
    std::string helper = copy                           ? copy_helper(dir)
                         : strcmp(what, "missing") == 0 ? std::string(dir) + "/none"
                                                        : std::string(helper_path());
    std::string env = "IPCBARRIER_EXEC_HELPER=" + helper;
    const char *env_set[] = {env.c_str(), nullptr};
    std::string mode = std::string("--fresh=") + what;
    Start start(IPCB_METHOD_VFORK);
    start.options.env_set = env_set;
    ASSERT_OK(start.run({g_self.c_str(), mode.c_str(), dir}));
    assert_exits(&start.process, 0);
    (void)unlink((std::string(dir) + "/helper").c_str());
    g_assert_cmpint(rmdir(dir), ==, 0);
    g_free(dir);
    assert_no_children();
}

void test_helper_replaced() {
    run_fresh_case("replaced", true);
}

void test_helper_missing() {
    run_fresh_case("missing", false);
}

void test_helper_emfile() {
    run_fresh_case("emfile", false);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc >= 2 && strncmp(argv[1], "--fresh=", 8) == 0)
        return run_fresh(argv[1] + 8, argc > 2 ? argv[2] : nullptr);
    g_test_init(&argc, &argv, nullptr);
    (void)inspect_path();
    (void)helper_path();
    char *self = realpath("/proc/self/exe", nullptr);
    g_assert_nonnull(self);
    g_self = self;
    free(self);

    static std::vector<CaseRun> runs;
    runs.reserve(3 * std::size(cases));
    for (IpcbSpawnMethod method : {IPCB_METHOD_VFORK, IPCB_METHOD_TRAMPOLINE, IPCB_METHOD_FORK})
        for (const Case &c : cases)
            if (c.paths & path_bit(method)) runs.push_back({&c, method});
    for (const CaseRun &run : runs) {
        const char *method = method_name(run.method);
        /* The stress cases are a suite of their own, which the build runs
         * as a test of its own. */
        gchar *path = strcmp(run.c->name, "stress") == 0
                          ? g_strdup_printf("/spawn-stress/%s", method)
                          : g_strdup_printf("/spawn/%s/%s", method, run.c->name);
        test_add_data_fd_checked(path, &run, run_case);
        g_free(path);
    }
    test_add_fd_checked("/spawn/trampoline/helper-replaced", test_helper_replaced);
    test_add_fd_checked("/spawn/trampoline/helper-missing", test_helper_missing);
    test_add_fd_checked("/spawn/trampoline/helper-emfile", test_helper_emfile);
    test_add_fd_checked("/spawn/refused", test_refused);
    test_add_fd_checked("/spawn/auto", test_auto);
    test_add_fd_checked("/spawn/progress-auto", test_progress_auto);
    test_add_fd_checked("/spawn/step-names", test_step_names);
    test_add_fd_checked("/spawn/error-format", test_error_format);
    test_add_fd_checked("/spawn/process-close", test_process_close);
    test_add_fd_checked("/spawn/cxx-process", test_cxx_process);
    return g_test_run();
}
