/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "barrier-harness.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-util.h"

#include <ipcbarrier/barrier.h> /* BARRIER_ENV, BARRIER_RECORD_MAX */

/* How a case is played. The test process is the conductor: it creates the
 * barrier, forks the two sides (P takes the parent role, C the child role),
 * and drops its own copy, so that only the sides hold the barrier. Each side
 * then loops: read a command from its command pipe, run it on the barrier,
 * write a one-byte answer to its answer pipe. A side waiting for a command
 * is idle: it does nothing to the barrier.
 *
 * "Blocks" is proven without the clock: the conductor sends the operation,
 * then watches /proc/PID/syscall until the side sits in ppoll(), while no
 * answer has come. The peer is idle at that moment, so nothing can release
 * the wait; the conductor then releases or cancels it through the peer and
 * checks the answer. Timeouts are only watchdogs that turn a hang into a
 * failure. */

enum { P = 0, C = 1 };

typedef enum {
    OP_PLACE = 'p',
    OP_ABORT = 'a',
    OP_WAIT_NEXT = 'w',
    OP_WAIT_ABORTION = 'x',
    OP_SYNC_NEXT = 'n',
    OP_SYNC = 's',
    OP_PLACE_AND_SYNC = 'y',
    OP_PREDICATES = '?', /* answers '0' + PRED_* bits */
    OP_DESTROY = 'd',    /* answers 'd'; the side lives on */
    OP_EXIT = 'q',       /* _exit(0), no answer */
    OP_EXEC = 'e',       /* execve() a stand-in; it answers 'E' */
    OP_HANDLER = 'h',    /* SIGUSR1 handler that answers 'S'; arg: SA_RESTART or 0 */
    OP_ROUNDS = 'r',     /* arg rounds of place_and_sync; '1' if all were true */
    /* The waits with a limit of arg ms (TIMEOUT_NONE: none); they answer
     * '1', '0', 'T' for -ETIMEDOUT, 'e' for another error. */
    OP_WAIT_NEXT_T = 'W',
    OP_WAIT_ABORTION_T = 'X',
    OP_SYNC_NEXT_T = 'N',
    OP_SYNC_T = 'Y',
    /* sync with a limit of arg ms while SIGALRM arrives every millisecond:
     * 'T' if it timed out, no sooner than arg ms, after >= 1 signal. */
    OP_SYNC_T_SIGNALED = 'g',
    /* wait_next driven by poll() on get_pollfds() and zero-limit waits */
    OP_POLL_WAIT_NEXT = 'l',
    /* hand the barrier across execve(): arg 0 through the environment,
     * 1 through an envp built by the async-signal-safe serializer; the
     * re-executed side answers 'R' once it took the barrier over */
    OP_EXEC_SERIALIZED = 'z',
    /* serialize into the environment, then a forked grandchild that
     * inherits it tries to take it over: '1' if refused with -ESRCH */
    OP_GRANDCHILD = 'k',
    /* serialize into the environment, execve() a program that does not
     * exist, then go on with the same barrier: '1' once execve() failed */
    OP_EXEC_FAILS = 'f',
    /* abort with the reason arg: '1' or '0' as abort() */
    OP_ABORT_ERRNO = 'A',
    /* the reason the other side sent, as the answer byte itself */
    OP_GET_ABORT_ERRNO = 'G',
    /* a second process acting for this side: serialize into the
     * environment, fork a helper that takes the record over (as its
     * parent's) and aborts with the reason arg; '1' if its abort()
     * returned true. The side itself is left as it was. */
    OP_HELPER_ABORTS = 'H',
} Op;

#define TIMEOUT_NONE UINT32_MAX

enum { PRED_I = 1, PRED_THEY = 2, PRED_WE = 4, PRED_IS = 8 };

typedef enum {
    STEP_END = 0,
    STEP_DO,      /* send op, expect answer */
    STEP_START,   /* send op, answer read later by STEP_RESULT */
    STEP_RESULT,  /* expect the answer of the pending op */
    STEP_BLOCKS,  /* send op, prove it blocks; it stays pending */
    STEP_STILL,   /* prove the pending op is still blocked */
    STEP_EXIT,    /* the side exits; reap it */
    STEP_KILL,    /* SIGKILL the side; reap it */
    STEP_EXEC,    /* the side execve()s; expect the stand-in's 'E' */
    STEP_ALIVE,   /* the side's process has not exited */
    STEP_SIGNALS, /* send arg SIGUSR1, each acknowledged by the handler */
} StepKind;

typedef struct {
    StepKind kind;
    int side;
    int op;
    unsigned arg;
    int expect; /* the answer byte */
} Step;

/* clang-format off */
#define DO(side, op, expect) {STEP_DO, side, op, 0, (expect) ? '1' : '0'}
#define START(side, op) {STEP_START, side, op, 0, 0}
#define START_ARG(side, op, arg) {STEP_START, side, op, arg, 0}
#define RESULT(side, expect) {STEP_RESULT, side, 0, 0, (expect) ? '1' : '0'}
#define BLOCKS(side, op) {STEP_BLOCKS, side, op, 0, 0}
#define BLOCKS_TIMED(side, op, ms) {STEP_BLOCKS, side, op, ms, 0}
#define STILL_BLOCKED(side) {STEP_STILL, side, 0, 0, 0}
#define PREDICATES(side, bits) {STEP_DO, side, OP_PREDICATES, 0, '0' + (bits)}
#define DESTROY(side) {STEP_DO, side, OP_DESTROY, 0, 'd'}
#define EXIT(side) {STEP_EXIT, side, OP_EXIT, 0, 0}
#define KILL(side) {STEP_KILL, side, 0, 0, 0}
#define EXEC(side) {STEP_EXEC, side, OP_EXEC, 0, 'E'}
#define ALIVE(side) {STEP_ALIVE, side, 0, 0, 0}
#define HANDLER(side, flags) {STEP_DO, side, OP_HANDLER, flags, 'h'}
#define SIGNALS(side, n) {STEP_SIGNALS, side, 0, n, 0}
#define TIMED(side, op, ms, answer) {STEP_DO, side, op, ms, answer}
#define EXEC_SERIALIZED(side, how) {STEP_EXEC, side, OP_EXEC_SERIALIZED, how, 'R'}
#define ABORT_ERRNO(side, err, expect) {STEP_DO, side, OP_ABORT_ERRNO, err, (expect) ? '1' : '0'}
#define ABORT_ERRNO_IS(side, err) {STEP_DO, side, OP_GET_ABORT_ERRNO, 0, err}
#define HELPER_ABORTS(side, err) {STEP_DO, side, OP_HELPER_ABORTS, err, '1'}
/* clang-format on */

typedef struct {
    const char *name;
    Step steps[24];
} BarrierCase;

/* Rounds for OP_ROUNDS with arg 0: more with -m slow. */
#define ROUNDS_QUICK 5000u
#define ROUNDS_SLOW 200000u

static const BarrierCase cases[] = {
    /* The documented cases of the specification, in its order. */
    {"01-both-place-and-sync",
     {START(P, OP_PLACE_AND_SYNC), START(C, OP_PLACE_AND_SYNC), RESULT(P, true), RESULT(C, true)}},
    {"02-child-waits-for-parent-then-syncs",
     {START(P, OP_PLACE_AND_SYNC), DO(C, OP_WAIT_NEXT, true), DO(C, OP_PLACE_AND_SYNC, true),
      RESULT(P, true)}},
    {"03-wait-next-consumes-all-queued",
     {DO(P, OP_PLACE, true), DO(P, OP_PLACE, true), DO(C, OP_WAIT_NEXT, true),
      BLOCKS(C, OP_WAIT_NEXT), DO(P, OP_ABORT, true), RESULT(C, false)}},
    {"04-local-places-do-not-release-wait-next",
     {DO(P, OP_PLACE, true), DO(P, OP_PLACE, true), DO(C, OP_WAIT_NEXT, true),
      DO(C, OP_PLACE, true), DO(C, OP_PLACE, true), BLOCKS(C, OP_WAIT_NEXT), DO(P, OP_ABORT, true),
      RESULT(C, false)}},
    {"05-sync-next-after-consuming-returns-at-once",
     {DO(P, OP_PLACE, true), DO(P, OP_PLACE, true), DO(C, OP_WAIT_NEXT, true),
      DO(C, OP_SYNC_NEXT, true)}},
    {"06-sync-next-after-local-places-returns-at-once",
     {DO(P, OP_PLACE, true), DO(P, OP_PLACE, true), DO(C, OP_WAIT_NEXT, true),
      DO(C, OP_PLACE, true), DO(C, OP_PLACE, true), DO(C, OP_SYNC_NEXT, true)}},
    {"07-sync-before-placing-returns-at-once",
     {DO(C, OP_SYNC_NEXT, true), DO(C, OP_SYNC, true), DO(P, OP_PLACE, true), DO(P, OP_PLACE, true),
      START(P, OP_SYNC), DO(C, OP_PLACE, true), DO(C, OP_PLACE, true), DO(C, OP_SYNC_NEXT, true),
      DO(C, OP_SYNC_NEXT, true), DO(C, OP_SYNC, true), RESULT(P, true)}},
    {"08-sync-next-blocks-while-peer-idle",
     {DO(C, OP_PLACE, true), BLOCKS(C, OP_SYNC_NEXT), EXIT(P), RESULT(C, false)}},
    {"09-sync-next-fails-on-peer-abort",
     {DO(C, OP_PLACE, true), BLOCKS(C, OP_SYNC_NEXT), DO(P, OP_ABORT, true), RESULT(C, false)}},
    {"10-wait-abortion-sees-abort",
     {BLOCKS(C, OP_WAIT_ABORTION), DO(P, OP_ABORT, true), RESULT(C, true)}},
    {"11-wait-abortion-blocks-while-peer-idle",
     {DO(P, OP_PLACE, true), BLOCKS(C, OP_WAIT_ABORTION), DO(P, OP_PLACE, true), STILL_BLOCKED(C),
      EXIT(P), RESULT(C, true)}},
    {"12-wait-abortion-after-local-abort-is-false",
     {DO(C, OP_ABORT, true), BLOCKS(C, OP_WAIT_ABORTION), DO(P, OP_ABORT, true), RESULT(C, false)}},
    {"13-wait-abortion-after-local-abort-blocks",
     {DO(C, OP_ABORT, true), BLOCKS(C, OP_WAIT_ABORTION), EXIT(P), RESULT(C, false)}},
    {"14-peer-exit-is-implicit-abortion", {EXIT(C), DO(P, OP_PLACE_AND_SYNC, false)}},
    {"15-sync-blocks-while-peer-idle",
     {BLOCKS(P, OP_PLACE_AND_SYNC), DO(C, OP_ABORT, true), RESULT(P, false)}},
    {"16-exit-queues-behind-sync-points",
     {DO(P, OP_PLACE, true), EXIT(P), DO(C, OP_WAIT_NEXT, true), DO(C, OP_SYNC_NEXT, true),
      DO(C, OP_PLACE, true), DO(C, OP_SYNC_NEXT, true), DO(C, OP_PLACE, true),
      DO(C, OP_SYNC_NEXT, false)}},

    /* Abortion rules beyond the numbered cases. */
    {"abort-supersedes-queued-points",
     {DO(P, OP_PLACE, true), DO(P, OP_PLACE, true), DO(P, OP_PLACE, true), DO(P, OP_ABORT, true),
      DO(C, OP_WAIT_NEXT, false), PREDICATES(C, PRED_THEY | PRED_IS), DO(C, OP_SYNC, false),
      DO(C, OP_PLACE, false), DO(C, OP_WAIT_ABORTION, true)}},
    {"abort-releases-a-blocked-sync",
     {DO(C, OP_PLACE, true), DO(C, OP_PLACE, true), BLOCKS(C, OP_SYNC), DO(P, OP_PLACE, true),
      STILL_BLOCKED(C), DO(P, OP_ABORT, true), RESULT(C, false)}},
    {"abort-is-idempotent-and-one-way",
     {PREDICATES(C, 0), DO(C, OP_ABORT, true), PREDICATES(C, PRED_I | PRED_IS),
      DO(C, OP_ABORT, true), PREDICATES(C, PRED_I | PRED_IS), DO(C, OP_PLACE, false),
      DO(C, OP_SYNC, false), DO(C, OP_WAIT_NEXT, false), DO(C, OP_SYNC_NEXT, false),
      PREDICATES(P, 0), DO(P, OP_ABORT, true), DO(P, OP_WAIT_NEXT, false),
      PREDICATES(P, PRED_I | PRED_IS), DO(P, OP_WAIT_ABORTION, false),
      PREDICATES(P, PRED_I | PRED_THEY | PRED_WE | PRED_IS), DO(P, OP_ABORT, false),
      DO(C, OP_WAIT_ABORTION, false), PREDICATES(C, PRED_I | PRED_THEY | PRED_WE | PRED_IS)}},
    /* An abortion with a reason: it supersedes queued points like any
     * abortion, only the other side learns the reason, and an exit or a
     * plain abortion carries none. */
    {"abort-errno-reaches-the-other-side",
     {DO(C, OP_PLACE, true), DO(C, OP_PLACE, true), ABORT_ERRNO(C, EACCES, true),
      ABORT_ERRNO_IS(P, 0), ABORT_ERRNO_IS(C, 0), DO(P, OP_WAIT_NEXT, false),
      ABORT_ERRNO_IS(P, EACCES), PREDICATES(P, PRED_THEY | PRED_IS), ABORT_ERRNO_IS(C, 0),
      DO(P, OP_ABORT, false), DO(C, OP_WAIT_ABORTION, false), ABORT_ERRNO_IS(C, 0),
      PREDICATES(C, PRED_I | PRED_THEY | PRED_WE | PRED_IS), ABORT_ERRNO_IS(P, EACCES)}},
    {"abort-errno-wakes-a-blocked-wait",
     {DO(P, OP_PLACE, true), BLOCKS(P, OP_SYNC), ABORT_ERRNO(C, ENOENT, true), RESULT(P, false),
      ABORT_ERRNO_IS(P, ENOENT), ABORT_ERRNO(C, EIO, true), DO(C, OP_WAIT_NEXT, false), EXIT(C),
      DO(P, OP_WAIT_ABORTION, true), ABORT_ERRNO_IS(P, ENOENT)}},
    {"abort-errno-survives-the-handover",
     {ABORT_ERRNO(P, EPERM, true), DO(C, OP_WAIT_NEXT, false), EXEC_SERIALIZED(C, 0),
      ABORT_ERRNO_IS(C, EPERM), PREDICATES(C, PRED_THEY | PRED_IS), EXEC_SERIALIZED(C, 1),
      ABORT_ERRNO_IS(C, EPERM)}},
    {"exit-and-plain-abort-carry-no-reason",
     {DO(C, OP_PLACE, true), EXIT(C), DO(P, OP_WAIT_NEXT, true), DO(P, OP_WAIT_NEXT, false),
      ABORT_ERRNO_IS(P, 0), PREDICATES(P, PRED_THEY | PRED_IS)}},
    /* Two processes acting for one side both abort, with points still
     * queued: no write fails, the owner's abort() reports that the other
     * side has not aborted, and the other side sees one abortion. A reason
     * and a plain abortion give that reason; two reasons give EPROTO. */
    {"two-abortions-of-one-side-reason-and-plain",
     {DO(C, OP_PLACE, true), DO(C, OP_PLACE, true), HELPER_ABORTS(C, EACCES), DO(C, OP_ABORT, true),
      PREDICATES(C, PRED_I | PRED_IS), DO(P, OP_WAIT_NEXT, false), ABORT_ERRNO_IS(P, EACCES),
      DO(P, OP_ABORT, false), DO(C, OP_WAIT_ABORTION, false),
      PREDICATES(C, PRED_I | PRED_THEY | PRED_WE | PRED_IS)}},
    {"two-abortions-of-one-side-two-reasons",
     {DO(C, OP_PLACE, true), HELPER_ABORTS(C, ENOENT), ABORT_ERRNO(C, EACCES, true),
      PREDICATES(C, PRED_I | PRED_IS), DO(P, OP_WAIT_NEXT, false), ABORT_ERRNO_IS(P, EPROTO)}},

    {"destroy-is-implicit-abortion",
     {DO(C, OP_PLACE, true), DESTROY(C), DO(P, OP_WAIT_NEXT, true), DO(P, OP_WAIT_NEXT, false),
      PREDICATES(P, PRED_THEY | PRED_IS), ALIVE(C)}},
    {"execve-is-implicit-abortion",
     {DO(C, OP_PLACE, true), EXEC(C), DO(P, OP_WAIT_NEXT, true), DO(P, OP_WAIT_NEXT, false),
      PREDICATES(P, PRED_THEY | PRED_IS), ALIVE(C)}},
    {"killed-peer-is-implicit-abortion",
     {DO(P, OP_PLACE, true), DO(C, OP_PLACE, true), DO(C, OP_PLACE, true), BLOCKS(C, OP_SYNC),
      KILL(P), RESULT(C, false), PREDICATES(C, PRED_THEY | PRED_IS)}},
    {"killed-peer-points-are-consumed-first",
     {DO(P, OP_PLACE, true), KILL(P), DO(C, OP_WAIT_NEXT, true), DO(C, OP_WAIT_NEXT, false)}},
    {"exit-releases-a-blocked-wait-after-queued-point",
     {DO(C, OP_PLACE, true), BLOCKS(C, OP_PLACE_AND_SYNC), DO(P, OP_WAIT_NEXT, true), EXIT(P),
      RESULT(C, false)}},

    /* Signals are transparent: a blocked wait survives a stream of handled
     * signals, and then returns what it would have returned anyway. */
    {"signals-with-sa-restart",
     {HANDLER(C, SA_RESTART), DO(C, OP_PLACE, true), BLOCKS(C, OP_SYNC), SIGNALS(C, 200),
      STILL_BLOCKED(C), DO(P, OP_PLACE, true), RESULT(C, true), BLOCKS(C, OP_WAIT_NEXT),
      SIGNALS(C, 200), STILL_BLOCKED(C), DO(P, OP_ABORT, true), RESULT(C, false)}},
    {"signals-without-sa-restart",
     {HANDLER(C, 0), DO(C, OP_PLACE, true), BLOCKS(C, OP_SYNC), SIGNALS(C, 200), STILL_BLOCKED(C),
      DO(P, OP_PLACE, true), RESULT(C, true), BLOCKS(C, OP_WAIT_ABORTION), SIGNALS(C, 200),
      STILL_BLOCKED(C), EXIT(P), RESULT(C, true)}},

    /* Waits with a limit, and event loops. */
    {"timeout-is-not-an-abortion",
     {TIMED(C, OP_WAIT_NEXT_T, 0, 'T'), PREDICATES(C, 0), DO(P, OP_PLACE, true),
      TIMED(C, OP_WAIT_NEXT_T, 0, '1'), TIMED(C, OP_SYNC_T, 0, '1'), DO(C, OP_PLACE, true),
      DO(C, OP_PLACE, true), TIMED(C, OP_SYNC_T, 0, 'T'), TIMED(C, OP_SYNC_NEXT_T, 0, 'T'),
      PREDICATES(C, 0), DO(P, OP_PLACE, true), TIMED(C, OP_SYNC_T, 0, '1'),
      TIMED(C, OP_WAIT_ABORTION_T, 0, 'T'), DO(P, OP_ABORT, true),
      TIMED(C, OP_WAIT_ABORTION_T, 0, '1'), TIMED(C, OP_SYNC_T, 0, '0')}},
    {"timeout-expires-while-peer-idle",
     {DO(C, OP_PLACE, true), TIMED(C, OP_SYNC_T, 50, 'T'), TIMED(C, OP_WAIT_NEXT_T, 50, 'T'),
      TIMED(C, OP_WAIT_ABORTION_T, 50, 'T'), DO(P, OP_PLACE, true),
      TIMED(C, OP_SYNC_T, TIMEOUT_NONE, '1'), EXIT(P), TIMED(C, OP_WAIT_ABORTION_T, 50, '1'),
      TIMED(C, OP_SYNC_NEXT_T, TIMEOUT_NONE, '0')}},
    {"timed-wait-blocks-until-released",
     {HANDLER(C, 0), DO(C, OP_PLACE, true), BLOCKS_TIMED(C, OP_SYNC_T, 3600000), SIGNALS(C, 100),
      STILL_BLOCKED(C), DO(P, OP_PLACE, true), RESULT(C, true),
      BLOCKS_TIMED(C, OP_WAIT_ABORTION_T, TIMEOUT_NONE), DO(P, OP_ABORT, true), RESULT(C, true)}},
    {"signals-neither-shorten-nor-lengthen-a-timeout",
     {DO(C, OP_PLACE, true), TIMED(C, OP_SYNC_T_SIGNALED, 100, 'T'), DO(P, OP_PLACE, true),
      TIMED(C, OP_SYNC_T, 0, '1')}},
    {"event-loop-drives-a-wait",
     {BLOCKS(C, OP_POLL_WAIT_NEXT), DO(P, OP_PLACE, true), RESULT(C, true), DO(P, OP_PLACE, true),
      DO(P, OP_PLACE, true), DO(C, OP_POLL_WAIT_NEXT, true), BLOCKS(C, OP_POLL_WAIT_NEXT), EXIT(P),
      RESULT(C, false)}},

    /* The barrier handed across execve(). */
    {"execve-handover-through-environment",
     {DO(C, OP_PLACE, true), DO(P, OP_PLACE, true), EXEC_SERIALIZED(C, 0), ALIVE(C),
      DO(C, OP_SYNC, true), DO(P, OP_SYNC, true), START(P, OP_PLACE_AND_SYNC),
      DO(C, OP_PLACE_AND_SYNC, true), RESULT(P, true), DO(C, OP_PLACE, true), EXIT(C),
      DO(P, OP_WAIT_NEXT, true), DO(P, OP_WAIT_NEXT, false)}},
    {"execve-handover-through-envp-by-parent-side",
     {DO(P, OP_PLACE, true), DO(P, OP_PLACE, true), EXEC_SERIALIZED(P, 1),
      DO(C, OP_WAIT_NEXT, true), BLOCKS(P, OP_SYNC), DO(C, OP_PLACE, true), STILL_BLOCKED(P),
      DO(C, OP_PLACE, true), RESULT(P, true), EXEC_SERIALIZED(P, 1), DO(P, OP_PLACE, true), EXIT(P),
      DO(C, OP_WAIT_NEXT, true), DO(C, OP_WAIT_NEXT, false)}},
    {"execve-handover-keeps-abortion",
     {DO(C, OP_ABORT, true), EXEC_SERIALIZED(C, 0), PREDICATES(C, PRED_I | PRED_IS),
      DO(C, OP_PLACE, false), DO(P, OP_WAIT_NEXT, false), BLOCKS(C, OP_WAIT_ABORTION),
      DO(P, OP_ABORT, false), RESULT(C, false),
      PREDICATES(C, PRED_I | PRED_THEY | PRED_WE | PRED_IS)}},
    {"failed-execve-leaves-the-barrier-usable",
     {DO(C, OP_PLACE, true), DO(C, OP_EXEC_FAILS, true), DO(C, OP_PLACE, true),
      DO(P, OP_WAIT_NEXT, true), DO(P, OP_PLACE, true), DO(P, OP_PLACE, true),
      DO(C, OP_SYNC, true)}},
    {"handover-refused-to-grandchild",
     {DO(C, OP_GRANDCHILD, true), DO(C, OP_PLACE, true), DO(P, OP_WAIT_NEXT, true)}},

    {"place-and-sync-rounds",
     {START_ARG(P, OP_ROUNDS, 0), START_ARG(C, OP_ROUNDS, 0), RESULT(P, true), RESULT(C, true)}},
};

/* ---- the side processes (post-fork: async-signal-safe only) ---- */

typedef struct {
    uint32_t op;
    uint32_t arg;
} Command;

static int side_answer_fd = -1;
static const char *self_exe; /* the test binary, for the sides' execve() */

static void on_sigusr1(int sig) {
    (void)sig;
    int saved = errno;
    char c = 'S';
    (void)!write(side_answer_fd, &c, 1);
    errno = saved;
}

typedef struct {
    int cmd_fd;    /* read commands here */
    int answer_fd; /* write answers here */
    char *exec_argv[5];
    char exec_args[2][16];
    char **exec_envp; /* environ plus env_slot, for the envp hand-over */
    char env_slot[sizeof BARRIER_ENV "=" + BARRIER_RECORD_MAX];
} SideIo;

static volatile sig_atomic_t alarms;

static void on_sigalrm(int sig) {
    (void)sig;
    alarms++;
}

static uint64_t now_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static char timed_answer(int r) {
    if (r == 1) return '1';
    if (r == 0) return '0';
    if (r == -ETIMEDOUT) return 'T';
    return 'e';
}

static uint64_t arg_usec(uint32_t ms) {
    return ms == TIMEOUT_NONE ? UINT64_MAX : (uint64_t)ms * 1000u;
}

static char sync_timed_under_signals(const BarrierBackend *be, void *b, uint32_t ms) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigalrm; /* no SA_RESTART: every alarm interrupts */
    if (sigaction(SIGALRM, &sa, NULL) < 0) child_fail("sigaction");
    struct itimerval every_ms = {{0, 1000}, {0, 1000}}, off;
    memset(&off, 0, sizeof off);
    alarms = 0;
    uint64_t start = now_usec();
    if (setitimer(ITIMER_REAL, &every_ms, NULL) < 0) child_fail("setitimer");
    int r = be->sync_timeout(b, arg_usec(ms));
    uint64_t elapsed = now_usec() - start;
    if (setitimer(ITIMER_REAL, &off, NULL) < 0) child_fail("setitimer");
    if (r != -ETIMEDOUT) return timed_answer(r);
    if (elapsed < arg_usec(ms)) child_fail("the signals shortened the timeout");
    if (alarms == 0) child_fail("no signal arrived during the wait");
    return 'T';
}

static char poll_wait_next(const BarrierBackend *be, void *b) {
    for (;;) {
        struct pollfd pfd[2];
        if (be->get_pollfds(b, pfd) < 0) child_fail("get_pollfds");
        if (poll(pfd, 2, -1) < 0 && errno != EINTR) child_fail("poll");
        int r = be->wait_next_timeout(b, 0);
        if (r != -ETIMEDOUT) return timed_answer(r);
    }
}

static char exec_fails_and_goes_on(const BarrierBackend *be, void *b) {
    char *argv[] = {(char *)"/nonexistent/ipcbarrier-test", NULL};
    if (be->serialize_env(b, NULL) < 0) child_fail("serialize_env");
    if (execv(argv[0], argv) == 0 || errno != ENOENT) child_fail("execv did not fail");
    /* Still in this program, with the same barrier: it goes on as it was
     * (its fds stay inheritable, as documented). */
    if (unsetenv(BARRIER_ENV) < 0) child_fail("unsetenv");
    return '1';
}

static char grandchild_is_refused(const BarrierBackend *be, void *b) {
    void *mine = be->alloc();
    if (be->serialize_env(b, NULL) < 0) child_fail("serialize_env");
    pid_t pid = fork();
    if (pid < 0) child_fail("fork");
    if (pid == 0) {
        /* The grandchild inherited the variable and the fds. */
        _exit(be->deserialize_env(mine, NULL) == -ESRCH && getenv(BARRIER_ENV) ? 0 : 1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) child_fail("waitpid");
    if (unsetenv(BARRIER_ENV) < 0) child_fail("unsetenv");
    be->free(mine);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? '1' : '0';
}

static char helper_aborts(const BarrierBackend *be, void *b, int err) {
    void *theirs = be->alloc();
    if (be->serialize_env(b, NULL) < 0) child_fail("serialize_env");
    pid_t pid = fork();
    if (pid < 0) child_fail("fork");
    if (pid == 0) {
        /* The helper inherited the fds and the variable; the record is
         * its parent's. */
        if (be->deserialize(theirs, getenv(BARRIER_ENV), getppid()) < 0) _exit(2);
        _exit(be->abort_errno(theirs, err) ? 0 : 1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) child_fail("waitpid");
    if (unsetenv(BARRIER_ENV) < 0) child_fail("unsetenv");
    be->free(theirs); /* still empty here: the helper filled its own copy */
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? '1' : '0';
}

/* Replaces the side's program by a fresh copy of the test binary that
 * takes the barrier over, through the environment or through envp. */
__attribute__((noreturn)) static void exec_serialized(const BarrierBackend *be, void *b,
                                                      const SideIo *io, uint32_t how) {
    if (fd_set_inheritable(io->cmd_fd) < 0 || fd_set_inheritable(io->answer_fd) < 0)
        child_fail("cannot make the pipes inheritable");
    char *argv[5] = {io->exec_argv[0], (char *)"--barrier-exec-serialized", io->exec_argv[2],
                     io->exec_argv[3], NULL};
    if (how == 0) {
        if (be->serialize_env(b, NULL) < 0) child_fail("serialize_env");
        execv(argv[0], argv);
    } else {
        /* The slot was prepared before fork() as "IPCBARRIER=" */
        char *slot = (char *)io->env_slot;
        size_t prefix = sizeof BARRIER_ENV;
        if (be->serialize(b, slot + prefix, sizeof io->env_slot - prefix) < 0)
            child_fail("serialize");
        execve(argv[0], argv, io->exec_envp);
    }
    child_fail("execve of the test binary failed");
}

/* Serves the conductor's commands until it closes the command pipe. */
static void side_loop(const BarrierBackend *be, void *b, const SideIo *io, unsigned rounds) {
    side_answer_fd = io->answer_fd;
    for (;;) {
        Command cmd;
        ssize_t n = read(io->cmd_fd, &cmd, sizeof cmd);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) _exit(0); /* the conductor is done with us */
        if (n != (ssize_t)sizeof cmd) child_fail("short command");

        char answer;
        switch (cmd.op) {
            case OP_PLACE:
                answer = be->place(b) ? '1' : '0';
                break;
            case OP_ABORT:
                answer = be->abort(b) ? '1' : '0';
                break;
            case OP_ABORT_ERRNO:
                answer = be->abort_errno(b, (int)cmd.arg) ? '1' : '0';
                break;
            case OP_GET_ABORT_ERRNO:
                answer = (char)be->get_abort_errno(b);
                break;
            case OP_HELPER_ABORTS:
                answer = helper_aborts(be, b, (int)cmd.arg);
                break;
            case OP_WAIT_NEXT:
                answer = be->wait_next(b) ? '1' : '0';
                break;
            case OP_WAIT_ABORTION:
                answer = be->wait_abortion(b) ? '1' : '0';
                break;
            case OP_SYNC_NEXT:
                answer = be->sync_next(b) ? '1' : '0';
                break;
            case OP_SYNC:
                answer = be->sync(b) ? '1' : '0';
                break;
            case OP_PLACE_AND_SYNC:
                answer = be->place_and_sync(b) ? '1' : '0';
                break;
            case OP_PREDICATES:
                answer =
                    (char)('0' + (be->i_aborted(b) ? PRED_I : 0) +
                           (be->they_aborted(b) ? PRED_THEY : 0) +
                           (be->we_aborted(b) ? PRED_WE : 0) + (be->is_aborted(b) ? PRED_IS : 0));
                break;
            case OP_DESTROY:
                be->destroy(b);
                answer = 'd';
                break;
            case OP_EXIT:
                _exit(0);
            case OP_EXEC:
                /* The barrier's fds are close-on-exec; the command and answer
                 * pipes are handed to the stand-in on purpose. */
                if (fd_set_inheritable(io->cmd_fd) < 0 || fd_set_inheritable(io->answer_fd) < 0)
                    child_fail("cannot make the pipes inheritable");
                execv(io->exec_argv[0], io->exec_argv);
                child_fail("execv of the stand-in failed");
            case OP_HANDLER: {
                struct sigaction sa;
                memset(&sa, 0, sizeof sa);
                sa.sa_handler = on_sigusr1;
                sa.sa_flags = (int)cmd.arg;
                if (sigaction(SIGUSR1, &sa, NULL) < 0) child_fail("sigaction failed");
                answer = 'h';
                break;
            }
            case OP_WAIT_NEXT_T:
                answer = timed_answer(be->wait_next_timeout(b, arg_usec(cmd.arg)));
                break;
            case OP_WAIT_ABORTION_T:
                answer = timed_answer(be->wait_abortion_timeout(b, arg_usec(cmd.arg)));
                break;
            case OP_SYNC_NEXT_T:
                answer = timed_answer(be->sync_next_timeout(b, arg_usec(cmd.arg)));
                break;
            case OP_SYNC_T:
                answer = timed_answer(be->sync_timeout(b, arg_usec(cmd.arg)));
                break;
            case OP_SYNC_T_SIGNALED:
                answer = sync_timed_under_signals(be, b, cmd.arg);
                break;
            case OP_POLL_WAIT_NEXT:
                answer = poll_wait_next(be, b);
                break;
            case OP_EXEC_SERIALIZED:
                exec_serialized(be, b, io, cmd.arg);
            case OP_GRANDCHILD:
                answer = grandchild_is_refused(be, b);
                break;
            case OP_EXEC_FAILS:
                answer = exec_fails_and_goes_on(be, b);
                break;
            case OP_ROUNDS: {
                unsigned total = cmd.arg ? cmd.arg : rounds;
                answer = '1';
                for (unsigned i = 0; i < total; i++)
                    if (!be->place_and_sync(b)) {
                        answer = '0';
                        break;
                    }
                break;
            }
            default:
                child_fail("unknown command");
        }
        if (write(io->answer_fd, &answer, 1) != 1) child_fail("cannot answer");
    }
}

extern char **environ;

/* Everything a side needs after fork(), prepared before it. */
static void side_io_init(SideIo *io, int cmd_fd, int answer_fd) {
    io->cmd_fd = cmd_fd;
    io->answer_fd = answer_fd;
    snprintf(io->exec_args[0], sizeof io->exec_args[0], "%d", cmd_fd);
    snprintf(io->exec_args[1], sizeof io->exec_args[1], "%d", answer_fd);
    io->exec_argv[0] = (char *)self_exe;
    io->exec_argv[1] = (char *)"--barrier-exec-stand-in";
    io->exec_argv[2] = io->exec_args[0];
    io->exec_argv[3] = io->exec_args[1];
    io->exec_argv[4] = NULL;
    size_t n = 0;
    while (environ[n]) n++;
    io->exec_envp = g_new0(char *, n + 2);
    memcpy(io->exec_envp, environ, n * sizeof *environ);
    snprintf(io->env_slot, sizeof io->env_slot, "%s=", BARRIER_ENV);
    io->exec_envp[n] = io->env_slot;
}

/* ---- the conductor ---- */

typedef struct {
    pid_t pid;
    int pidfd;
    int cmd_fd;    /* conductor writes commands */
    int answer_fd; /* conductor reads answers */
    bool pending;
    bool gone;
    int pending_op;
} Side;

static const char *side_name(int side) {
    return side == P ? "parent side" : "child side";
}

static void send_command(Side *s, int op, unsigned arg) {
    Command cmd = {(uint32_t)op, arg};
    g_assert_cmpint(write(s->cmd_fd, &cmd, sizeof cmd), ==, (ssize_t)sizeof cmd);
}

static char read_answer(Side *s, int side, int op) {
    char c;
    if (!wait_readable(s->answer_fd, watchdog_ms()))
        g_error("watchdog: the %s did not answer '%c'", side_name(side), op);
    ssize_t n = read(s->answer_fd, &c, 1);
    if (n != 1) g_error("the %s died while running '%c'", side_name(side), op);
    return c;
}

/* True if the process sits in ppoll()/poll() right now, read from
 * /proc/PID/syscall (the syscall number, or "running"). */
static bool in_poll(pid_t pid) {
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    char *end;
    long nr = strtol(buf, &end, 10);
    if (end == buf) return false;
#ifdef SYS_poll
    if (nr == SYS_poll) return true;
#endif
    return nr == SYS_ppoll;
}

static void assert_blocked(Side *s, int side) {
    int64_t deadline = g_get_monotonic_time() + (int64_t)watchdog_ms() * 1000;
    for (;;) {
        /* An answer means the operation returned: it did not block. */
        if (wait_readable(s->answer_fd, 0)) {
            char c = 0;
            (void)!read(s->answer_fd, &c, 1);
            g_error("the %s returned '%c' from '%c' instead of blocking", side_name(side), c,
                    s->pending_op);
        }
        if (in_poll(s->pid)) break;
        if (g_get_monotonic_time() > deadline)
            g_error("watchdog: the %s never reached ppoll()", side_name(side));
        /* Only a pause between two looks at /proc, so that a loaded
         * machine runs the side; the outcome does not depend on it. */
        (void)poll(NULL, 0, 1);
    }
    /* The side sits in ppoll() and had not answered before: look once
     * more, as the answer may have been written between the two checks. */
    g_assert_false(wait_readable(s->answer_fd, 0));
}

static void reap(Side *s, int side, int expected_signal) {
    int status = wait_child_exit(s->pid, s->pidfd, watchdog_ms());
    if (status == INT_MIN) g_error("watchdog: the %s did not exit", side_name(side));
    if (expected_signal) {
        g_assert_true(WIFSIGNALED(status));
        g_assert_cmpint(WTERMSIG(status), ==, expected_signal);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_error("the %s failed (status 0x%x): see its message above", side_name(side), status);
    }
    s->gone = true;
}

typedef struct {
    const BarrierBackend *backend;
    const BarrierCase *c;
} CaseData;

static void run_case(gconstpointer data) {
    const CaseData *cd = data;
    const BarrierBackend *be = cd->backend;
    Side sides[2];
    SideIo io[2];
    unsigned rounds = test_slow() ? ROUNDS_SLOW : ROUNDS_QUICK;
    FdSnapshot before, after;
    fd_snapshot(&before);

    void *b = be->alloc();
    g_assert_cmpint(be->create(b), ==, 0);

    int pipes[2][2][2]; /* [side][command, answer][read, write] */
    for (int i = 0; i < 2; i++) {
        g_assert_cmpint(pipe2(pipes[i][0], O_CLOEXEC), ==, 0);
        g_assert_cmpint(pipe2(pipes[i][1], O_CLOEXEC), ==, 0);
        memset(&sides[i], 0, sizeof sides[i]);
        sides[i].cmd_fd = pipes[i][0][1];
        sides[i].answer_fd = pipes[i][1][0];
        side_io_init(&io[i], pipes[i][0][0], pipes[i][1][1]);
    }

    pid_t conductor = getpid();
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
            /* Die with the conductor, so a failed test leaves no side. */
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != conductor) _exit(3);
            for (int j = 0; j < 2; j++) {
                close(pipes[j][0][1]);
                close(pipes[j][1][0]);
                if (j != i) {
                    close(pipes[j][0][0]);
                    close(pipes[j][1][1]);
                }
            }
            if (be->set_role(b, i == C) < 0) child_fail("set_role failed");
            side_loop(be, b, &io[i], rounds);
            _exit(0);
        }
        sides[i].pid = pid;
        sides[i].pidfd = child_watch_open(pid);
    }
    for (int i = 0; i < 2; i++) {
        close(io[i].cmd_fd);
        close(io[i].answer_fd);
    }
    /* Only the sides may hold the barrier now, or no exit would ever be
     * seen as an abortion. */
    be->free(b);

    for (const Step *st = cd->c->steps; st->kind != STEP_END; st++) {
        Side *s = &sides[st->side];
        char got;
        g_test_message("step: %s %d '%c'", side_name(st->side), st->kind, st->op ? st->op : ' ');
        switch (st->kind) {
            case STEP_DO:
                g_assert_false(s->pending);
                send_command(s, st->op, st->arg);
                got = read_answer(s, st->side, st->op);
                if (got != st->expect)
                    g_error("the %s answered '%c' to '%c', expected '%c'", side_name(st->side), got,
                            st->op, st->expect);
                break;
            case STEP_START:
            case STEP_BLOCKS:
                g_assert_false(s->pending);
                send_command(s, st->op, st->arg);
                s->pending = true;
                s->pending_op = st->op;
                if (st->kind == STEP_BLOCKS) assert_blocked(s, st->side);
                break;
            case STEP_STILL:
                g_assert_true(s->pending);
                assert_blocked(s, st->side);
                break;
            case STEP_RESULT:
                g_assert_true(s->pending);
                got = read_answer(s, st->side, s->pending_op);
                if (got != st->expect)
                    g_error("the %s answered '%c' to '%c', expected '%c'", side_name(st->side), got,
                            s->pending_op, st->expect);
                s->pending = false;
                break;
            case STEP_EXIT:
                send_command(s, OP_EXIT, 0);
                reap(s, st->side, 0);
                break;
            case STEP_KILL:
                g_assert_cmpint(kill(s->pid, SIGKILL), ==, 0);
                reap(s, st->side, SIGKILL);
                break;
            case STEP_EXEC:
                send_command(s, st->op, st->arg);
                got = read_answer(s, st->side, st->op);
                g_assert_cmpint(got, ==, st->expect);
                break;
            case STEP_ALIVE:
                g_assert_true(child_alive(s->pid, s->pidfd));
                break;
            case STEP_SIGNALS:
                g_assert_true(s->pending);
                for (unsigned k = 0; k < st->arg; k++) {
                    g_assert_cmpint(kill(s->pid, SIGUSR1), ==, 0);
                    /* Wait for this one to be handled before the next, so
                     * none merges with another: all arg interrupt the wait. */
                    got = read_answer(s, st->side, 'S');
                    if (got != 'S')
                        g_error("the %s returned '%c' from '%c' under signals", side_name(st->side),
                                got, s->pending_op);
                }
                break;
            case STEP_END:
                break;
        }
    }

    for (int i = 0; i < 2; i++) {
        g_assert_false(sides[i].pending);
        close(sides[i].cmd_fd); /* EOF: the side exits */
        if (!sides[i].gone) reap(&sides[i], i, 0);
        close(sides[i].answer_fd);
        if (sides[i].pidfd >= 0) close(sides[i].pidfd);
        g_free(io[i].exec_envp);
    }
    fd_snapshot(&after);
    g_assert_cmpint(fd_snapshot_diff(&before, &after), ==, -1);
}

/* ---- single-process tests ---- */

static void test_lifecycle(gconstpointer data) {
    const BarrierBackend *be = data;
    void *b = be->alloc();
    FdSnapshot before, after;
    fd_snapshot(&before);

    /* An empty barrier: every operation fails, destroy is harmless. */
    g_assert_true(be->is_empty(b));
    g_assert_cmpint(be->set_role(b, false), ==, -EBADF);
    g_assert_false(be->place(b));
    g_assert_false(be->wait_next(b));
    g_assert_false(be->sync(b));
    g_assert_false(be->wait_abortion(b));
    g_assert_false(be->abort(b));
    be->destroy(b);
    be->destroy(b);

    g_assert_cmpint(be->create(b), ==, 0);
    g_assert_false(be->is_empty(b));
    /* Before the role is set, nothing may be used. */
    g_assert_false(be->place(b));
    g_assert_cmpint(be->set_role(b, true), ==, 0);
    g_assert_cmpint(be->set_role(b, true), ==, -EBUSY);
    g_assert_cmpint(be->set_role(b, false), ==, -EBUSY);
    be->destroy(b);
    g_assert_true(be->is_empty(b));
    be->destroy(b);
    be->free(b);
    fd_snapshot(&after);
    g_assert_cmpint(fd_snapshot_diff(&before, &after), ==, -1);
}

/* EMFILE at each of the three allocations: exact error, nothing leaked,
 * barrier unchanged. Runs in a child so the rlimit stays there. */
static void test_emfile(gconstpointer data) {
    const BarrierBackend *be = data;
    void *b = be->alloc();

    pid_t pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        int highest = fill_fd_holes();
        if (highest < 0) child_fail("cannot fill the fd table");
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0) child_fail("getrlimit");
        /* free = 0: the first eventfd fails; 1: the second; 2: the pipe
         * (it needs two); 4: everything fits. */
        for (int free_slots = 0; free_slots <= 4; free_slots++) {
            if (free_slots == 3) continue;
            rl.rlim_cur = (rlim_t)highest + 1 + (rlim_t)free_slots;
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0) child_fail("setrlimit");
            int r = be->create(b);
            if (free_slots < 4) {
                if (r != -EMFILE) child_fail("create did not fail with -EMFILE");
                if (!be->is_empty(b)) child_fail("a failed create changed the barrier");
            } else {
                if (r != 0) child_fail("create failed with room for its fds");
                be->destroy(b);
            }
            if (highest_open_fd(highest + 8) != highest) child_fail("create leaked an fd");
        }
        _exit(0);
    }
    g_assert_cmpint(wait_exit_status(pid), ==, 0);
    be->free(b);
}

/* ---- registration ---- */

void harness_handle_exec(int argc, char **argv, const BarrierBackend *be) {
    static char path[PATH_MAX];
    if (!realpath(argv[0], path)) {
        perror("realpath");
        exit(1);
    }
    self_exe = path;
    if (argc != 4) return;

    int cmd_fd = atoi(argv[2]);
    int answer_fd = atoi(argv[3]);
    if (strcmp(argv[1], "--barrier-exec-stand-in") == 0) {
        /* A side that called execve() on its barrier: say so, then idle
         * until told to go. */
        char c = 'E';
        if (write(answer_fd, &c, 1) != 1) _exit(4);
        while (read(cmd_fd, &c, 1) < 0 && errno == EINTR) {
        }
        _exit(0);
    }
    if (strcmp(argv[1], "--barrier-exec-serialized") == 0) {
        /* A side that handed its barrier over: take it and go on. */
        SideIo io;
        side_io_init(&io, cmd_fd, answer_fd);
        if (fcntl(cmd_fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(answer_fd, F_SETFD, FD_CLOEXEC) < 0)
            child_fail("fcntl");
        void *b = be->alloc();
        int r = be->deserialize_env(b, NULL);
        if (r < 0) {
            fprintf(stderr, "deserialize_env: %s\n", strerror(-r));
            child_fail("the re-executed side could not take the barrier over");
        }
        if (getenv(BARRIER_ENV)) child_fail("the record was left in the environment");
        char c = 'R';
        if (write(answer_fd, &c, 1) != 1) _exit(4);
        side_loop(be, b, &io, ROUNDS_QUICK);
        _exit(0);
    }
}

void harness_add_tests(const BarrierBackend *be, const char *prefix) {
    char *path;
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        CaseData *cd = g_new(CaseData, 1);
        cd->backend = be;
        cd->c = &cases[i];
        path = g_strdup_printf("%s/%s", prefix, cases[i].name);
        g_test_add_data_func_full(path, cd, run_case, g_free);
        g_free(path);
    }
    path = g_strdup_printf("%s/lifecycle", prefix);
    g_test_add_data_func(path, be, test_lifecycle);
    g_free(path);
    path = g_strdup_printf("%s/emfile-at-create", prefix);
    g_test_add_data_func(path, be, test_emfile);
    g_free(path);
}
