/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The barrier's C++ interface against the documented cases (played by
 * barrier-harness.c), plus what only the C++ interface has. */

#include <cerrno>
#include <utility>

#include <glib.h>
#include <unistd.h>

#include <ipcbarrier/barrier.hh>

#include "barrier-harness.h"
#include "test-util.h"

namespace {

/* Inside the namespace: at global scope the name would meet the C struct. */
using ipcbarrier::Barrier;
using ipcbarrier::BarrierRole;

Barrier *as(void *b) {
    return static_cast<Barrier *>(b);
}
const Barrier *as(const void *b) {
    return static_cast<const Barrier *>(b);
}

const BarrierBackend cxx_backend = {
    .alloc = []() -> void * { return new Barrier(); },
    .free = [](void *b) { delete as(b); },
    .create = [](void *b) { return Barrier::create(as(b)); },
    .is_empty = [](const void *b) { return !as(b)->valid(); },
    .set_role =
        [](void *b, bool child) {
            return as(b)->set_role(child ? BarrierRole::child : BarrierRole::parent);
        },
    .destroy = [](void *b) { as(b)->destroy(); },
    .place = [](void *b) { return as(b)->place(); },
    .abort = [](void *b) { return as(b)->abort(); },
    .wait_next = [](void *b) { return as(b)->wait_next(); },
    .wait_abortion = [](void *b) { return as(b)->wait_abortion(); },
    .sync_next = [](void *b) { return as(b)->sync_next(); },
    .sync = [](void *b) { return as(b)->sync(); },
    .place_and_sync = [](void *b) { return as(b)->place_and_sync(); },
    .i_aborted = [](const void *b) { return as(b)->i_aborted(); },
    .they_aborted = [](const void *b) { return as(b)->they_aborted(); },
    .we_aborted = [](const void *b) { return as(b)->we_aborted(); },
    .is_aborted = [](const void *b) { return as(b)->is_aborted(); },
};

}  // namespace

int main(int argc, char **argv) {
    harness_handle_exec(argc, argv);
    g_test_init(&argc, &argv, nullptr);
    harness_add_tests(&cxx_backend, "/barrier");
    return g_test_run();
}
