/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* spawn-plan-seeds DIR: writes the seed corpus of fuzz-spawn-plan into DIR
 * (tools/fuzz/corpus/spawn-plan in the tree), one plan per file: plans
 * that plan_compile() and plan_write() make of a range of options, named
 * "ok-...", and each of those made wrong in one field, named for the
 * error the reader must give ("ebadmsg-...", "eprotonosupport-..."). Run
 * it again when the format changes; its output does not depend on the
 * machine (it opens the fds the plans name at fixed numbers, and the plans
 * name a fixed parent pid). */

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "spawn-format.hh"

namespace {

using ipcbarrier::detail::HandedFd;
using ipcbarrier::detail::PlanContext;
using ipcbarrier::detail::PlanStorage;
using ipcbarrier::detail::SpawnPlan;
using ipcbarrier::detail::SpawnStatus;

/* Where the fixed parts of the format are (spawn-format.hh). */
constexpr size_t kVersion = 8, kReserved = 12, kSize = 16, kFlags = 24, kExecFd = 48,
                 kCgroupFd = 52, kDeathSignal = 56, kParentPid = 60, kFloor = 64, kUid = 68,
                 kUmask = 76, kArgc = 80, kEnvc = 84, kRlimitc = 88, kMovec = 92, kKeepc = 96,
                 kGroupc = 100, kHandedc = 104, kStrings = 108, kArrays = 112;

/* The fds the plans name, open at these numbers while it runs. */
constexpr int kFdA = 20, kFdB = 21, kFdC = 22, kFdD = 23;

[[noreturn]] void die(const char *what, int error) {
    fprintf(stderr, "spawn-plan-seeds: %s: %s\n", what, strerror(error));
    _exit(1);
}

void set_u32(std::vector<uint8_t> *b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++)
        (*b)[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}

void set_u64(std::vector<uint8_t> *b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; i++)
        (*b)[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t get_u32(const std::vector<uint8_t> &b, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= static_cast<uint32_t>(b[at + static_cast<size_t>(i)]) << (8 * i);
    return v;
}

/* The plan of options, as the trampoline path writes it. */
std::vector<uint8_t> compile(IpcbSpawnOptions o, uint64_t deadline_usec = 0) {
    static Barrier barrier = BARRIER_NULL; /* READY needs one; its fds are not looked at */
    SpawnStatus status{};
    PlanContext context{&barrier, -1, &status, 1000, -1};
    PlanStorage storage;
    SpawnPlan plan;
    IpcbSpawnError error;
    int r = ipcbarrier::detail::plan_compile(&o, context, &storage, &plan, &error);
    if (r < 0) die("plan_compile", -r);
    plan.deadline_usec = deadline_usec;
    std::vector<HandedFd> handed;
    r = ipcbarrier::detail::plan_handed_fds(plan, &handed);
    if (r < 0) die("plan_handed_fds", -r);
    std::vector<uint8_t> bytes;
    r = ipcbarrier::detail::plan_write(plan, handed, &bytes);
    if (r < 0) die("plan_write", -r);
    return bytes;
}

void write_seed(const std::string &dir, const std::string &name, const std::vector<uint8_t> &b) {
    std::string path = dir + "/" + name;
    FILE *f = fopen(path.c_str(), "we");
    if (!f) die(path.c_str(), errno);
    if (fwrite(b.data(), 1, b.size(), f) != b.size() || fclose(f) != 0) die(path.c_str(), errno);
}

/* Opens /dev/null at fd, close-on-exec or not. */
void open_at(int fd, bool cloexec) {
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0) die("/dev/null", errno);
    if (dup3(null, fd, cloexec ? O_CLOEXEC : 0) < 0) die("dup3", errno);
    close(null);
}

const char *const kEnv[] = {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", nullptr};

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 1;
    }
    const std::string dir = argv[1];
    /* The plans hand on 0 and 1 too, with their close-on-exec state. */
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_SETFD, 0) < 0) open_at(fd, false);
    open_at(kFdA, true);
    open_at(kFdB, false);
    open_at(kFdC, true);
    open_at(kFdD, true);

    std::vector<std::pair<std::string, std::vector<uint8_t>>> ok;

    const char *const true_argv[] = {"/bin/true", nullptr};
    IpcbSpawnOptions minimal = {};
    minimal.argv = true_argv;
    minimal.envp = kEnv;
    ok.emplace_back("minimal", compile(minimal));

    const char *const args[] = {"/usr/bin/env", "-i", "", "two words", nullptr};
    IpcbSpawnOptions env = minimal;
    env.argv = args;
    const char *const set[] = {"A=1", "EMPTY=", nullptr};
    const char *const unset[] = {"LANG", nullptr};
    env.env_set = set;
    env.env_unset = unset;
    env.cwd = "/tmp";
    ok.emplace_back("env-cwd", compile(env));

    IpcbSpawnOptions ready = minimal;
    ready.flags = IPCB_SPAWN_READY;
    ok.emplace_back("ready", compile(ready, UINT64_C(5000000)));

    IpcbSpawnOptions exec_fd = minimal;
    exec_fd.flags = IPCB_SPAWN_EXEC_FD;
    exec_fd.exec_fd = kFdD;
    ok.emplace_back("exec-fd", compile(exec_fd));

    /* a swap, a three-cycle, a chain, /dev/null, one that stays */
    const IpcbSpawnFd cycles[] = {{0, 1}, {1, 0},  {3, kFdA}, {4, 5},      {5, 6},
                                  {6, 4}, {7, -1}, {8, 7},    {kFdB, kFdB}};
    open_at(5, false);
    open_at(6, false);
    open_at(4, false);
    open_at(7, false);
    IpcbSpawnOptions fds = minimal;
    fds.fds = cycles;
    fds.n_fds = std::size(cycles);
    ok.emplace_back("fd-cycles", compile(fds));

    const gid_t groups[] = {100, 65534};
    const IpcbSpawnRlimit rlimits[] = {{RLIMIT_CORE, {0, RLIM_INFINITY}},
                                       {RLIMIT_NOFILE, {1024, 4096}}};
    IpcbSpawnOptions ids = minimal;
    ids.flags = IPCB_SPAWN_SET_UID | IPCB_SPAWN_SET_GID | IPCB_SPAWN_SET_GROUPS |
                IPCB_SPAWN_SET_UMASK | IPCB_SPAWN_NEW_SESSION | IPCB_SPAWN_NO_NEW_PRIVS |
                IPCB_SPAWN_CGROUP | IPCB_SPAWN_KEEP_FDS;
    ids.uid = 65534;
    ids.gid = 65534;
    ids.groups = groups;
    ids.n_groups = std::size(groups);
    ids.umask = 027;
    ids.rlimits = rlimits;
    ids.n_rlimits = std::size(rlimits);
    ids.parent_death_signal = SIGTERM;
    ids.cgroup_fd = kFdC;
    ok.emplace_back("ids-limits-cgroup", compile(ids));

    /* The calling thread's mask, kept for the program. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGRTMAX);
    if (sigprocmask(SIG_SETMASK, &mask, nullptr) < 0) die("sigprocmask", errno);
    IpcbSpawnOptions keep = minimal;
    keep.flags = IPCB_SPAWN_KEEP_SIGNALS | IPCB_SPAWN_NEW_PROCESS_GROUP;
    ok.emplace_back("keep-signals", compile(keep));

    for (const auto &[name, bytes] : ok) write_seed(dir, "ok-" + name, bytes);

    /* Each of these is one field of a good plan made wrong. */
    const std::vector<uint8_t> &base = ok[0].second;
    const std::vector<uint8_t> &with_fds = ok[4].second;
    const std::vector<uint8_t> &with_ids = ok[5].second;
    struct Bad {
        const char *name;
        const std::vector<uint8_t> *from;
        void (*mutate)(std::vector<uint8_t> *b);
    };
    /* Where the arrays of the fd-cycles plan begin: no rlimits, its moves
     * first. */
    static const size_t moves_at = kArrays;
    static const size_t keep_at = moves_at + 12 * get_u32(with_fds, kMovec);
    static const size_t handed_at = keep_at + 4 * get_u32(with_fds, kKeepc);
    static const size_t rlimits_at = kArrays; /* of the ids plan */
    const Bad bad[] = {
        {"ebadmsg-empty", &base, [](std::vector<uint8_t> *b) { b->clear(); }},
        {"ebadmsg-magic", &base, [](std::vector<uint8_t> *b) { (*b)[0] = 'I'; }},
        {"eprotonosupport-version-2", &base,
         [](std::vector<uint8_t> *b) { set_u32(b, kVersion, 2); }},
        {"eprotonosupport-version-0", &base,
         [](std::vector<uint8_t> *b) { set_u32(b, kVersion, 0); }},
        {"ebadmsg-reserved", &base, [](std::vector<uint8_t> *b) { set_u32(b, kReserved, 1); }},
        {"ebadmsg-size-larger", &base,
         [](std::vector<uint8_t> *b) { set_u64(b, kSize, b->size() + 1); }},
        {"ebadmsg-trailing-byte", &base,
         [](std::vector<uint8_t> *b) {
             b->push_back(0);
             set_u64(b, kSize, b->size());
         }},
        {"ebadmsg-truncated", &base, [](std::vector<uint8_t> *b) { b->resize(b->size() - 1); }},
        {"ebadmsg-header-only", &base, [](std::vector<uint8_t> *b) { b->resize(kFlags); }},
        {"ebadmsg-unterminated-string", &base, [](std::vector<uint8_t> *b) { b->back() = 'x'; }},
        {"ebadmsg-unknown-flag", &base,
         [](std::vector<uint8_t> *b) { set_u64(b, kFlags, UINT64_C(1) << 40); }},
        {"ebadmsg-exec-fd-without-flag", &base,
         [](std::vector<uint8_t> *b) { set_u32(b, kExecFd, 3); }},
        {"ebadmsg-cgroup-fd-without-flag", &base,
         [](std::vector<uint8_t> *b) { set_u32(b, kCgroupFd, 3); }},
        {"ebadmsg-death-signal-65", &base,
         [](std::vector<uint8_t> *b) { set_u32(b, kDeathSignal, 65); }},
        {"ebadmsg-parent-pid-0", &base, [](std::vector<uint8_t> *b) { set_u32(b, kParentPid, 0); }},
        {"ebadmsg-floor-2", &base, [](std::vector<uint8_t> *b) { set_u32(b, kFloor, 2); }},
        {"ebadmsg-uid-without-flag", &base, [](std::vector<uint8_t> *b) { set_u32(b, kUid, 1); }},
        {"ebadmsg-umask-without-flag", &base,
         [](std::vector<uint8_t> *b) { set_u32(b, kUmask, 022); }},
        {"ebadmsg-umask-bits", &with_ids,
         [](std::vector<uint8_t> *b) { set_u32(b, kUmask, 01000); }},
        {"ebadmsg-no-argv", &base, [](std::vector<uint8_t> *b) { set_u32(b, kArgc, 0); }},
        {"ebadmsg-argv-count-beyond", &base,
         [](std::vector<uint8_t> *b) { set_u32(b, kArgc, UINT32_MAX); }},
        {"ebadmsg-envp-count-short", &base,
         [](std::vector<uint8_t> *b) { set_u32(b, kEnvc, get_u32(*b, kEnvc) - 1); }},
        {"ebadmsg-rlimit-count-beyond", &base,
         [](std::vector<uint8_t> *b) { set_u32(b, kRlimitc, 0x10000000); }},
        {"ebadmsg-groups-without-flag", &base,
         [](std::vector<uint8_t> *b) { set_u32(b, kGroupc, 1); }},
        {"ebadmsg-too-many-groups", &with_ids,
         [](std::vector<uint8_t> *b) { set_u32(b, kGroupc, 65537); }},
        {"ebadmsg-string-bits", &base, [](std::vector<uint8_t> *b) { set_u32(b, kStrings, 5); }},
        {"ebadmsg-path-and-exec-fd", &ok[3].second,
         [](std::vector<uint8_t> *b) { set_u32(b, kStrings, 1); }},
        {"ebadmsg-rlimit-resource", &with_ids,
         [](std::vector<uint8_t> *b) { set_u32(b, rlimits_at, RLIM_NLIMITS); }},
        {"ebadmsg-rlimit-padding", &with_ids,
         [](std::vector<uint8_t> *b) { set_u32(b, rlimits_at + 4, 1); }},
        {"ebadmsg-rlimit-cur-above-max", &with_ids,
         [](std::vector<uint8_t> *b) { set_u64(b, rlimits_at + 24 + 8, UINT64_MAX); }},
        {"ebadmsg-fd-op-unknown", &with_fds,
         [](std::vector<uint8_t> *b) { set_u32(b, moves_at, 7); }},
        {"ebadmsg-fd-move-target-at-floor", &with_fds,
         [](std::vector<uint8_t> *b) { set_u32(b, moves_at + 8, get_u32(*b, kFloor)); }},
        {"ebadmsg-fd-moves-cut-short", &with_fds,
         [](std::vector<uint8_t> *b) { set_u32(b, kMovec, get_u32(*b, kMovec) - 1); }},
        {"ebadmsg-kept-fds-not-increasing", &with_fds,
         [](std::vector<uint8_t> *b) { set_u32(b, keep_at + 4, 0); }},
        {"ebadmsg-kept-fd-at-floor", &with_fds,
         [](std::vector<uint8_t>
                *b) { set_u32(b, keep_at + 4 * (get_u32(*b, kKeepc) - 1), get_u32(*b, kFloor)); }},
        {"ebadmsg-handed-fd-not-used", &with_fds,
         [](std::vector<uint8_t>
                *b) { set_u32(b, handed_at + 8 * (get_u32(*b, kHandedc) - 1), 2000); }},
        {"ebadmsg-handed-flags", &with_fds,
         [](std::vector<uint8_t> *b) { set_u32(b, handed_at + 4, 2); }},
        {"ebadmsg-handed-count-short", &with_fds,
         [](std::vector<uint8_t> *b) { set_u32(b, kHandedc, get_u32(*b, kHandedc) - 1); }},
    };
    for (const Bad &c : bad) {
        std::vector<uint8_t> b = *c.from;
        c.mutate(&b);
        write_seed(dir, c.name, b);
    }
    return 0;
}
