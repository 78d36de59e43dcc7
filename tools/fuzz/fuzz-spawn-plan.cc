/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* fuzz-spawn-plan: plan_read() on arbitrary bytes: the reader of the plan
 * format (spawn-format.hh) that the trampoline's helper program runs on
 * what its fd gives it.
 *
 * The reader looks at bytes only (the helper checks the fds afterwards),
 * so the target needs no fixture. Checked on every input, aborting when
 * violated:
 *   - on failure the result is -EBADMSG, -EPROTONOSUPPORT or -E2BIG, and
 *     nothing the reader was given to fill has changed;
 *   - on success the plan holds together as plan_run() will use it: argv
 *     and envp NULL-terminated within their counts, argv not empty, a path
 *     exactly without IPCB_SPAWN_EXEC_FD, the record slot exactly with
 *     IPCB_SPAWN_READY and as the last entry of envp, every array as long
 *     as its count, the fd moves' targets and the kept fds below the floor,
 *     the kept fds increasing, the handed fds increasing and exactly the
 *     caller's fds the plan uses; the start's own parts (barrier, report
 *     fd, status, child callback) empty; and plan_write() of the result
 *     gives back the input byte for byte, so every field survives the
 *     round trip and no other spelling of a plan is ever accepted.
 *
 * The standalone driver (standalone-main.cc) tells the target each file's
 * name through fuzz_input_name(). A name that begins with an outcome and a
 * '-' ("ok-", "ebadmsg-", "eprotonosupport-") is an expectation and is
 * checked too; other names check only the invariants. This turns the seed
 * corpus (made by spawn-plan-seeds) into a regression test. */

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <span>
#include <vector>

#include "spawn-format.hh"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern "C" void fuzz_input_name(const char *name);

namespace {

using ipcbarrier::detail::FdOp;
using ipcbarrier::detail::HandedFd;
using ipcbarrier::detail::PlanReadStorage;
using ipcbarrier::detail::SpawnPlan;

const char *input_name = nullptr;

[[noreturn]] void fail(const char *what) {
    fprintf(stderr, "fuzz-spawn-plan: %s%s%s\n", input_name ? input_name : "",
            input_name ? ": " : "", what);
    abort();
}

size_t count(char *const *v) {
    size_t n = 0;
    while (v[n]) n++;
    return n;
}

bool increasing(const int *fds, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (fds[i] <= fds[i - 1]) return false;
    return true;
}

/* The caller's fds a plan uses, as the format defines them. */
std::vector<int> used_fds(const SpawnPlan &p) {
    std::vector<int> fds;
    for (size_t i = 0; i < p.n_fd_moves; i++) {
        const auto &m = p.fd_moves[i];
        if (m.op == FdOp::dup || m.op == FdOp::inherit || m.op == FdOp::save) fds.push_back(m.from);
    }
    if (p.exec_fd >= 0) fds.push_back(p.exec_fd);
    if (p.cgroup_fd >= 0) fds.push_back(p.cgroup_fd);
    std::sort(fds.begin(), fds.end());
    fds.erase(std::unique(fds.begin(), fds.end()), fds.end());
    return fds;
}

void check_success(std::span<const uint8_t> input, const PlanReadStorage &s, const SpawnPlan &p,
                   const std::vector<HandedFd> &handed) {
    if (!p.argv || !p.argv[0]) fail("accepted a plan without argv[0]");
    if (count(p.argv) + 1 != s.argv.size()) fail("argv is not its storage");
    if (!p.envp || count(p.envp) + 1 != s.envp.size()) fail("envp is not its storage");
    const bool ready = p.flags & IPCB_SPAWN_READY;
    if ((p.record_slot != nullptr) != ready) fail("a record slot without IPCB_SPAWN_READY");
    if (ready && (count(p.envp) == 0 || p.envp[count(p.envp) - 1] != p.record_slot ||
                  s.record_slot.size() != sizeof BARRIER_ENV + BARRIER_RECORD_MAX))
        fail("the record slot is not the last entry of envp, with its room");
    if ((p.path != nullptr) == static_cast<bool>(p.flags & IPCB_SPAWN_EXEC_FD))
        fail("a path and an exec fd, or neither");
    if ((p.exec_fd >= 0) != static_cast<bool>(p.flags & IPCB_SPAWN_EXEC_FD))
        fail("exec_fd without its flag");
    if ((p.cgroup_fd >= 0) != static_cast<bool>(p.flags & IPCB_SPAWN_CGROUP))
        fail("cgroup_fd without its flag");
    if (p.flags & ~ipcbarrier::detail::kSpawnKnownFlags) fail("an unknown flag");
    if (p.n_rlimits != s.rlimits.size() || p.n_fd_moves != s.fd_moves.size() ||
        p.n_keep_fds != s.keep_fds.size() || p.n_groups != s.groups.size())
        fail("a count is not its array's");
    if (p.fd_floor < 3) fail("a floor below 3");
    for (size_t i = 0; i < p.n_fd_moves; i++)
        if (p.fd_moves[i].to >= p.fd_floor) fail("a move's target at or above the floor");
    if (!increasing(p.keep_fds, p.n_keep_fds)) fail("kept fds not increasing");
    if (p.n_keep_fds > 0 && (p.keep_fds[0] < 0 || p.keep_fds[p.n_keep_fds - 1] >= p.fd_floor))
        fail("a kept fd out of range");
    std::vector<int> used = used_fds(p);
    if (used.size() != handed.size()) fail("the handed fds are not the plan's");
    for (size_t i = 0; i < used.size(); i++)
        if (handed[i].fd != used[i]) fail("the handed fds are not the plan's");
    if (p.barrier || p.report_fd != -1 || p.status || p.child_callback)
        fail("the start's own parts are not empty");

    std::vector<uint8_t> again;
    int r = ipcbarrier::detail::plan_write(p, handed, &again);
    if (r < 0) fail("the accepted plan does not write");
    if (!std::equal(again.begin(), again.end(), input.begin(), input.end()))
        fail("an accepted plan is not what plan_write() writes");
}

/* The results a file name can state as its expected outcome. */
constexpr struct {
    const char *prefix;
    int result;
} OUTCOMES[] = {
    {"ok-", 0},
    {"ebadmsg-", -EBADMSG},
    {"eprotonosupport-", -EPROTONOSUPPORT},
};

}  // namespace

/* Called by the standalone driver with the name of the file whose contents
 * the next LLVMFuzzerTestOneInput() gets. */
void fuzz_input_name(const char *name) {
    input_name = name;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::span<const uint8_t> input(data, size);
    PlanReadStorage storage;
    storage.keep_fds = {12345};
    SpawnPlan plan, sentinel;
    memset(&sentinel, 0xa5, sizeof sentinel);
    plan = sentinel;
    std::vector<HandedFd> handed = {{54321, true}};

    int r = ipcbarrier::detail::plan_read(input, &storage, &plan, &handed);
    if (r == 0) {
        check_success(input, storage, plan, handed);
    } else {
        if (r != -EBADMSG && r != -EPROTONOSUPPORT && r != -E2BIG)
            fail("an error the contract does not list");
        if (memcmp(&plan, &sentinel, sizeof plan) != 0) fail("a failure changed the plan");
        if (storage.keep_fds.size() != 1 || storage.keep_fds[0] != 12345)
            fail("a failure changed the storage");
        if (handed.size() != 1 || handed[0].fd != 54321) fail("a failure changed the handed fds");
    }

    if (input_name) {
        for (const auto &o : OUTCOMES) {
            if (strncmp(input_name, o.prefix, strlen(o.prefix)) != 0) continue;
            if (r != o.result) {
                fprintf(stderr, "fuzz-spawn-plan: expected \"%.*s\", got %d (%s)\n",
                        static_cast<int>(strlen(o.prefix) - 1), o.prefix, r,
                        r ? strerror(-r) : "success");
                fail("the result is not the one the file name states");
            }
        }
    }
    input_name = nullptr;
    return 0;
}
