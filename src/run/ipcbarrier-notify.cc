/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ipcbarrier-notify: for a script that was handed a barrier across
 * execve() (ipcbarrier-run --ready, or any IPCB_SPAWN_READY start). The
 * record in IPCBARRIER is meant for the script, which is this program's
 * parent; barrier_deserialize() with the parent as owner takes it over as
 * barrier(3) documents, and the script keeps its own copy of the fds, so
 * this program's exit aborts nothing. See ipcbarrier-notify(1). */

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <getopt.h>
#include <unistd.h>

#include <ipcbarrier/barrier.h>
#include <ipcbarrier/version.h>

#include "message-util.hh"
#include "parse-util.hh"

namespace {

using ipcbarrier::run::print_error;
using ipcbarrier::run::print_option_error;

constexpr char PROGRAM[] = "ipcbarrier-notify";

/* As for ipcbarrier-run: 124 for a time limit, as timeout(1). */
constexpr int EXIT_NO_BARRIER = 1;
constexpr int EXIT_USAGE = 2;
constexpr int EXIT_TIMEOUT = 124;

const char HELP[] =
    "Usage: ipcbarrier-notify --ready | --wait [--timeout=TIME]\n"
    "Act on the barrier that the calling script was handed in $IPCBARRIER\n"
    "(by ipcbarrier-run --ready, say).\n"
    "\n"
    "  --ready          place a sync point: the script is ready\n"
    "  --wait           wait for the other side's next sync point\n"
    "  --timeout=TIME   give up waiting after TIME (exit 124)\n"
    "  --help           print this help and exit\n"
    "  --version        print the version and exit\n"
    "\n"
    "TIME is a number of seconds, with a fraction and a unit if need be:\n"
    "0.3, 250ms, 2s, 1min; 0 means no limit.\n"
    "\n"
    "Exit status: 0 done, 1 no usable barrier or the other side gave up,\n"
    "2 wrong usage, 124 time limit reached.\n";

enum Option : int {
    OPT_READY = 256,
    OPT_WAIT,
    OPT_TIMEOUT,
    OPT_HELP,
    OPT_VERSION,
};

/* clang-format off */
const struct option LONG_OPTIONS[] = {
    {"ready", no_argument, nullptr, OPT_READY},
    {"wait", no_argument, nullptr, OPT_WAIT},
    {"timeout", required_argument, nullptr, OPT_TIMEOUT},
    {"help", no_argument, nullptr, OPT_HELP},
    {"version", no_argument, nullptr, OPT_VERSION},
    {nullptr, 0, nullptr, 0},
};
/* clang-format on */

/* Why a record cannot be used, in the words of barrier_deserialize()'s
 * errors. */
const char *record_problem(int r) {
    switch (r) {
        case -ENOENT:
            return "no barrier: $" BARRIER_ENV
                   " is not set (start the script with ipcbarrier-run --ready)";
        case -ESRCH:
            return "the barrier in $" BARRIER_ENV
                   " is not meant for this program's parent (call ipcbarrier-notify from the "
                   "script that was started with it)";
        case -EBADF:
            return "the barrier's fds named in $" BARRIER_ENV " are not open here";
        case -EBADFD:
            return "the fds named in $" BARRIER_ENV " are not the barrier's";
        case -EINVAL:
        case -E2BIG:
            return "$" BARRIER_ENV " does not hold a barrier record";
        default:
            return strerror(-r);
    }
}

int run(int argc, char **argv) {
    bool ready = false, wait = false;
    uint64_t timeout_usec = 0;
    const char *timeout_text = nullptr;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":", LONG_OPTIONS, nullptr)) != -1) {
        switch (opt) {
            case OPT_READY:
                ready = true;
                break;
            case OPT_WAIT:
                wait = true;
                break;
            case OPT_TIMEOUT: {
                int r = ipcbarrier::run::parse_duration(optarg, &timeout_usec);
                if (r < 0) {
                    print_error("--timeout=%s: %s", optarg,
                                r == -ERANGE ? "too long"
                                             : "not a duration (such as 0.5, 250ms, 2s, 1min)");
                    return EXIT_USAGE;
                }
                timeout_text = optarg;
                break;
            }
            case OPT_HELP:
                fputs(HELP, stdout);
                return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
            case OPT_VERSION:
                printf("%s (ipcbarrier) %s\n", PROGRAM, IPCBARRIER_VERSION);
                return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
            default:
                print_option_error(opt, argv, LONG_OPTIONS, OPT_READY);
                return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        print_error("unexpected argument %s (see --help)", argv[optind]);
        return EXIT_USAGE;
    }
    if (!ready && !wait) {
        print_error("nothing to do: give --ready or --wait (see --help)");
        return EXIT_USAGE;
    }
    if (timeout_text && !wait) {
        print_error("--timeout needs --wait");
        return EXIT_USAGE;
    }

    /* secure_getenv(): a set-user-ID caller's environment is not ours to
     * trust, as barrier_deserialize_env() decides too. */
    const char *record = secure_getenv(BARRIER_ENV);
    Barrier b = BARRIER_NULL;
    int r = barrier_deserialize(&b, record, getppid());
    /* A script that ends with "exec ipcbarrier-notify ..." hands its own
     * process over: then the record is meant for this one. */
    if (r == -ESRCH) r = barrier_deserialize(&b, record, 0);
    if (r < 0) {
        print_error("%s", record_problem(r));
        return EXIT_NO_BARRIER;
    }

    int status = EXIT_SUCCESS;
    if (ready && !barrier_place(&b)) {
        print_error("ready: the other side has given up");
        status = EXIT_NO_BARRIER;
    }
    if (status == EXIT_SUCCESS && wait) {
        r = barrier_wait_next_timeout(&b, timeout_usec ? timeout_usec : UINT64_MAX);
        if (r == -ETIMEDOUT) {
            print_error("wait: no sync point after --timeout=%s", timeout_text);
            status = EXIT_TIMEOUT;
        } else if (r == 0) {
            if (int reason = barrier_get_abort_errno(&b); reason > 0)
                print_error("wait: the other side aborted: %s", strerror(reason));
            else
                print_error("wait: the other side has given up or gone away");
            status = EXIT_NO_BARRIER;
        } else if (r < 0) {
            print_error("wait: %s", strerror(-r));
            status = EXIT_NO_BARRIER;
        }
    }
    /* Closes this program's copies only: the script keeps its own. */
    barrier_destroy(&b);
    return status;
}

}  // namespace

int main(int argc, char **argv) {
    ipcbarrier::run::set_program_name(PROGRAM);
    return run(argc, argv);
}
