/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A C program written the way systemd code uses its internal barrier.h:
 * the _cleanup_ idiom, BARRIER_NULL, barrier_set_role() as a statement,
 * assert_se() around the waits. It builds against <ipcbarrier/barrier.h>
 * with nothing but the include line changed, and CI also builds it against
 * the installed library through `pkg-config --cflags --libs
 * ipcbarrier-shared`. Plain C, exit status 0 on success. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ipcbarrier/barrier.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define assert_se(expr)                                                                  \
    do {                                                                                 \
        if (!(expr)) {                                                                   \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #expr); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static int wait_child(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) assert_se(errno == EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The service-manager pattern: both sides set up, meet, then go on. */
static void test_setup_then_meet(void) {
    _cleanup_(barrier_destroy) Barrier barrier = BARRIER_NULL;
    assert_se(barrier_create(&barrier) >= 0);

    pid_t pid = fork();
    assert_se(pid >= 0);
    if (pid == 0) {
        barrier_set_role(&barrier, BARRIER_CHILD);
        if (!barrier_place_and_sync(&barrier)) _exit(1);
        _exit(0);
    }

    barrier_set_role(&barrier, BARRIER_PARENT);
    assert_se(barrier_place_and_sync(&barrier));
    assert_se(wait_child(pid) == 0);
    /* the child is gone: waiting for more sees the implicit abortion */
    assert_se(!barrier_wait_next(&barrier));
    assert_se(barrier_they_aborted(&barrier));
    assert_se(!barrier_i_aborted(&barrier));
}

/* The child's setup fails: the parent must learn it rather than hang. */
static void test_child_setup_fails(void) {
    Barrier barrier = BARRIER_NULL;
    _cleanup_(barrier_destroyp) Barrier *b = &barrier;
    assert_se(barrier_create(b) >= 0);

    pid_t pid = fork();
    assert_se(pid >= 0);
    if (pid == 0) {
        barrier_set_role(b, BARRIER_CHILD);
        (void)barrier_abort(b);
        _exit(barrier_i_aborted(b) && !barrier_we_aborted(b) ? 0 : 1);
    }

    barrier_set_role(b, BARRIER_PARENT);
    assert_se(!barrier_place_and_sync(b));
    assert_se(barrier_they_aborted(b));
    assert_se(!barrier_i_aborted(b));
    assert_se(barrier_is_aborted(b));
    assert_se(barrier_wait_abortion(b));
    assert_se(wait_child(pid) == 0);
}

/* Current systemd: barrier_destroy() takes NULL and returns NULL, for
 * "b = barrier_destroy(b);" on a pointer. */
static void test_destroy_returns_null(void) {
    assert_se(!barrier_destroy(NULL));
    Barrier *owned = malloc(sizeof *owned), *b = owned;
    assert_se(b);
    *b = (Barrier)BARRIER_NULL;
    assert_se(barrier_create(b) >= 0);
    b = barrier_destroy(b);
    assert_se(!b);
    assert_se(owned->me < 0 && owned->pipe[0] < 0);
    free(owned);
}

int main(void) {
    test_setup_then_meet();
    test_child_setup_fails();
    test_destroy_returns_null();
    printf("systemd-style barrier usage: ok\n");
    return 0;
}
