/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* run-helper: the COMMAND of the tests of ipcbarrier-run where a shell
 * cannot do the part. Plain C and libc (and the barrier), so that it starts
 * fast.
 *
 *   run-helper sigwait [--fork] SIG... LAST
 *       Blocks the signals named (TERM, HUP, ...), writes "r" to fd 3 (the
 *       handshake: from now on no signal is lost), then prints the name of
 *       each signal it receives as it arrives, space-separated, until LAST
 *       arrives; then a line feed, and it exits 0. With --fork a child of it does the
 *       waiting and printing, and it exits with the child's status: only a
 *       signal sent to its process group reaches the child.
 *   run-helper ready-abort ERRNO
 *       Takes the barrier of IPCBARRIER, aborts it with ERRNO as the
 *       reason and exits 3. */

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcbarrier/barrier.h>

static int signal_from_name(const char *name) {
    for (int sig = 1; sig < SIGRTMIN; sig++) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev && strcmp(abbrev, name) == 0) return sig;
    }
    fprintf(stderr, "run-helper: unknown signal %s\n", name);
    exit(99);
}

static int do_sigwait(int argc, char **argv) {
    bool fork_first = argc > 0 && strcmp(argv[0], "--fork") == 0;
    if (fork_first) argc--, argv++;
    if (argc < 1) {
        fprintf(stderr, "run-helper: sigwait needs signals\n");
        return 99;
    }
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < argc; i++) sigaddset(&set, signal_from_name(argv[i]));
    int last = signal_from_name(argv[argc - 1]);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
        perror("run-helper: sigprocmask");
        return 99;
    }
    if (fork_first) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("run-helper: fork");
            return 99;
        }
        if (pid > 0) {
            /* The signals stay blocked here: this process only waits. */
            int status;
            while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) return 99;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
        }
    }
    if (write(3, "r", 1) != 1) {
        perror("run-helper: handshake on fd 3");
        return 99;
    }
    for (bool first = true;; first = false) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig < 0 && errno == EINTR) continue;
        if (sig < 0) {
            perror("run-helper: sigwaitinfo");
            return 99;
        }
        /* Flushed at once: a test may wait for one before it goes on. */
        printf("%s%s", first ? "" : " ", sigabbrev_np(sig));
        fflush(stdout);
        if (sig == last) break;
    }
    printf("\n");
    return fflush(stdout) == 0 ? 0 : 97;
}

static int do_ready_abort(int argc, char **argv) {
    if (argc != 1) {
        fprintf(stderr, "run-helper: ready-abort needs an errno\n");
        return 99;
    }
    Barrier b = BARRIER_NULL;
    int r = barrier_deserialize_env(&b, NULL);
    if (r < 0) {
        fprintf(stderr, "run-helper: no barrier: %s\n", strerror(-r));
        return 99;
    }
    (void)barrier_abort_errno(&b, atoi(argv[0]));
    barrier_destroy(&b);
    return 3;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "sigwait") == 0) return do_sigwait(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "ready-abort") == 0) return do_ready_abort(argc - 2, argv + 2);
    fprintf(stderr, "usage: run-helper sigwait [--fork] SIG... | ready-abort ERRNO\n");
    return 99;
}
