/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "barrier-peer.h"

#include <csignal>

#include <dirent.h>
#include <fcntl.h>
#include <glib.h>
#include <unistd.h>

#include <ipcbarrier/fd-util.hh>

pid_t fork_peer(Barrier *b, ChildFn fn, int arg) {
    ASSERT_OK(barrier_create(b));
    pid_t pid = fork_test_child();
    if (pid == 0) {
        if (barrier_set_role(b, BARRIER_CHILD) < 0) child_fail("barrier_set_role failed");
        fn(b, arg);
        _exit(0);
    }
    ASSERT_OK(barrier_set_role(b, BARRIER_PARENT));
    return pid;
}

pid_t fork_peer_with_pipe(Barrier *b, ChildFn fn, PeerPipe child_end, int *ret_fd) {
    int p[2];
    g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
    const int child = child_end == PeerPipe::CHILD_READS ? 0 : 1;
    pid_t pid = fork_peer(b, fn, p[child]);
    close(p[child]);
    *ret_fd = p[1 - child];
    return pid;
}

void assert_peer_reported(int fd, char expected) {
    g_assert_true(wait_readable(fd, watchdog_ms()));
    char c;
    g_assert_cmpint(read(fd, &c, 1), ==, 1);
    g_assert_cmpint(c, ==, expected);
}

void assert_same_fds(const FdSnapshot *before) {
    FdSnapshot now;
    fd_snapshot(&now);
    g_assert_cmpint(fd_snapshot_diff(before, &now), ==, -1);
}

void assert_no_new_fds(const FdSnapshot *before) {
    FdSnapshot now;
    fd_snapshot(&now);
    for (int fd = 0; fd < FD_SNAPSHOT_MAX; fd++) {
        uint64_t bit = UINT64_C(1) << (fd % 64);
        if (now.open[fd / 64] & bit) g_assert_true(before->open[fd / 64] & bit);
    }
}

int count_open_fds() {
    DIR *d = opendir("/proc/self/fd");
    g_assert_nonnull(d);
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

void crowd_child(Barrier *b, int pattern) {
    /* Only our own barrier: the parent's ends of the others stay theirs. */
    int keep[3] = {b->me, b->them, b->pipe[1]};
    for (int i = 1; i < 3; i++)
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    if (ipcbarrier::close_all_fds_sorted(keep) < 0) child_fail("close_all_fds_sorted failed");

    switch (pattern) {
        case NEXT_THEN_ABORT:
            for (int i = 0; i < 3; i++) CHILD_ASSERT(barrier_place_and_sync(b));
            CHILD_ASSERT(barrier_abort(b));
            break;
        case SYNC_THEN_EXIT:
            for (int i = 0; i < 3; i++) CHILD_ASSERT(barrier_place_and_sync(b));
            break;
        case SYNC_NEXT_THEN_ABORT:
            /* Not place_and_sync(): its sync could read the answer too,
             * and the wait for it would never end. */
            CHILD_ASSERT(barrier_wait_next(b));
            CHILD_ASSERT(barrier_place(b));
            CHILD_ASSERT(barrier_wait_next(b));
            CHILD_ASSERT(barrier_abort(b));
            break;
        case ABORTION:
            CHILD_ASSERT(barrier_place(b));
            CHILD_ASSERT(barrier_place(b));
            CHILD_ASSERT(barrier_abort(b));
            break;
        default:
            child_fail("unknown pattern");
    }
}

void crowd_peer_start(CrowdPeer *p, int i, int victim) {
    p->pattern = i % N_PATTERNS;
    p->victim = i == victim;
    p->pid = fork_peer(&p->b, crowd_child, p->pattern);
    /* The waits for the parent's side: SYNC and SYNC_NEXT start ahead by
     * one, which the child's first wait consumes. */
    if (p->pattern == SYNC_THEN_EXIT || p->pattern == SYNC_NEXT_THEN_ABORT)
        g_assert_true(barrier_place(&p->b));
}

bool crowd_fd_limit_raise(int n_peers, struct rlimit *ret_old) {
    struct rlimit old_limit;
    g_assert_cmpint(getrlimit(RLIMIT_NOFILE, &old_limit), ==, 0);
    const rlim_t needed = 5 * static_cast<rlim_t>(n_peers) + 64;
    if (old_limit.rlim_cur < needed) {
        if (old_limit.rlim_max < needed) {
            char *msg = g_strdup_printf("RLIMIT_NOFILE is too low for %d barriers", n_peers);
            g_test_skip(msg);
            g_free(msg);
            return false;
        }
        struct rlimit raised = {old_limit.rlim_max, old_limit.rlim_max};
        g_assert_cmpint(setrlimit(RLIMIT_NOFILE, &raised), ==, 0);
    }
    *ret_old = old_limit;
    return true;
}

bool crowd_peer_answer(CrowdPeer *p, Barrier *b, int result) {
    g_assert_false(p->done);
    g_assert_cmpint(p->n, <, 8);
    p->results[p->n++] = result;
    if (result <= 0) {
        p->done = true;
        return true; /* must change nothing */
    }
    if (p->victim) {
        /* mid-way: the child waits in its first place_and_sync */
        g_assert_cmpint(kill(p->pid, SIGKILL), ==, 0);
        return true;
    }
    if (p->pattern == ABORTION) {
        p->done = true;
        return false;
    }
    g_assert_true(barrier_place(b));
    return true;
}

void crowd_peer_check(const CrowdPeer *p, int i) {
    static const int four[] = {1, 1, 1, 0}, two[] = {1, 0}, one[] = {1};
    const int *expected;
    int n;
    if (p->victim) {
        expected = two, n = 2;
    } else if (p->pattern == NEXT_THEN_ABORT || p->pattern == SYNC_THEN_EXIT) {
        expected = four, n = 4;
    } else if (p->pattern == SYNC_NEXT_THEN_ABORT) {
        expected = two, n = 2;
    } else {
        expected = one, n = 1;
    }
    if (p->n != n) g_test_message("peer %d (pattern %d): %d results", i, p->pattern, p->n);
    g_assert_cmpint(p->n, ==, n);
    for (int k = 0; k < n; k++) g_assert_cmpint(p->results[k], ==, expected[k]);
    g_assert_cmpint(wait_exit_status(p->pid), ==, p->victim ? 128 + SIGKILL : 0);
}
