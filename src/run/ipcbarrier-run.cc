/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ipcbarrier-run: starts COMMAND with ipcb_spawn() and, by default, waits
 * for it and exits with its status; with --ready, exits once COMMAND has
 * signalled readiness on the barrier it was handed. See ipcbarrier-run(1).
 *
 * Everything that starts, signals and waits is a library call; this file
 * turns the command line into IpcbSpawnOptions, writes the pid file in the
 * parent's setup, prints the start's progress with --verbose, forwards
 * signals while it waits, and turns the outcome into an exit status and one
 * line on stderr. */

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcbarrier/barrier.h>
#include <ipcbarrier/fd-util.hh>
#include <ipcbarrier/spawn.hh>
#include <ipcbarrier/time-util.hh>
#include <ipcbarrier/version.h>

#include "message-util.hh"
#include "parse-util.hh"

namespace {

using ipcbarrier::Deadline;
using ipcbarrier::UniqueFd;
using ipcbarrier::run::print_error;
using ipcbarrier::run::print_option_error;
using ipcbarrier::run::signal_name;
using ipcbarrier::run::Timeline;

constexpr char PROGRAM[] = "ipcbarrier-run";

/* The exit statuses of env(1) and timeout(1). */
constexpr int EXIT_READY_TIMEOUT = 124;
constexpr int EXIT_SETUP_FAILED = 125;
constexpr int EXIT_CANNOT_EXECUTE = 126;
constexpr int EXIT_NOT_FOUND = 127;

/* How long COMMAND has to end after SIGTERM, on a ready timeout, before
 * SIGKILL follows. */
constexpr uint64_t TERMINATE_GRACE_USEC = 5 * ipcbarrier::USEC_PER_SEC;

/* The signals forwarded to COMMAND while ipcbarrier-run waits. */
constexpr int FORWARDED_SIGNALS[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM};

const char HELP[] =
    "Usage: ipcbarrier-run [OPTION]... [--] COMMAND [ARG]...\n"
    "Start COMMAND with a setup on each side that meets at a barrier before it\n"
    "executes; wait for it and exit with its status, or with --ready, exit once\n"
    "it is ready.\n"
    "\n"
    "  --chdir=DIR             run COMMAND in DIR\n"
    "  --umask=MODE            set the file mode creation mask (octal)\n"
    "  --env=NAME=VALUE        set NAME in the environment\n"
    "  --unset=NAME            remove NAME from the environment\n"
    "  --clear-env             start from an empty environment\n"
    "  --setsid                run COMMAND in a new session and process group\n"
    "  --rlimit=NAME=SOFT[:HARD]\n"
    "                          set a resource limit (nofile, core, ...)\n"
    "  --uid=USER              run as USER (a name or a number)\n"
    "  --gid=GROUP             run with group GROUP (a name or a number)\n"
    "  --no-new-privs          set the no_new_privs attribute\n"
    "  --pdeathsig=SIGNAL      send SIGNAL to COMMAND when ipcbarrier-run ends\n"
    "  --cgroup=DIR            start COMMAND in the cgroup v2 directory DIR\n"
    "  --fd=CHILD=PARENT       pass fd PARENT to COMMAND as fd CHILD\n"
    "  --keep-fds              pass every inherited fd, not only 0-2 and --fd\n"
    "  --pidfile=PATH          write COMMAND's pid to PATH before it executes\n"
    "  --setup-timeout=TIME    limit the time until COMMAND executes\n"
    "  --ready                 exit 0 once COMMAND signals that it is ready\n"
    "  --ready-timeout=TIME    give up on readiness after TIME: terminate, exit 124\n"
    "  --method=METHOD         auto, vfork, trampoline or fork\n"
    "  --verbose               print a timeline of the start on stderr\n"
    "  --help                  print this help and exit\n"
    "  --version               print the version and exit\n"
    "\n"
    "TIME is a number of seconds, with a fraction and a unit if need be:\n"
    "0.3, 250ms, 2s, 1min; 0 means no limit.\n"
    "\n"
    "Exit status: COMMAND's own, 128+N if it died of signal N; 124 if it was\n"
    "not ready in time, 125 if the setup failed or the usage was wrong, 126 if\n"
    "COMMAND could not be executed, 127 if it was not found.\n";

/* What the command line asks for. The strings point into argv. */
struct Config {
    char **command = nullptr;
    std::vector<const char *> env_set;
    std::vector<const char *> env_unset;
    bool clear_env = false;
    const char *chdir = nullptr;
    std::optional<mode_t> umask;
    bool setsid = false;
    std::vector<IpcbSpawnRlimit> rlimits;
    const char *rlimit_text = nullptr; /* the last --rlimit, for messages */
    const char *uid_text = nullptr;
    const char *gid_text = nullptr;
    bool no_new_privs = false;
    int pdeathsig = 0;
    const char *pdeathsig_text = nullptr;
    const char *cgroup = nullptr;
    std::vector<IpcbSpawnFd> fds;
    bool keep_fds = false;
    const char *pidfile = nullptr;
    uint64_t setup_timeout_usec = 0;
    const char *setup_timeout_text = nullptr;
    bool ready = false;
    uint64_t ready_timeout_usec = 0;
    const char *ready_timeout_text = nullptr;
    IpcbSpawnMethod method = IPCB_METHOD_AUTO;
    const char *method_text = nullptr;
    bool verbose = false;
};

enum Option : int {
    OPT_CHDIR = 256,
    OPT_UMASK,
    OPT_ENV,
    OPT_UNSET,
    OPT_CLEAR_ENV,
    OPT_SETSID,
    OPT_RLIMIT,
    OPT_UID,
    OPT_GID,
    OPT_NO_NEW_PRIVS,
    OPT_PDEATHSIG,
    OPT_CGROUP,
    OPT_FD,
    OPT_KEEP_FDS,
    OPT_PIDFILE,
    OPT_SETUP_TIMEOUT,
    OPT_READY,
    OPT_READY_TIMEOUT,
    OPT_METHOD,
    OPT_VERBOSE,
    OPT_HELP,
    OPT_VERSION,
};

const struct option LONG_OPTIONS[] = {
    {"chdir", required_argument, nullptr, OPT_CHDIR},
    {"umask", required_argument, nullptr, OPT_UMASK},
    {"env", required_argument, nullptr, OPT_ENV},
    {"unset", required_argument, nullptr, OPT_UNSET},
    {"clear-env", no_argument, nullptr, OPT_CLEAR_ENV},
    {"setsid", no_argument, nullptr, OPT_SETSID},
    {"rlimit", required_argument, nullptr, OPT_RLIMIT},
    {"uid", required_argument, nullptr, OPT_UID},
    {"gid", required_argument, nullptr, OPT_GID},
    {"no-new-privs", no_argument, nullptr, OPT_NO_NEW_PRIVS},
    {"pdeathsig", required_argument, nullptr, OPT_PDEATHSIG},
    {"cgroup", required_argument, nullptr, OPT_CGROUP},
    {"fd", required_argument, nullptr, OPT_FD},
    {"keep-fds", no_argument, nullptr, OPT_KEEP_FDS},
    {"pidfile", required_argument, nullptr, OPT_PIDFILE},
    {"setup-timeout", required_argument, nullptr, OPT_SETUP_TIMEOUT},
    {"ready", no_argument, nullptr, OPT_READY},
    {"ready-timeout", required_argument, nullptr, OPT_READY_TIMEOUT},
    {"method", required_argument, nullptr, OPT_METHOD},
    {"verbose", no_argument, nullptr, OPT_VERBOSE},
    {"help", no_argument, nullptr, OPT_HELP},
    {"version", no_argument, nullptr, OPT_VERSION},
    {nullptr, 0, nullptr, 0},
};

/* The name of the long option with this value, for messages. */
const char *option_name(int value) {
    for (const struct option &o : LONG_OPTIONS)
        if (o.val == value) return o.name;
    return "?";
}

/* The result of parsing: go on, or exit with a status. */
struct ParseResult {
    bool exit = false;
    int status = 0;
};

ParseResult usage_error() {
    return ParseResult{true, EXIT_SETUP_FAILED};
}

/* Reports a bad value of option opt and returns the usage error. */
ParseResult bad_value(int opt, const char *value, const char *what) {
    print_error("--%s=%s: %s", option_name(opt), value, what);
    return usage_error();
}

ParseResult parse_duration_option(int opt, const char *value, uint64_t *ret_usec,
                                  const char **ret_text) {
    int r = ipcbarrier::run::parse_duration(value, ret_usec);
    if (r == -ERANGE) return bad_value(opt, value, "too long");
    if (r < 0) return bad_value(opt, value, "not a duration (such as 0.5, 250ms, 2s, 1min)");
    *ret_text = value;
    return {};
}

ParseResult parse_command_line(int argc, char **argv, Config *c) {
    /* "+": stop at COMMAND, whose own options are its own; ":": report a
     * missing argument as ':', so that every message is ours. */
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "+:", LONG_OPTIONS, nullptr)) != -1) {
        switch (opt) {
            case OPT_CHDIR:
                c->chdir = optarg;
                break;
            case OPT_UMASK: {
                mode_t mode;
                if (ipcbarrier::run::parse_mode(optarg, &mode) < 0)
                    return bad_value(opt, optarg, "not an octal mode up to 0777");
                c->umask = mode;
                break;
            }
            case OPT_ENV:
                if (optarg[0] == '=' || !strchr(optarg, '='))
                    return bad_value(opt, optarg, "not NAME=VALUE");
                c->env_set.push_back(optarg);
                break;
            case OPT_UNSET:
                if (optarg[0] == '\0' || strchr(optarg, '='))
                    return bad_value(opt, optarg, "not a variable name");
                c->env_unset.push_back(optarg);
                break;
            case OPT_CLEAR_ENV:
                c->clear_env = true;
                break;
            case OPT_SETSID:
                c->setsid = true;
                break;
            case OPT_RLIMIT: {
                IpcbSpawnRlimit limit;
                if (ipcbarrier::run::parse_rlimit(optarg, &limit) < 0)
                    return bad_value(opt, optarg,
                                     "not NAME=SOFT[:HARD] with a known NAME and SOFT <= HARD");
                c->rlimits.push_back(limit);
                c->rlimit_text = optarg;
                break;
            }
            case OPT_UID:
                c->uid_text = optarg;
                break;
            case OPT_GID:
                c->gid_text = optarg;
                break;
            case OPT_NO_NEW_PRIVS:
                c->no_new_privs = true;
                break;
            case OPT_PDEATHSIG:
                if (ipcbarrier::run::parse_signal(optarg, &c->pdeathsig) < 0)
                    return bad_value(opt, optarg, "not a signal");
                c->pdeathsig_text = optarg;
                break;
            case OPT_CGROUP:
                c->cgroup = optarg;
                break;
            case OPT_FD: {
                IpcbSpawnFd fd;
                if (ipcbarrier::run::parse_fd_mapping(optarg, &fd) < 0)
                    return bad_value(opt, optarg, "not CHILD=PARENT (two fd numbers)");
                for (const IpcbSpawnFd &other : c->fds)
                    if (other.child_fd == fd.child_fd)
                        return bad_value(opt, optarg, "that CHILD fd is given twice");
                /* Checked now, before this program opens fds of its own
                 * that could take the number. */
                if (fcntl(fd.parent_fd, F_GETFD) < 0)
                    return bad_value(opt, optarg, strerror(errno));
                c->fds.push_back(fd);
                break;
            }
            case OPT_KEEP_FDS:
                c->keep_fds = true;
                break;
            case OPT_PIDFILE:
                if (optarg[0] == '\0') return bad_value(opt, optarg, "an empty path");
                c->pidfile = optarg;
                break;
            case OPT_SETUP_TIMEOUT: {
                ParseResult r = parse_duration_option(opt, optarg, &c->setup_timeout_usec,
                                                      &c->setup_timeout_text);
                if (r.exit) return r;
                break;
            }
            case OPT_READY:
                c->ready = true;
                break;
            case OPT_READY_TIMEOUT: {
                ParseResult r = parse_duration_option(opt, optarg, &c->ready_timeout_usec,
                                                      &c->ready_timeout_text);
                if (r.exit) return r;
                break;
            }
            case OPT_METHOD:
                if (strcmp(optarg, "auto") == 0)
                    c->method = IPCB_METHOD_AUTO;
                else if (strcmp(optarg, "vfork") == 0)
                    c->method = IPCB_METHOD_VFORK;
                else if (strcmp(optarg, "trampoline") == 0)
                    c->method = IPCB_METHOD_TRAMPOLINE;
                else if (strcmp(optarg, "fork") == 0)
                    c->method = IPCB_METHOD_FORK;
                else
                    return bad_value(opt, optarg, "not one of auto, vfork, trampoline, fork");
                c->method_text = optarg;
                break;
            case OPT_VERBOSE:
                c->verbose = true;
                break;
            case OPT_HELP:
                fputs(HELP, stdout);
                return ParseResult{true, fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE};
            case OPT_VERSION:
                printf("%s (ipcbarrier) %s\n", PROGRAM, IPCBARRIER_VERSION);
                return ParseResult{true, fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE};
            default:
                print_option_error(opt, argv, LONG_OPTIONS, OPT_CHDIR);
                return usage_error();
        }
    }
    if (optind >= argc) {
        print_error("no COMMAND given (see --help)");
        return usage_error();
    }
    c->command = argv + optind;

    if (c->ready_timeout_text && !c->ready) {
        print_error("--ready-timeout needs --ready");
        return usage_error();
    }
    /* The vfork path's parent is suspended until COMMAND has executed:
     * it cannot write the pid file meanwhile, nor hand over a barrier. */
    if (c->method == IPCB_METHOD_VFORK && (c->ready || c->pidfile)) {
        print_error("--method=vfork cannot be combined with %s",
                    c->ready ? "--ready" : "--pidfile");
        return usage_error();
    }
    return {};
}

/* The ids of --uid and --gid, and the supplementary groups that go with a
 * change of user. */
struct Ids {
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    std::optional<std::vector<gid_t>> groups;
};

/* A name from the user or group database, or a number. */
template <class Id>
bool parse_id(const char *text, Id *ret) {
    uint64_t v;
    if (ipcbarrier::run::parse_unsigned(text, UINT32_MAX - 1, &v) < 0) return false;
    *ret = static_cast<Id>(v);
    return true;
}

ParseResult resolve_ids(const Config &c, Ids *ret) {
    const struct passwd *pw = nullptr;
    if (c.uid_text) {
        uid_t uid;
        if (parse_id(c.uid_text, &uid)) {
            pw = getpwuid(uid);
        } else {
            pw = getpwnam(c.uid_text);
            if (!pw) return bad_value(OPT_UID, c.uid_text, "no such user");
            uid = pw->pw_uid;
        }
        ret->uid = uid;
    }
    if (c.gid_text) {
        gid_t gid;
        if (!parse_id(c.gid_text, &gid)) {
            const struct group *gr = getgrnam(c.gid_text);
            if (!gr) return bad_value(OPT_GID, c.gid_text, "no such group");
            gid = gr->gr_gid;
        }
        ret->gid = gid;
    }
    /* Another user gets that user's groups, as login(1) and su(1) give
     * them, not the caller's: the primary group (unless --gid says
     * otherwise) and the supplementary groups of the group database, or
     * none for a uid without a user. The caller's own uid changes
     * nothing, which also lets an unprivileged caller name itself. */
    if (ret->uid && *ret->uid != geteuid()) {
        std::vector<gid_t> groups;
        if (pw) {
            if (!ret->gid) ret->gid = pw->pw_gid;
            std::string name = pw->pw_name;
            int n = 16;
            for (;;) {
                groups.resize(static_cast<size_t>(n));
                int want = n;
                if (getgrouplist(name.c_str(), *ret->gid, groups.data(), &want) >= 0) {
                    groups.resize(static_cast<size_t>(want));
                    break;
                }
                if (want <= n) want = n * 2;
                n = want;
            }
        }
        ret->groups = std::move(groups);
    }
    return {};
}

/* The parent's setup, which writes the pid file, and the timeline of the
 * start, which tells of it. */
struct ParentSetup {
    const Timeline *timeline = nullptr;
    const char *command = nullptr;
    const char *pidfile = nullptr;
    bool pidfile_written = false;
    pid_t pid = 0;
};

/* Writes "PID\n" to path atomically: into a new file beside it, renamed
 * over it, so that a reader finds the old file or the complete new one.
 * Returns 0 or -errno. */
int write_pidfile(const char *path, pid_t pid) {
    std::string tmp = std::string(path) + ".XXXXXX";
    UniqueFd fd(mkostemp(tmp.data(), O_CLOEXEC));
    if (!fd) return -errno;
    char line[32];
    int n = snprintf(line, sizeof line, "%d\n", static_cast<int>(pid));
    int r = 0;
    /* mkostemp() creates it 0600; a pid file is for everyone to read. */
    if (fchmod(fd.get(), 0644) < 0)
        r = -errno;
    else if (write(fd.get(), line, static_cast<size_t>(n)) != n)
        r = errno ? -errno : -EIO;
    else if (close(fd.release()) < 0)
        r = -errno;
    else if (rename(tmp.c_str(), path) < 0)
        r = -errno;
    if (r < 0) (void)unlink(tmp.c_str());
    return r;
}

int parent_setup(const IpcbSpawnChild *child, void *userdata) {
    auto *s = static_cast<ParentSetup *>(userdata);
    s->pid = child->pid;
    errno = 0;
    int r = write_pidfile(s->pidfile, child->pid);
    if (r < 0) return r;
    s->pidfile_written = true;
    return 0;
}

/* The --verbose timeline of the start, one event for each milestone the
 * library reports (the vfork path has no meeting, so only the first and
 * the last). */
void progress(IpcbSpawnProgress event, const IpcbSpawnChild *child, void *userdata) {
    const auto *s = static_cast<const ParentSetup *>(userdata);
    const int pid = static_cast<int>(child->pid);
    switch (event) {
        case IPCB_PROGRESS_SPAWNED:
            s->timeline->event("spawned pid %d", pid);
            break;
        case IPCB_PROGRESS_PARENT_SETUP_DONE:
            if (s->pidfile_written)
                s->timeline->event("parent setup done: wrote pid file %s", s->pidfile);
            else
                s->timeline->event("parent setup done");
            break;
        case IPCB_PROGRESS_CHILD_SETUP_DONE:
            s->timeline->event("child setup done");
            break;
        case IPCB_PROGRESS_SYNCED:
            s->timeline->event("synced");
            break;
        case IPCB_PROGRESS_EXECUTED:
            s->timeline->event("executed %s, pid %d", s->command, pid);
            break;
        default:
            break;
    }
}

/* Removes the pid file, if it still names pid (someone may have replaced
 * it meanwhile). */
void remove_pidfile(const char *path, pid_t pid, const Timeline &timeline) {
    UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return;
    char buf[32] = {};
    ssize_t n = read(fd.get(), buf, sizeof buf - 1);
    char expected[32];
    (void)snprintf(expected, sizeof expected, "%d\n", static_cast<int>(pid));
    if (n <= 0 || strcmp(buf, expected) != 0) return;
    if (unlink(path) == 0)
        timeline.event("removed pid file %s", path);
    else
        print_error("removing pid file %s: %s", path, strerror(errno));
}

/* The operand of a failed step, where this program knows it. */
std::string step_operand(const Config &c, const Ids &ids, IpcbSpawnStep step) {
    switch (step) {
        case IPCB_STEP_PATH:
        case IPCB_STEP_EXEC:
            return c.command[0];
        case IPCB_STEP_CWD:
            return c.chdir ? c.chdir : "";
        case IPCB_STEP_CGROUP:
            return c.cgroup ? c.cgroup : "";
        case IPCB_STEP_UID:
            return ids.uid ? std::to_string(*ids.uid) : "";
        case IPCB_STEP_GID:
            return ids.gid ? std::to_string(*ids.gid) : "";
        case IPCB_STEP_RLIMITS:
            return c.rlimits.size() == 1 ? c.rlimit_text : "";
        case IPCB_STEP_PARENT_DEATH:
            return c.pdeathsig_text ? c.pdeathsig_text : "";
        case IPCB_STEP_PREPARE:
            return c.method_text ? std::string("--method=") + c.method_text : "";
        default:
            return "";
    }
}

/* The exit status and the message of a failed start. */
int report_spawn_error(const Config &c, const Ids &ids, const ParentSetup &setup,
                       const IpcbSpawnError &error) {
    if (error.step == IPCB_STEP_PARENT_SETUP && c.pidfile && !setup.pidfile_written &&
        error.error != ETIMEDOUT) {
        print_error("pid file %s: %s", c.pidfile, strerror(error.error));
        return EXIT_SETUP_FAILED;
    }
    const char *step = ipcb_spawn_step_to_string(error.step);
    std::string operand = step_operand(c, ids, error.step);
    std::string where = std::string(step ? step : "start") + (operand.empty() ? "" : " ") + operand;
    if (error.error == ETIMEDOUT)
        print_error("%s: --setup-timeout=%s expired", where.c_str(),
                    c.setup_timeout_text ? c.setup_timeout_text : "?");
    else
        print_error("%s: %s", where.c_str(), strerror(error.error));
    /* As env(1): a program that is not there, and one that is there but
     * cannot be executed. */
    if (error.step == IPCB_STEP_PATH || error.step == IPCB_STEP_EXEC)
        return error.error == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE;
    return EXIT_SETUP_FAILED;
}

/* "exited with status 3", "was killed by signal 15 (TERM)". */
std::string describe_end(const siginfo_t &info) {
    if (info.si_code == CLD_EXITED) return "exited with status " + std::to_string(info.si_status);
    const char *name = signal_name(info.si_status);
    return std::string("was killed by signal ") + std::to_string(info.si_status) +
           (name ? std::string(" (") + name + ")" : "") +
           (info.si_code == CLD_DUMPED ? ", dumping core" : "");
}

/* COMMAND's end as an exit status: its own, or 128+N for signal N. */
int exit_status_of(const siginfo_t &info) {
    return info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
}

/* Watches COMMAND while this program waits: its end, its readiness, and
 * the signals that arrive here, which it forwards. Every signal it
 * handles is blocked and read from a signalfd, so that no handler runs. */
class Supervisor {
  public:
    Supervisor(const Config &config, const Timeline &timeline) noexcept
        : config_(config), timeline_(timeline) {}

    /* Blocks the forwarded signals and SIGCHLD, before COMMAND exists, so
     * that none is lost; COMMAND starts with an empty mask regardless.
     * Returns 0 or -errno. */
    int watch_signals() noexcept {
        /* An ignored SIGCHLD would make the kernel reap COMMAND. */
        if (signal(SIGCHLD, SIG_DFL) == SIG_ERR) return -errno;
        sigset_t mask;
        sigemptyset(&mask);
        for (int sig : FORWARDED_SIGNALS) {
            /* A signal that whoever started this program ignores (nohup,
             * a shell's background job) is not meant to stop COMMAND
             * either: it is not forwarded. */
            struct sigaction sa;
            if (sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler != SIG_IGN)
                sigaddset(&mask, sig);
        }
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0) return -errno;
        signal_fd_.reset(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
        return signal_fd_ ? 0 : -errno;
    }

    /* The outcome of a wait. */
    struct Outcome {
        bool ready = false;
        bool exited = false;
        bool timed_out = false;
        bool gave_up = false; /* closed or aborted the barrier without being ready */
        int abort_errno = 0;  /* the reason it sent with the abortion */
        siginfo_t info = {};  /* how it ended, with exited */
    };

    /* Waits until COMMAND has ended, or with for_ready has signalled
     * readiness, or the deadline passed; forwards signals meanwhile. A
     * COMMAND that closes or aborts its side of the barrier without being
     * ready is waited for on: its end tells how it failed. Returns 0 or
     * -errno. */
    int wait(IpcbProcess *p, bool for_ready, Deadline deadline, Outcome *ret) noexcept {
        bool watch_barrier = for_ready && !ret->gave_up;
        for (;;) {
            struct pollfd pfds[4];
            nfds_t n = 0;
            pfds[n++] = pollfd{signal_fd_.get(), POLLIN, 0};
            const nfds_t pidfd_at = n;
            /* Without a pidfd (old kernels, valgrind) SIGCHLD tells. */
            if (p->pidfd >= 0) pfds[n++] = pollfd{p->pidfd, POLLIN, 0};
            const nfds_t barrier_at = n;
            if (watch_barrier) {
                if (barrier_get_pollfds(&p->barrier, pfds + n) < 0) return -EBADF;
                n += 2;
            }
            struct timespec ts;
            if (ppoll(pfds, n, deadline.remaining_timespec(&ts), nullptr) < 0) {
                if (errno == EINTR) continue;
                return -errno;
            }

            bool check_exit = p->pidfd >= 0 && pfds[pidfd_at].revents != 0;
            if (pfds[0].revents) {
                int r = read_signals(p, &check_exit);
                if (r < 0) return r;
            }
            if (watch_barrier && (pfds[barrier_at].revents || pfds[barrier_at + 1].revents)) {
                if (consume_barrier(p, ret)) return 0;
                watch_barrier = !ret->gave_up;
            }
            if (check_exit) {
                int r = ipcb_process_wait(p, 0, &ret->info);
                if (r == 0) {
                    ret->exited = true;
                    /* Points placed before it ended still count. */
                    if (watch_barrier) (void)consume_barrier(p, ret);
                    return 0;
                }
                if (r != -ETIMEDOUT) return r;
            }
            if (!deadline.infinite() && deadline.remaining_usec() == 0) {
                ret->timed_out = true;
                return 0;
            }
        }
    }

  private:
    /* Reads what arrived on the barrier. Returns whether COMMAND is
     * ready; sets gave_up when it aborted or closed its side. */
    bool consume_barrier(IpcbProcess *p, Outcome *ret) noexcept {
        int r = barrier_wait_next_timeout(&p->barrier, 0);
        if (r > 0) {
            ret->ready = true;
            return true;
        }
        if (r != -ETIMEDOUT) {
            ret->gave_up = true;
            ret->abort_errno = r < 0 ? -r : barrier_get_abort_errno(&p->barrier);
            timeline_.event("the barrier was closed without readiness%s%s",
                            ret->abort_errno ? ": " : "",
                            ret->abort_errno ? strerror(ret->abort_errno) : "");
        }
        return false;
    }

    int read_signals(IpcbProcess *p, bool *check_exit) noexcept {
        for (;;) {
            struct signalfd_siginfo si;
            ssize_t n = read(signal_fd_.get(), &si, sizeof si);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return 0;
            if (n < 0) return -errno;
            if (n != sizeof si) return -EIO;
            int sig = static_cast<int>(si.ssi_signo);
            if (sig == SIGCHLD) {
                *check_exit = true;
                continue;
            }
            forward(p, sig, si.ssi_code);
        }
    }

    void forward(IpcbProcess *p, int sig, int code) noexcept {
        const char *name = signal_name(sig);
        /* A terminal sends SIGINT and SIGQUIT to its whole foreground
         * process group: COMMAND has it already unless it left ours. */
        if ((sig == SIGINT || sig == SIGQUIT) && code == SI_KERNEL && p->pid > 0 &&
            getpgid(p->pid) == getpgrp()) {
            timeline_.event("SIG%s from the terminal: COMMAND has it too", name);
            return;
        }
        if (p->pid == 0) return;
        int r = ipcb_process_kill(p, sig, config_.setsid);
        if (r == 0)
            timeline_.event("forwarded SIG%s to %s %d", name,
                            config_.setsid ? "process group" : "pid", static_cast<int>(p->pid));
        else if (r != -ESRCH)
            print_error("forwarding SIG%s: %s", name, strerror(-r));
    }

    const Config &config_;
    const Timeline &timeline_;
    UniqueFd signal_fd_;
};

/* Ends COMMAND after a ready timeout: SIGTERM (to its process group under
 * --setsid), SIGKILL if it is still there TERMINATE_GRACE_USEC later. */
int terminate(const Config &c, const Timeline &timeline, Supervisor *supervisor, IpcbProcess *p,
              Supervisor::Outcome *outcome) {
    for (int sig : {SIGTERM, SIGKILL}) {
        int r = ipcb_process_kill(p, sig, c.setsid);
        if (r < 0 && r != -ESRCH) {
            print_error("sending SIG%s: %s", signal_name(sig), strerror(-r));
            return r;
        }
        timeline.event("sent SIG%s", signal_name(sig));
        outcome->timed_out = false;
        r = supervisor->wait(
            p, false, sig == SIGTERM ? Deadline::after(TERMINATE_GRACE_USEC) : Deadline::never(),
            outcome);
        if (r < 0) return r;
        if (outcome->exited) return 0;
    }
    return -ETIMEDOUT;
}

int run(int argc, char **argv) {
    Timeline timeline(false);
    Config c;
    ParseResult parsed = parse_command_line(argc, argv, &c);
    if (parsed.exit) return parsed.status;
    if (c.verbose) timeline.enable();

    Ids ids;
    parsed = resolve_ids(c, &ids);
    if (parsed.exit) return parsed.status;

    UniqueFd cgroup_fd;
    if (c.cgroup) {
        cgroup_fd.reset(open(c.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!cgroup_fd) {
            print_error("cgroup %s: %s", c.cgroup, strerror(errno));
            return EXIT_SETUP_FAILED;
        }
    }

    Supervisor supervisor(c, timeline);
    if (int r = supervisor.watch_signals(); r < 0) {
        print_error("signalfd: %s", strerror(-r));
        return EXIT_SETUP_FAILED;
    }

    std::vector<const char *> env_set = c.env_set, env_unset = c.env_unset;
    env_set.push_back(nullptr);
    env_unset.push_back(nullptr);
    const char *empty_env[] = {nullptr};
    ParentSetup setup{&timeline, c.command[0], c.pidfile, false, 0};

    uint64_t flags = 0;
    if (c.keep_fds) flags |= IPCB_SPAWN_KEEP_FDS;
    if (c.setsid) flags |= IPCB_SPAWN_NEW_SESSION;
    if (c.umask) flags |= IPCB_SPAWN_SET_UMASK;
    if (ids.uid) flags |= IPCB_SPAWN_SET_UID;
    if (ids.gid) flags |= IPCB_SPAWN_SET_GID;
    if (ids.groups) flags |= IPCB_SPAWN_SET_GROUPS;
    if (c.no_new_privs) flags |= IPCB_SPAWN_NO_NEW_PRIVS;
    if (cgroup_fd) flags |= IPCB_SPAWN_CGROUP;
    if (c.ready) flags |= IPCB_SPAWN_READY;

    IpcbSpawnOptions options = {
        .argv = c.command,
        .envp = c.clear_env ? empty_env : nullptr,
        .env_set = env_set.data(),
        .env_unset = env_unset.data(),
        .cwd = c.chdir,
        .umask = c.umask.value_or(0),
        .fds = c.fds.data(),
        .n_fds = c.fds.size(),
        .rlimits = c.rlimits.data(),
        .n_rlimits = c.rlimits.size(),
        .uid = ids.uid.value_or(0),
        .gid = ids.gid.value_or(0),
        .groups = ids.groups ? ids.groups->data() : nullptr,
        .n_groups = ids.groups ? ids.groups->size() : 0,
        .parent_death_signal = c.pdeathsig,
        .cgroup_fd = cgroup_fd.get(),
        .flags = flags,
        .setup_timeout_usec = c.setup_timeout_usec,
        .parent_setup = c.pidfile ? parent_setup : nullptr,
        .parent_setup_userdata = c.pidfile ? &setup : nullptr,
        .method = c.method,
        /* Only asked for what is printed: a start without it is told
         * nothing. */
        .progress = c.verbose ? progress : nullptr,
        .progress_userdata = c.verbose ? &setup : nullptr,
    };

    ipcbarrier::Process process;
    IpcbSpawnError error = {};
    int r = ipcbarrier::Process::spawn(options, &process, &error);
    cgroup_fd.reset();
    if (r < 0) {
        int status = report_spawn_error(c, ids, setup, error);
        if (setup.pidfile_written) remove_pidfile(c.pidfile, setup.pid, timeline);
        return status;
    }
    IpcbProcess *p = process.c_process();
    const pid_t pid = p->pid;

    Supervisor::Outcome outcome;
    r = supervisor.wait(
        p, c.ready,
        c.ready && c.ready_timeout_usec ? Deadline::after(c.ready_timeout_usec) : Deadline::never(),
        &outcome);
    if (r < 0) {
        print_error("waiting for %s: %s", c.command[0], strerror(-r));
        return EXIT_SETUP_FAILED;
    }
    if (outcome.ready) {
        timeline.event("ready");
        if (outcome.exited) {
            timeline.event("%s", describe_end(outcome.info).c_str());
            if (c.pidfile) remove_pidfile(c.pidfile, pid, timeline);
        }
        return EXIT_SUCCESS;
    }
    if (outcome.timed_out) {
        print_error("ready: %s is not ready after --ready-timeout=%s; terminating it", c.command[0],
                    c.ready_timeout_text);
        r = terminate(c, timeline, &supervisor, p, &outcome);
        if (r < 0) {
            print_error("waiting for %s: %s", c.command[0], strerror(-r));
            return EXIT_READY_TIMEOUT;
        }
        timeline.event("%s", describe_end(outcome.info).c_str());
        if (c.pidfile) remove_pidfile(c.pidfile, pid, timeline);
        return EXIT_READY_TIMEOUT;
    }

    std::string end = describe_end(outcome.info);
    timeline.event("%s", end.c_str());
    if (c.pidfile) remove_pidfile(c.pidfile, pid, timeline);
    int status = exit_status_of(outcome.info);
    if (c.ready) {
        std::string reason =
            outcome.abort_errno ? std::string(" (") + strerror(outcome.abort_errno) + ")" : "";
        print_error("ready: %s %s before it was ready%s", c.command[0], end.c_str(),
                    reason.c_str());
        /* It failed to start, whatever it exited with. */
        if (status == EXIT_SUCCESS) status = EXIT_SETUP_FAILED;
    }
    return status;
}

}  // namespace

int main(int argc, char **argv) {
    ipcbarrier::run::set_program_name(PROGRAM);
    try {
        return run(argc, argv);
    } catch (const std::bad_alloc &) {
        print_error("out of memory");
    } catch (const std::exception &e) {
        print_error("%s", e.what());
    }
    return EXIT_SETUP_FAILED;
}
