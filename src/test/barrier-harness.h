/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The barrier's documented cases as data, and the machinery that plays them
 * between two real processes. Each test binary supplies a backend (the C
 * API or the C++ API) and registers the same cases, so both interfaces are
 * proven against one table. */

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One barrier interface. Every function is called on an object made by
 * alloc() before any fork(), so the side processes allocate nothing. */
typedef struct BarrierBackend {
    void *(*alloc)(void);   /* an empty barrier (owns nothing) */
    void (*free)(void *b);  /* destroys and frees */
    int (*create)(void *b); /* 0 or -errno */
    bool (*is_empty)(const void *b);
    int (*set_role)(void *b, bool child);
    void (*destroy)(void *b);
    bool (*place)(void *b);
    bool (*abort)(void *b);
    bool (*abort_errno)(void *b, int err);
    int (*get_abort_errno)(const void *b);
    bool (*wait_next)(void *b);
    bool (*wait_abortion)(void *b);
    bool (*sync_next)(void *b);
    bool (*sync)(void *b);
    bool (*place_and_sync)(void *b);
    bool (*i_aborted)(const void *b);
    bool (*they_aborted)(const void *b);
    bool (*we_aborted)(const void *b);
    bool (*is_aborted)(const void *b);
    /* The waits with a limit; UINT64_MAX is no limit. 1, 0 or -errno. */
    int (*wait_next_timeout)(void *b, uint64_t usec);
    int (*wait_abortion_timeout)(void *b, uint64_t usec);
    int (*sync_next_timeout)(void *b, uint64_t usec);
    int (*sync_timeout)(void *b, uint64_t usec);
    int (*get_pollfds)(const void *b, struct pollfd ret[2]);
    int (*serialize)(void *b, char *buf, size_t size);
    int (*serialize_env)(void *b, const char *name);
    int (*deserialize_env)(void *b, const char *name);            /* into an empty b */
    int (*deserialize)(void *b, const char *record, pid_t owner); /* into an empty b */
} BarrierBackend;

/* Registers every case under prefix (e.g. "/barrier"). */
void harness_add_tests(const BarrierBackend *backend, const char *prefix);

/* Must be called first in main(): when the binary was re-executed by a side
 * that called execve(), it plays that side's part (with backend) and
 * exits. */
void harness_handle_exec(int argc, char **argv, const BarrierBackend *backend);

#ifdef __cplusplus
}
#endif
