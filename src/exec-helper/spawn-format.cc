/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "spawn-format.hh"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <iterator>
#include <string_view>
#include <utility>

#include <fcntl.h>

#include "alloc-internal.hh"

namespace ipcbarrier::detail {
namespace {

constexpr char kMagic[8] = {'i', 'p', 'c', 'b', 'p', 'l', 'a', 'n'};
constexpr size_t kHeaderSize = sizeof kMagic + 4 + 4 + 8;
constexpr uint32_t kHasPath = 1u << 0;
constexpr uint32_t kHasCwd = 1u << 1;
constexpr uint32_t kHandedCloexec = 1u << 0;
constexpr int kSignalMax = 64;
constexpr uint32_t kGroupsMax = 65536;
constexpr std::string_view kRecordPrefix = BARRIER_ENV "=";

/* The kernel's 64-signal mask as a number, bit n-1 for signal n. libc's
 * sigset_t begins with the kernel's mask, as unsigned longs in the order
 * of their signals (raw-syscall.hh relies on that too); reading it by
 * words rather than with sigismember() also sees the signals that glibc
 * keeps to itself, which are part of the mask all the same. */
constexpr size_t kWordBits = 8 * sizeof(unsigned long);
constexpr size_t kMaskWords = 64 / kWordBits;
static_assert(sizeof(sigset_t) >= kMaskWords * sizeof(unsigned long));

uint64_t mask_bits(const sigset_t &set) {
    unsigned long words[kMaskWords];
    std::memcpy(words, &set, sizeof words);
    uint64_t bits = 0;
    for (size_t i = 0; i < kMaskWords; i++)
        bits |= static_cast<uint64_t>(words[i]) << (i * kWordBits);
    return bits;
}

sigset_t mask_from_bits(uint64_t bits) {
    sigset_t set;
    std::memset(&set, 0, sizeof set);
    unsigned long words[kMaskWords];
    for (size_t i = 0; i < kMaskWords; i++)
        words[i] = static_cast<unsigned long>(bits >> (i * kWordBits));
    std::memcpy(&set, words, sizeof words);
    return set;
}

/* The caller's fds that plan uses, sorted, each once. */
std::vector<int> caller_fds(const SpawnPlan &plan) {
    std::vector<int> fds;
    for (size_t i = 0; i < plan.n_fd_moves; i++) {
        const PlanFdMove &m = plan.fd_moves[i];
        if (m.op == FdOp::dup || m.op == FdOp::inherit || m.op == FdOp::save) fds.push_back(m.from);
    }
    if (plan.exec_fd >= 0) fds.push_back(plan.exec_fd);
    if (plan.cgroup_fd >= 0) fds.push_back(plan.cgroup_fd);
    std::sort(fds.begin(), fds.end());
    fds.erase(std::unique(fds.begin(), fds.end()), fds.end());
    return fds;
}

size_t count_strings(char *const *v) {
    size_t n = 0;
    while (v && v[n]) n++;
    return n;
}

class Writer {
  public:
    explicit Writer(std::vector<uint8_t> *out) : out_(out) {}

    void u32(uint32_t v) {
        for (int i = 0; i < 4; i++) out_->push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
    void u64(uint64_t v) {
        for (int i = 0; i < 8; i++) out_->push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
    void i32(int v) { u32(static_cast<uint32_t>(v)); }
    void str(const char *s) { out_->insert(out_->end(), s, s + std::strlen(s) + 1); }
    void bytes(const void *p, size_t n) {
        const auto *b = static_cast<const uint8_t *>(p);
        out_->insert(out_->end(), b, b + n);
    }

  private:
    std::vector<uint8_t> *out_;
};

/* Reads the format front to back; every read checks that the bytes are
 * there. */
class Reader {
  public:
    Reader(const uint8_t *p, size_t n) : p_(p), end_(p + n) {}

    [[nodiscard]] size_t left() const { return static_cast<size_t>(end_ - p_); }

    bool u32(uint32_t *ret) {
        if (left() < 4) return false;
        uint32_t v = 0;
        for (int i = 0; i < 4; i++) v |= static_cast<uint32_t>(p_[i]) << (8 * i);
        p_ += 4;
        *ret = v;
        return true;
    }
    bool u64(uint64_t *ret) {
        if (left() < 8) return false;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v |= static_cast<uint64_t>(p_[i]) << (8 * i);
        p_ += 8;
        *ret = v;
        return true;
    }
    bool i32(int *ret) {
        uint32_t v;
        if (!u32(&v)) return false;
        /* two's complement, without relying on the conversion of an
         * out-of-range value */
        *ret = v <= INT_MAX ? static_cast<int>(v) : -static_cast<int>(~v) - 1;
        return true;
    }
    bool skip(const void *expected, size_t n) {
        if (left() < n || std::memcmp(p_, expected, n) != 0) return false;
        p_ += n;
        return true;
    }
    /* A NUL-terminated string starting here, with its NUL. */
    bool str(const char **ret) {
        const void *nul = std::memchr(p_, '\0', left());
        if (!nul) return false;
        *ret = reinterpret_cast<const char *>(p_);
        p_ = static_cast<const uint8_t *>(nul) + 1;
        return true;
    }

  private:
    const uint8_t *p_;
    const uint8_t *end_;
};

int write_plan(const SpawnPlan &p, std::span<const HandedFd> handed, std::vector<uint8_t> *ret) {
    if (p.child_callback) return -EINVAL;
    const bool exec_fd = p.flags & IPCB_SPAWN_EXEC_FD;
    if ((p.path != nullptr) == exec_fd) return -EINVAL;
    if ((p.record_slot != nullptr) != static_cast<bool>(p.flags & IPCB_SPAWN_READY)) return -EINVAL;

    std::vector<int> fds = caller_fds(p);
    if (fds.size() != handed.size()) return -EINVAL;
    for (size_t i = 0; i < fds.size(); i++)
        if (handed[i].fd != fds[i]) return -EINVAL;

    size_t n_argv = count_strings(p.argv);
    size_t n_envp = count_strings(p.envp);
    /* The record slot is the helper's to add: it is the last entry, and
     * the program's record will only be written into it. */
    if (p.record_slot) {
        if (n_envp == 0 || p.envp[n_envp - 1] != p.record_slot) return -EINVAL;
        n_envp--;
    }
    for (size_t n : {n_argv, n_envp, p.n_rlimits, p.n_fd_moves, p.n_keep_fds, p.n_groups})
        if (n > UINT32_MAX) return -E2BIG;

    size_t size = kHeaderSize + 3 * 8 + 8 * 4 + 8 * 4 + p.n_rlimits * 24 + p.n_fd_moves * 12 +
                  p.n_keep_fds * 4 + p.n_groups * 4 + handed.size() * 8;
    if (p.path) size += std::strlen(p.path) + 1;
    if (p.cwd) size += std::strlen(p.cwd) + 1;
    for (size_t i = 0; i < n_argv; i++) size += std::strlen(p.argv[i]) + 1;
    for (size_t i = 0; i < n_envp; i++) size += std::strlen(p.envp[i]) + 1;
    if (size > kPlanFormatMax) return -E2BIG;

    std::vector<uint8_t> out;
    out.reserve(size);
    Writer w(&out);
    w.bytes(kMagic, sizeof kMagic);
    w.u32(kPlanFormatVersion);
    w.u32(0);
    w.u64(size);

    w.u64(p.flags);
    w.u64(mask_bits(p.sigmask));
    w.u64(p.deadline_usec);
    w.i32(p.exec_fd);
    w.i32(p.cgroup_fd);
    w.i32(p.parent_death_signal);
    w.i32(p.parent_pid);
    w.i32(p.fd_floor);
    w.u32(p.uid);
    w.u32(p.gid);
    w.u32(p.umask);

    for (size_t n :
         {n_argv, n_envp, p.n_rlimits, p.n_fd_moves, p.n_keep_fds, p.n_groups, handed.size()})
        w.u32(static_cast<uint32_t>(n));
    w.u32((p.path ? kHasPath : 0) | (p.cwd ? kHasCwd : 0));

    for (size_t i = 0; i < p.n_rlimits; i++) {
        w.i32(p.rlimits[i].resource);
        w.u32(0);
        w.u64(p.rlimits[i].cur);
        w.u64(p.rlimits[i].max);
    }
    for (size_t i = 0; i < p.n_fd_moves; i++) {
        w.i32(static_cast<int>(p.fd_moves[i].op));
        w.i32(p.fd_moves[i].from);
        w.i32(p.fd_moves[i].to);
    }
    for (size_t i = 0; i < p.n_keep_fds; i++) w.i32(p.keep_fds[i]);
    for (size_t i = 0; i < p.n_groups; i++) w.u32(p.groups[i]);
    for (const HandedFd &h : handed) {
        w.i32(h.fd);
        w.u32(h.cloexec ? kHandedCloexec : 0);
    }

    if (p.path) w.str(p.path);
    if (p.cwd) w.str(p.cwd);
    for (size_t i = 0; i < n_argv; i++) w.str(p.argv[i]);
    for (size_t i = 0; i < n_envp; i++) w.str(p.envp[i]);

    *ret = std::move(out);
    return 0;
}

/* Whether the fd moves are ones plan_run() can carry out as they stand
 * (see the format): each op with the numbers it uses, and the temporary
 * and /dev/null made before they are used and gone at the end. */
bool fd_moves_valid(const std::vector<PlanFdMove> &moves, int floor) {
    auto fd = [](int v) { return v >= 0; };
    auto target = [floor](int v) { return v >= 0 && v < floor; };
    bool saved = false;
    enum { never, open, closed } null = never;
    for (const PlanFdMove &m : moves) {
        switch (m.op) {
            case FdOp::dup:
                if (!fd(m.from) || !target(m.to) || m.from == m.to) return false;
                break;
            case FdOp::inherit:
                if (!target(m.to) || m.from != m.to) return false;
                break;
            case FdOp::save:
                if (!fd(m.from) || m.to != -1 || saved) return false;
                saved = true;
                break;
            case FdOp::restore:
                if (m.from != -1 || !target(m.to) || !saved) return false;
                saved = false;
                break;
            case FdOp::open_null:
                if (m.from != -1 || m.to != -1 || null != never) return false;
                null = open;
                break;
            case FdOp::null:
                if (m.from != -1 || !target(m.to) || null != open) return false;
                break;
            case FdOp::close_null:
                if (m.from != -1 || m.to != -1 || null != open) return false;
                null = closed;
                break;
            default:
                return false;
        }
    }
    return !saved && null != open;
}

int read_plan(std::span<const uint8_t> data, PlanReadStorage *s, SpawnPlan *p,
              std::vector<HandedFd> *handed) {
    if (data.size() > kPlanFormatMax) return -E2BIG;
    /* The strings will point into the storage's copy. */
    s->bytes.assign(data.begin(), data.end());
    Reader in(reinterpret_cast<const uint8_t *>(s->bytes.data()), s->bytes.size());

    uint32_t version, reserved;
    uint64_t size;
    if (!in.skip(kMagic, sizeof kMagic) || !in.u32(&version)) return -EBADMSG;
    if (version != kPlanFormatVersion) return -EPROTONOSUPPORT;
    if (!in.u32(&reserved) || reserved != 0 || !in.u64(&size) || size != data.size())
        return -EBADMSG;

    uint64_t flags, mask, deadline;
    int exec_fd, cgroup_fd, pdeathsig, parent_pid, floor;
    uint32_t uid, gid, umask;
    if (!in.u64(&flags) || !in.u64(&mask) || !in.u64(&deadline) || !in.i32(&exec_fd) ||
        !in.i32(&cgroup_fd) || !in.i32(&pdeathsig) || !in.i32(&parent_pid) || !in.i32(&floor) ||
        !in.u32(&uid) || !in.u32(&gid) || !in.u32(&umask))
        return -EBADMSG;
    if (flags & ~kSpawnKnownFlags) return -EBADMSG;
    if ((flags & IPCB_SPAWN_EXEC_FD) ? exec_fd < 0 : exec_fd != -1) return -EBADMSG;
    if ((flags & IPCB_SPAWN_CGROUP) ? cgroup_fd < 0 : cgroup_fd != -1) return -EBADMSG;
    if (pdeathsig < 0 || pdeathsig > kSignalMax || parent_pid <= 0 || floor < 3) return -EBADMSG;
    if ((!(flags & IPCB_SPAWN_SET_UID) && uid != 0) || (!(flags & IPCB_SPAWN_SET_GID) && gid != 0))
        return -EBADMSG;
    if (umask > 0777 || (!(flags & IPCB_SPAWN_SET_UMASK) && umask != 0)) return -EBADMSG;

    uint32_t n_argv, n_envp, n_rlimits, n_moves, n_keep, n_groups, n_handed, strings;
    if (!in.u32(&n_argv) || !in.u32(&n_envp) || !in.u32(&n_rlimits) || !in.u32(&n_moves) ||
        !in.u32(&n_keep) || !in.u32(&n_groups) || !in.u32(&n_handed) || !in.u32(&strings))
        return -EBADMSG;
    if (n_argv == 0 || n_groups > kGroupsMax) return -EBADMSG;
    if (n_groups > 0 && !(flags & IPCB_SPAWN_SET_GROUPS)) return -EBADMSG;
    if (strings & ~(kHasPath | kHasCwd)) return -EBADMSG;
    if (static_cast<bool>(strings & kHasPath) == static_cast<bool>(flags & IPCB_SPAWN_EXEC_FD))
        return -EBADMSG;
    /* Before anything is allocated for them: the counts must fit in what
     * is left, each string taking at least its NUL. The products cannot
     * overflow: the counts are 32-bit. */
    uint64_t n_strings =
        uint64_t{n_argv} + n_envp + ((strings & kHasPath) ? 1 : 0) + ((strings & kHasCwd) ? 1 : 0);
    uint64_t need = uint64_t{n_rlimits} * 24 + uint64_t{n_moves} * 12 + uint64_t{n_keep} * 4 +
                    uint64_t{n_groups} * 4 + uint64_t{n_handed} * 8 + n_strings;
    if (need > in.left()) return -EBADMSG;

    s->rlimits.reserve(n_rlimits);
    for (uint32_t i = 0; i < n_rlimits; i++) {
        PlanRlimit l;
        uint32_t pad;
        if (!in.i32(&l.resource) || !in.u32(&pad) || !in.u64(&l.cur) || !in.u64(&l.max))
            return -EBADMSG;
        if (l.resource < 0 || l.resource >= RLIM_NLIMITS || pad != 0 || l.cur > l.max)
            return -EBADMSG;
        s->rlimits.push_back(l);
    }
    s->fd_moves.reserve(n_moves);
    for (uint32_t i = 0; i < n_moves; i++) {
        int op, from, to;
        if (!in.i32(&op) || !in.i32(&from) || !in.i32(&to)) return -EBADMSG;
        if (op < static_cast<int>(FdOp::dup) || op > static_cast<int>(FdOp::close_null))
            return -EBADMSG;
        s->fd_moves.push_back({static_cast<FdOp>(op), from, to});
    }
    if (!fd_moves_valid(s->fd_moves, floor)) return -EBADMSG;
    s->keep_fds.reserve(n_keep);
    for (uint32_t i = 0; i < n_keep; i++) {
        int fd;
        if (!in.i32(&fd) || fd < 0 || fd >= floor) return -EBADMSG;
        if (!s->keep_fds.empty() && fd <= s->keep_fds.back()) return -EBADMSG;
        s->keep_fds.push_back(fd);
    }
    s->groups.reserve(n_groups);
    for (uint32_t i = 0; i < n_groups; i++) {
        uint32_t g;
        if (!in.u32(&g)) return -EBADMSG;
        s->groups.push_back(static_cast<gid_t>(g));
    }
    std::vector<HandedFd> h;
    h.reserve(n_handed);
    for (uint32_t i = 0; i < n_handed; i++) {
        int fd;
        uint32_t f;
        if (!in.i32(&fd) || !in.u32(&f) || fd < 0 || (f & ~kHandedCloexec)) return -EBADMSG;
        if (!h.empty() && fd <= h.back().fd) return -EBADMSG;
        h.push_back({fd, static_cast<bool>(f & kHandedCloexec)});
    }

    const char *path = nullptr, *cwd = nullptr;
    if ((strings & kHasPath) && !in.str(&path)) return -EBADMSG;
    if ((strings & kHasCwd) && !in.str(&cwd)) return -EBADMSG;
    s->argv.reserve(size_t{n_argv} + 1);
    for (uint32_t i = 0; i < n_argv; i++) {
        const char *a;
        if (!in.str(&a)) return -EBADMSG;
        s->argv.push_back(const_cast<char *>(a));
    }
    s->argv.push_back(nullptr);
    const bool ready = flags & IPCB_SPAWN_READY;
    s->envp.reserve(size_t{n_envp} + 2);
    for (uint32_t i = 0; i < n_envp; i++) {
        const char *e;
        if (!in.str(&e)) return -EBADMSG;
        s->envp.push_back(const_cast<char *>(e));
    }
    if (in.left() != 0) return -EBADMSG;
    if (ready) {
        /* Filled by plan_run() with barrier_serialize(), as compiled. */
        s->record_slot.assign(kRecordPrefix.size() + BARRIER_RECORD_MAX, '\0');
        std::copy(kRecordPrefix.begin(), kRecordPrefix.end(), s->record_slot.begin());
        s->envp.push_back(s->record_slot.data());
    }
    s->envp.push_back(nullptr);

    *p = SpawnPlan{};
    p->path = path;
    p->exec_fd = exec_fd;
    p->argv = s->argv.data();
    p->envp = s->envp.data();
    p->record_slot = ready ? s->record_slot.data() : nullptr;
    p->flags = flags;
    p->sigmask = mask_from_bits(mask);
    p->parent_death_signal = pdeathsig;
    p->parent_pid = parent_pid;
    p->cgroup_fd = cgroup_fd;
    plan_use_lists(p, *s);
    p->fd_floor = floor;
    p->gid = static_cast<gid_t>(gid);
    p->uid = static_cast<uid_t>(uid);
    p->umask = static_cast<mode_t>(umask);
    p->cwd = cwd;
    p->child_callback = nullptr;
    p->child_callback_userdata = nullptr;
    p->barrier = nullptr;
    p->report_fd = -1;
    p->status = nullptr;
    p->deadline_usec = deadline;

    /* Exactly the fds the plan uses, for the helper to restore. */
    std::vector<int> fds = caller_fds(*p);
    if (fds.size() != h.size()) return -EBADMSG;
    for (size_t i = 0; i < fds.size(); i++)
        if (fds[i] != h[i].fd) return -EBADMSG;
    *handed = std::move(h);
    return 0;
}

}  // namespace

int plan_handed_fds(const SpawnPlan &plan, std::vector<HandedFd> *ret) noexcept {
    return catch_oom([&plan, ret] {
        std::vector<HandedFd> handed;
        for (int fd : caller_fds(plan)) {
            int flags = fcntl(fd, F_GETFD);
            if (flags < 0) return -errno;
            handed.push_back({fd, static_cast<bool>(flags & FD_CLOEXEC)});
        }
        *ret = std::move(handed);
        return 0;
    });
}

int plan_write(const SpawnPlan &plan, std::span<const HandedFd> handed,
               std::vector<uint8_t> *ret) noexcept {
    return catch_oom([&plan, handed, ret] { return write_plan(plan, handed, ret); });
}

int plan_read(std::span<const uint8_t> data, PlanReadStorage *storage, SpawnPlan *ret_plan,
              std::vector<HandedFd> *ret_handed) noexcept {
    return catch_oom([data, storage, ret_plan, ret_handed] {
        /* Built aside and moved in whole, so that a failure changes
         * nothing; the pointers into each buffer survive the move. */
        PlanReadStorage s;
        SpawnPlan p;
        std::vector<HandedFd> handed;
        int r = read_plan(data, &s, &p, &handed);
        if (r < 0) return r;
        *storage = std::move(s);
        *ret_plan = p;
        *ret_handed = std::move(handed);
        return 0;
    });
}

}  // namespace ipcbarrier::detail
