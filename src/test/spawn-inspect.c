/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* spawn-inspect: what a spawned program sees of its own process, one
 * "key=value" line each on stdout, for the exec-helper's tests to compare
 * with what they asked for. Plain C and libc only, so that it starts fast.
 *
 *   spawn-inspect [--ready] [--exit=N] [ARG...]
 *
 * --ready: first take the barrier the environment hands over (IPCBARRIER),
 * place one sync point and check that it is met (the program is "ready").
 * --exit=N: exit with N after printing (default 0).
 *
 * Lines: argv (each argument, separated by \x1f), env.NAME (one line per
 * variable, in the order of environ), fds (the open fds, comma-separated, with "c" after a
 * close-on-exec one), cwd, umask (octal), sigmask and sigignored (the
 * blocked and the ignored signals, as a hex bit mask of signals 1..64),
 * rlimit.N (soft:hard, "inf" for RLIM_INFINITY) for every resource, pid,
 * ppid, sid, pgid, uid and gid (real:effective:saved), groups, pdeathsig,
 * no_new_privs. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcbarrier/barrier.h>

extern char **environ;

static void print_fds(void) {
    /* Read the directory into a list first: its own fd is open meanwhile. */
    int fds[1024], n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        perror("spawn-inspect: /proc/self/fd");
        exit(99);
    }
    int own = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d)) && n < 1024) {
        if (de->d_name[0] == '.') continue;
        int fd = atoi(de->d_name);
        if (fd != own) fds[n++] = fd;
    }
    closedir(d);
    /* sort: readdir's order is not numeric */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    printf("fds=");
    for (int i = 0; i < n; i++) {
        int flags = fcntl(fds[i], F_GETFD);
        printf("%s%d%s", i ? "," : "", fds[i], flags >= 0 && (flags & FD_CLOEXEC) ? "c" : "");
    }
    printf("\n");
}

static void print_signals(void) {
    sigset_t mask;
    uint64_t blocked = 0, ignored = 0;
    sigprocmask(SIG_SETMASK, NULL, &mask);
    for (int sig = 1; sig <= 64; sig++) {
        if (sigismember(&mask, sig) == 1) blocked |= UINT64_C(1) << (sig - 1);
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
            ignored |= UINT64_C(1) << (sig - 1);
    }
    printf("sigmask=%llx\nsigignored=%llx\n", (unsigned long long)blocked,
           (unsigned long long)ignored);
}

static void print_rlimits(void) {
    for (int r = 0; r < RLIM_NLIMITS; r++) {
        struct rlimit rl;
        if (getrlimit(r, &rl) < 0) continue;
        printf("rlimit.%d=", r);
        if (rl.rlim_cur == RLIM_INFINITY)
            printf("inf");
        else
            printf("%llu", (unsigned long long)rl.rlim_cur);
        if (rl.rlim_max == RLIM_INFINITY)
            printf(":inf\n");
        else
            printf(":%llu\n", (unsigned long long)rl.rlim_max);
    }
}

static void print_ids(void) {
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    getresuid(&ru, &eu, &su);
    getresgid(&rg, &eg, &sg);
    printf("uid=%u:%u:%u\ngid=%u:%u:%u\n", ru, eu, su, rg, eg, sg);
    gid_t groups[256];
    int n = getgroups(256, groups);
    printf("groups=");
    for (int i = 0; i < n; i++) printf("%s%u", i ? "," : "", groups[i]);
    printf("\n");
}

static int take_ready(void) {
    Barrier b = BARRIER_NULL;
    int r = barrier_deserialize_env(&b, NULL);
    if (r < 0) {
        fprintf(stderr, "spawn-inspect: no barrier to signal readiness on: %s\n", strerror(-r));
        return 1;
    }
    bool ok = barrier_place(&b);
    barrier_destroy(&b);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    int status = 0, first = 1;
    for (; first < argc; first++) {
        if (strcmp(argv[first], "--ready") == 0) {
            if (take_ready() != 0) return 98;
        } else if (strncmp(argv[first], "--exit=", 7) == 0) {
            status = atoi(argv[first] + 7);
        } else {
            break;
        }
    }

    printf("argv=");
    for (int i = 0; i < argc; i++) printf("%s%s", i ? "\x1f" : "", argv[i]);
    printf("\n");
    for (char **e = environ; *e; e++) printf("env.%s\n", *e);
    print_fds();
    char cwd[4096];
    printf("cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    mode_t m = umask(0);
    umask(m);
    printf("umask=%04o\n", (unsigned)m);
    print_signals();
    print_rlimits();
    printf("pid=%d\nppid=%d\nsid=%d\npgid=%d\n", (int)getpid(), (int)getppid(), (int)getsid(0),
           (int)getpgid(0));
    print_ids();
    int pdeathsig = 0;
    prctl(PR_GET_PDEATHSIG, &pdeathsig);
    printf("pdeathsig=%d\nno_new_privs=%d\n", pdeathsig, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    return fflush(stdout) == 0 ? status : 97;
}
