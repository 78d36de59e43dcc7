/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The barrier's C interface, compiled as C, against the documented cases
 * (played by barrier-harness.c). Only the public header and the installed
 * library are used, as a C program using the systemd-style API would. */

#include <glib.h>
#include <stdlib.h>

#include <ipcbarrier/barrier.h>

#include "barrier-harness.h"

static void *c_alloc(void) {
    Barrier *b = malloc(sizeof *b);
    g_assert_nonnull(b);
    *b = (Barrier)BARRIER_NULL;
    return b;
}

static void c_free(void *b) {
    barrier_destroy(b);
    free(b);
}

static int c_create(void *b) {
    return barrier_create(b);
}

static bool c_is_empty(const void *p) {
    const Barrier *b = p;
    return b->me < 0 && b->them < 0 && b->pipe[0] < 0 && b->pipe[1] < 0;
}

static int c_set_role(void *b, bool child) {
    return barrier_set_role(b, child ? BARRIER_CHILD : BARRIER_PARENT);
}

static void c_destroy(void *b) {
    barrier_destroy(b);
}
static bool c_place(void *b) {
    return barrier_place(b);
}
static bool c_abort(void *b) {
    return barrier_abort(b);
}
static bool c_wait_next(void *b) {
    return barrier_wait_next(b);
}
static bool c_wait_abortion(void *b) {
    return barrier_wait_abortion(b);
}
static bool c_sync_next(void *b) {
    return barrier_sync_next(b);
}
static bool c_sync(void *b) {
    return barrier_sync(b);
}
static bool c_place_and_sync(void *b) {
    return barrier_place_and_sync(b);
}
static bool c_i_aborted(const void *b) {
    return barrier_i_aborted(b);
}
static bool c_they_aborted(const void *b) {
    return barrier_they_aborted(b);
}
static bool c_we_aborted(const void *b) {
    return barrier_we_aborted(b);
}
static bool c_is_aborted(const void *b) {
    return barrier_is_aborted(b);
}

static const BarrierBackend c_backend = {
    .alloc = c_alloc,
    .free = c_free,
    .create = c_create,
    .is_empty = c_is_empty,
    .set_role = c_set_role,
    .destroy = c_destroy,
    .place = c_place,
    .abort = c_abort,
    .wait_next = c_wait_next,
    .wait_abortion = c_wait_abortion,
    .sync_next = c_sync_next,
    .sync = c_sync,
    .place_and_sync = c_place_and_sync,
    .i_aborted = c_i_aborted,
    .they_aborted = c_they_aborted,
    .we_aborted = c_we_aborted,
    .is_aborted = c_is_aborted,
};

/* The cleanup helper works as with systemd's _cleanup_(barrier_destroyp). */
static void test_cleanup_attribute(void) {
    int fd;
    {
        Barrier b = BARRIER_NULL;
        __attribute__((cleanup(barrier_destroyp))) Barrier *p = &b;
        g_assert_cmpint(barrier_create(p), ==, 0);
        fd = b.me;
        g_assert_cmpint(fd, >=, 0);
    }
    /* destroyed at scope exit: the number is free again */
    Barrier b2 = BARRIER_NULL;
    g_assert_cmpint(barrier_create(&b2), ==, 0);
    g_assert_cmpint(b2.me, ==, fd);
    barrier_destroy(&b2);

    Barrier *none = NULL;
    barrier_destroyp(&none);
}

int main(int argc, char **argv) {
    harness_handle_exec(argc, argv);
    g_test_init(&argc, &argv, NULL);
    harness_add_tests(&c_backend, "/barrier-c");
    g_test_add_func("/barrier-c/cleanup-attribute", test_cleanup_attribute);
    return g_test_run();
}
