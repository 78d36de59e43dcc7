/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The barrier's typical use: parent and child each do their own setup after
 * fork(), meet at the barrier, and only then does the child go on (here, it
 * would execve()). When the child's setup fails, it aborts with the errno
 * of the failure, and the parent learns it, and why, at the meeting point
 * instead of hanging.
 *
 *   barrier-demo [DIR]   the child's "setup" is chdir(DIR); by default the
 *                        demo runs once with "/" and once with a directory
 *                        that does not exist. */

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <sys/wait.h>
#include <unistd.h>

#include <ipcbarrier/barrier.hh>

namespace {

/* After fork() the child may only use async-signal-safe calls. */
void child_say(const char *msg) {
    (void)!write(STDOUT_FILENO, msg, strlen(msg));
}

int run(const char *dir) {
    std::printf("== child setup: chdir(\"%s\")\n", dir);
    std::fflush(stdout); /* nothing buffered may be duplicated by fork() */

    ipcbarrier::Barrier barrier;
    int r = ipcbarrier::Barrier::create(&barrier);
    if (r < 0) {
        std::fprintf(stderr, "barrier: %s\n", std::strerror(-r));
        return 1;
    }

    pid_t pid = fork();
    if (pid < 0) {
        std::perror("fork");
        return 1;
    }
    if (pid == 0) {
        if (barrier.set_role(ipcbarrier::BarrierRole::child) < 0) _exit(2);
        if (chdir(dir) < 0) {
            int err = errno;
            child_say("child:  setup failed, aborting the barrier with its errno\n");
            barrier.abort_errno(err);
            _exit(1);
        }
        if (!barrier.place_and_sync()) {
            child_say("child:  the parent gave up\n");
            _exit(1);
        }
        child_say("child:  both sides are ready; this is where execve() goes\n");
        _exit(0);
    }

    if (barrier.set_role(ipcbarrier::BarrierRole::parent) < 0) return 1;
    /* The parent's own setup for the child would run here, concurrently
     * with the child's (cgroup, uid map, bookkeeping). */
    std::printf("parent: setup done, waiting for the child\n");
    std::fflush(stdout);
    bool met = barrier.place_and_sync();
    if (met)
        std::printf("parent: the child is ready\n");
    else if (int reason = barrier.get_abort_errno(); reason > 0)
        std::printf("parent: the child aborted its setup: %s\n", std::strerror(reason));
    else
        std::printf("parent: the child went away\n");

    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            std::perror("waitpid");
            return 1;
        }
    std::printf("parent: child exited with status %d\n",
                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return met == (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc > 2) {
        std::fprintf(stderr, "usage: %s [DIR]\n", argv[0]);
        return 2;
    }
    if (argc == 2) return run(argv[1]) == 0 ? 0 : 1;
    /* Both outcomes: a setup that works, then one that fails. The demo
     * succeeds when each side saw the same outcome. */
    int r = run("/");
    r |= run("/nonexistent/ipcbarrier-demo");
    return r;
}
