/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The other side of the event-loop adapters' tests: forked children that
 * hold one end of a barrier, and the crowd of children that one loop serves
 * at once. Nothing here knows a loop; each adapter's test drives its own. */

#include <sys/resource.h>
#include <sys/types.h>

#include <ipcbarrier/barrier-event.h>
#include <ipcbarrier/barrier.hh>

#include "c-callers.h"
#include "test-util.h"

using ChildFn = void (*)(Barrier *b, int arg);

/* Creates b, forks a child that sets its role, runs fn(b, arg) and
 * _exit(0)s, and sets the parent's role. Returns the child's pid. */
pid_t fork_peer(Barrier *b, ChildFn fn, int arg);

/* fork_peer() for the C++ Barrier: creates *b, forks a child that sets
 * its role and runs fn(b->c_barrier(), arg), sets the parent's role. */
pid_t fork_cxx_peer(ipcbarrier::Barrier *b, ChildFn fn, int arg);

/* Which end of the pipe fork_peer_with_pipe() hands to the child. */
enum class PeerPipe {
    CHILD_READS,
    CHILD_WRITES,
};

/* fork_peer() with a pipe for the handshakes the barrier cannot make: the
 * child runs fn(b, its end), the parent closes that end and keeps the other
 * in *ret_fd (close-on-exec). Returns the child's pid. */
pid_t fork_peer_with_pipe(Barrier *b, ChildFn fn, PeerPipe child_end, int *ret_fd);

/* Reads one byte from fd (waiting up to the watchdog) and asserts that it
 * is expected: the child's report that it got that far. */
void assert_peer_reported(int fd, char expected);

/* In a child: closes every fd but stdio, b's own (barrier_get_fds()) and
 * extra (if >= 0), as a child of a manager must, so that the barriers of
 * its siblings, which it inherited, see their peer's departure. */
void keep_only_barrier_fds(Barrier *b, int extra = -1);

/* A ChildFn for fork_peer(): keeps only its barrier's fds and waits for the
 * parent to abort or go away, idle meanwhile. */
void idle_child(Barrier *b, int);

/* What trace_syscalls() counted: every syscall entry, the ppoll() calls,
 * the poll() and ppoll() calls of exactly two fds that the scenario marked
 * (what a barrier's wait polls: its eventfd and its pipe end; a loop polls
 * more, its own wake-up fd at least), and the read() calls on marked fds. */
struct SyscallCounts {
    long total = 0;
    long ppoll = 0;
    long marked_polls = 0;
    long marked_reads = 0;
};

/* Runs scenario(arg) in a forked child, whose syscalls are counted from its
 * call of trace_begin() to its call of trace_end(), by this process through
 * ptrace(2) (the child is stopped at each syscall entry). The scenario
 * reports failure as a child does (CHILD_ASSERT(), child_fail()); its
 * stdout goes to stderr, so that an assertion cannot write into the TAP
 * stream. It ends with _exit(), which ASan needs of a traced process.
 * Returns true with the counts, or false when the test is skipped because
 * this process cannot trace its child. */
bool trace_syscalls(void (*scenario)(void *arg), void *arg, SyscallCounts *ret);

/* In the scenario: starts the counting (once). */
void trace_begin();

/* In the scenario: ends the counting (once); the reads on the fds marked in
 * marked are the ones counted. */
void trace_end(const FdSnapshot *marked);

/* Marks b's fds in *snapshot (which need not be a snapshot of open fds). */
void fd_mark_barrier(FdSnapshot *snapshot, const Barrier *b);

/* The scenario of the tests of the cost per event: many sources, each for
 * an idle child, a few that get one sync point each, and a loop that wakes
 * up many times for something else. Reading the barriers must cost a few
 * syscalls per sync point, and nothing per source and iteration. */
inline constexpr int COST_N_PEERS = 200;
inline constexpr int COST_N_ACTIVE = 4; /* the first ones place one point */
inline constexpr int COST_N_WAKEUPS = 1000;
/* At most this many polls and reads of barrier fds per sync point. */
inline constexpr int COST_PER_EVENT = 3;

/* A ChildFn for fork_peer(): keeps only its barrier's fds, places one sync
 * point, and waits for the parent to abort or go away. */
void active_child(Barrier *b, int);

/* Asserts the bounds on what trace_syscalls() counted for the scenario,
 * and tells the numbers. */
void assert_cost_per_event(const SyscallCounts *counts);

/* That the same fds are open as in before. */
void assert_same_fds(const FdSnapshot *before);

/* That every fd open now was open in before (some may have closed). */
void assert_no_new_fds(const FdSnapshot *before);

/* The number of entries in /proc/self/fd. */
int count_open_fds();

/* The pattern each child of the crowd plays, and what its source waits
 * for. The parent answers every 1 with a sync point (but for the victim,
 * which it kills instead) and asks to go on. */
enum Pattern {
    /* three place_and_sync, then an explicit abortion: 1, 1, 1, 0 */
    NEXT_THEN_ABORT,
    /* three place_and_sync, then exit: 1, 1, 1, 0 */
    SYNC_THEN_EXIT,
    /* wait for the parent's point, place one, wait for the answer,
     * abort: 1, 0 */
    SYNC_NEXT_THEN_ABORT,
    /* two places and an abortion; the source stops at the 1 */
    ABORTION,
    N_PATTERNS,
};

inline constexpr BarrierWaitKind pattern_kind[N_PATTERNS] = {
    BARRIER_WAIT_NEXT,
    BARRIER_WAIT_SYNC,
    BARRIER_WAIT_SYNC_NEXT,
    BARRIER_WAIT_ABORTION,
};

/* A ChildFn for fork_peer(): closes every fd but its own barrier's, then
 * plays pattern. */
void crowd_child(Barrier *b, int pattern);

/* One child of the crowd, as its parent sees it. */
struct CrowdPeer {
    Barrier b = BARRIER_NULL;
    pid_t pid = 0;
    int pattern = 0;
    bool victim = false;
    bool done = false; /* its source delivered its last result */
    int n = 0;
    int results[8] = {};
};

/* Starts peer i of a crowd whose victim is peer victim: i % N_PATTERNS is
 * its pattern. Forks its child and, for SYNC and SYNC_NEXT, places the
 * parent's point that their waits start ahead by. */
void crowd_peer_start(CrowdPeer *p, int i, int victim);

/* Raises RLIMIT_NOFILE for a crowd of n_peers, each a barrier (3 fds in
 * the parent; its source adds none), with room to spare, and stores the
 * old limit in *ret_old. Returns false, the test skipped, when the hard
 * limit is too low. */
bool crowd_fd_limit_raise(int n_peers, struct rlimit *ret_old);

/* What the parent does with each result of p's source: records it, kills
 * the victim at its first 1, answers every other 1 with a sync point, and
 * sets p->done at the last result the source may deliver. Returns whether
 * the source should go on: false only at ABORTION's 1. After the final 0
 * it asks to go on, which must change nothing. */
bool crowd_peer_answer(CrowdPeer *p, Barrier *b, int result);

/* Asserts that peer i's source delivered exactly the results of its
 * pattern (the victim's end with the implicit abortion), and reaps it: the
 * victim killed, every other child exited 0. */
void crowd_peer_check(const CrowdPeer *p, int i);
