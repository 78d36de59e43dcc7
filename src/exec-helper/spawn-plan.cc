/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "spawn-plan.hh"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

namespace ipcbarrier::detail {
namespace {

constexpr std::string_view kDefaultPath = "/usr/local/bin:/usr/bin:/bin";
constexpr std::string_view kRecordPrefix = BARRIER_ENV "=";

/* The kernel's signals are 1..64; its NGROUPS_MAX is 65536. */
constexpr int kSignalMax = 64;
constexpr size_t kGroupsMax = 65536;

/* A failure of the compilation: the step and a negative errno. */
struct Failed {
    IpcbSpawnStep step;
    int r;
};

bool fd_is_open(int fd) {
    return fcntl(fd, F_GETFD) >= 0;
}

std::string_view env_name(const char *entry) {
    const char *eq = strchr(entry, '=');
    return eq ? std::string_view(entry, static_cast<size_t>(eq - entry)) : std::string_view(entry);
}

/* The fds the start holds for itself in the parent, so that a mapping
 * cannot name one of them as a parent fd. The barrier's are known only
 * once its role is set. */
int own_fds(const PlanContext &context, int ret[5]) {
    int n = 0;
    if (context.barrier) {
        int r = barrier_get_fds(context.barrier, ret);
        if (r > 0) n = r;
    }
    if (context.report_fd >= 0) ret[n++] = context.report_fd;
    if (context.status_fd >= 0) ret[n++] = context.status_fd;
    return n;
}

int check_options(const IpcbSpawnOptions &o, const PlanContext &context) {
    if (!o.argv || !o.argv[0]) return -EINVAL;
    if (o.flags & ~kSpawnKnownFlags) return -EINVAL;
    if (!context.status) return -EINVAL;

    if (o.flags & IPCB_SPAWN_EXEC_FD) {
        /* One program only: an fd or a path, not both. */
        if (o.path) return -EINVAL;
        if (o.exec_fd < 0 || !fd_is_open(o.exec_fd)) return -EBADF;
    }
    if ((o.flags & IPCB_SPAWN_CGROUP) && (o.cgroup_fd < 0 || !fd_is_open(o.cgroup_fd)))
        return -EBADF;
    if ((o.flags & IPCB_SPAWN_READY) && !context.barrier) return -EINVAL;
    if ((o.flags & IPCB_SPAWN_SET_UMASK) && (o.umask & ~static_cast<mode_t>(0777))) return -EINVAL;
    if (o.parent_death_signal < 0 || o.parent_death_signal > kSignalMax) return -EINVAL;

    if (o.flags & IPCB_SPAWN_SET_GROUPS) {
        if (o.n_groups > kGroupsMax || (o.n_groups > 0 && !o.groups)) return -EINVAL;
    } else if (o.groups || o.n_groups > 0) {
        return -EINVAL;
    }

    if (o.n_rlimits > 0 && !o.rlimits) return -EINVAL;
    for (size_t i = 0; i < o.n_rlimits; i++) {
        const IpcbSpawnRlimit &l = o.rlimits[i];
        if (l.resource < 0 || l.resource >= RLIM_NLIMITS) return -EINVAL;
        /* RLIM_INFINITY is the largest value, so this holds for it too. */
        if (l.limit.rlim_cur > l.limit.rlim_max) return -EINVAL;
    }

    if (o.n_fds > 0 && !o.fds) return -EINVAL;
    int own[5];
    int n_own = own_fds(context, own);
    for (size_t i = 0; i < o.n_fds; i++) {
        const IpcbSpawnFd &f = o.fds[i];
        /* INT_MAX cannot be a child fd: nothing would be above it. */
        if (f.child_fd < 0 || f.child_fd == INT_MAX) return -EINVAL;
        if (f.parent_fd < -1) return -EBADF;
        if (f.parent_fd >= 0) {
            if (!fd_is_open(f.parent_fd)) return -EBADF;
            /* A number the start holds was closed when the caller named
             * it: the caller's fd is gone. */
            if (std::find(own, own + n_own, f.parent_fd) != own + n_own) return -EBADF;
        }
    }
    /* Duplicates, after the cheap checks: this one allocates. */
    if (o.n_fds > 1) {
        std::unordered_set<int> seen;
        for (size_t i = 0; i < o.n_fds; i++)
            if (!seen.insert(o.fds[i].child_fd).second) return -EINVAL;
    }

    for (const char *const *e = o.env_set; e && *e; e++)
        if (**e == '=' || !strchr(*e, '=')) return -EINVAL;
    for (const char *const *e = o.env_unset; e && *e; e++)
        if (!**e || strchr(*e, '=')) return -EINVAL;
    return 0;
}

/* The child's environment: the base, without what env_unset names and what
 * env_set replaces (env_set's entries follow, the last of each name
 * winning), and with IPCB_SPAWN_READY the record slot at the end. */
void build_envp(const IpcbSpawnOptions &o, PlanStorage *s) {
    const char *const *base = o.envp ? o.envp : const_cast<const char *const *>(environ);
    bool ready = o.flags & IPCB_SPAWN_READY;
    auto &envp = s->envp;

    if (!o.env_set && !o.env_unset && !ready) {
        for (const char *const *e = base; e && *e; e++) envp.push_back(const_cast<char *>(*e));
        envp.push_back(nullptr);
        return;
    }

    std::unordered_set<std::string_view> drop;
    for (const char *const *e = o.env_unset; e && *e; e++) drop.insert(*e);
    for (const char *const *e = o.env_set; e && *e; e++) drop.insert(env_name(*e));
    /* The program's barrier is the one handed over, never an inherited one. */
    if (ready) drop.insert(BARRIER_ENV);

    for (const char *const *e = base; e && *e; e++)
        if (!drop.contains(env_name(*e))) envp.push_back(const_cast<char *>(*e));

    std::unordered_map<std::string_view, size_t> set_at;
    for (const char *const *e = o.env_set; e && *e; e++) {
        std::string_view name = env_name(*e);
        if (ready && name == BARRIER_ENV) continue;
        auto [it, inserted] = set_at.try_emplace(name, envp.size());
        if (inserted)
            envp.push_back(const_cast<char *>(*e));
        else
            envp[it->second] = const_cast<char *>(*e);
    }

    if (ready) {
        /* Filled by the child with barrier_serialize(), which writes the
         * record and its NUL into at most BARRIER_RECORD_MAX bytes. */
        s->record_slot.assign(kRecordPrefix.size() + BARRIER_RECORD_MAX, '\0');
        std::copy(kRecordPrefix.begin(), kRecordPrefix.end(), s->record_slot.begin());
        envp.push_back(s->record_slot.data());
    }
    envp.push_back(nullptr);
}

const char *env_value(const std::vector<char *> &envp, std::string_view name) {
    for (char *e : envp) {
        if (!e) break;
        if (strncmp(e, name.data(), name.size()) == 0 && e[name.size()] == '=')
            return e + name.size() + 1;
    }
    return nullptr;
}

/* Searches file in path_list as execvp() does: the first regular file that
 * may be executed wins; a file that exists but cannot be executed, or a
 * directory that cannot be searched, makes the result EACCES instead of
 * ENOENT; any other error ends the search. Relative entries (and the empty
 * one, the current directory) are looked up under cwd, where the child
 * will be when it executes. */
int search_path(std::string_view file, std::string_view path_list, const char *cwd,
                std::vector<char> *ret) {
    if (file.empty()) return -ENOENT;
    if (file.size() > NAME_MAX) return -ENAMETOOLONG;

    bool eacces = false;
    std::string candidate, lookup;
    for (size_t pos = 0;;) {
        size_t end = path_list.find(':', pos);
        std::string_view dir =
            path_list.substr(pos, end == std::string_view::npos ? end : end - pos);

        candidate.assign(dir);
        if (!dir.empty()) candidate += '/';
        candidate += file;
        const std::string *probe = &candidate;
        if (cwd && candidate[0] != '/') {
            lookup.assign(cwd);
            lookup += '/';
            lookup += candidate;
            probe = &lookup;
        }

        struct stat st;
        int err = 0;
        if (stat(probe->c_str(), &st) < 0)
            err = errno;
        else if (!S_ISREG(st.st_mode))
            err = EACCES; /* what execve() says of a directory or device */
        else if (faccessat(AT_FDCWD, probe->c_str(), X_OK, AT_EACCESS) < 0)
            err = errno;

        switch (err) {
            case 0:
                ret->assign(candidate.begin(), candidate.end());
                ret->push_back('\0');
                return 0;
            case EACCES:
                eacces = true;
                break;
            case ENOENT:
            case ENOTDIR:
            case ENAMETOOLONG:
            case ELOOP:
            case ESTALE:
            case ENODEV:
            case ETIMEDOUT:
                break;
            default:
                return -err;
        }

        if (end == std::string_view::npos) break;
        pos = end + 1;
    }
    return eacces ? -EACCES : -ENOENT;
}

/* Orders the fd moves (see FdOp). Each mapping "to <- from" destroys what
 * was in to, so it must wait until no pending mapping reads to any more.
 * Targets are unique, so every fd has at most one writer: the mappings form
 * chains, which run from their ends, and cycles, where nothing is ready and
 * one target is saved to the temporary first. */
void compile_fd_moves(const IpcbSpawnOptions &o, PlanStorage *s, int *ret_floor) {
    struct Pending {
        int to;
        int from;
        enum { fd, saved, null } source;
        bool done;
    };
    std::vector<Pending> pending;
    std::unordered_map<int, int> readers; /* fd -> pending mappings that read it */
    bool any_null = false;
    int highest = 2;

    auto &moves = s->fd_moves;
    for (size_t i = 0; i < o.n_fds; i++) {
        const IpcbSpawnFd &f = o.fds[i];
        highest = std::max(highest, f.child_fd);
        s->keep_fds.push_back(f.child_fd);
        if (f.parent_fd == f.child_fd) {
            /* Nothing moves, and nothing else writes to it. */
            moves.push_back({FdOp::inherit, f.child_fd, f.child_fd});
        } else if (f.parent_fd < 0) {
            pending.push_back({f.child_fd, -1, Pending::null, false});
            any_null = true;
        } else {
            pending.push_back({f.child_fd, f.parent_fd, Pending::fd, false});
            readers[f.parent_fd]++;
        }
    }
    std::sort(s->keep_fds.begin(), s->keep_fds.end());
    *ret_floor = highest + 1;

    if (any_null) moves.push_back({FdOp::open_null, -1, -1});
    size_t left = pending.size();
    while (left > 0) {
        bool progress = false;
        for (Pending &m : pending) {
            if (m.done) continue;
            auto r = readers.find(m.to);
            if (r != readers.end() && r->second > 0) continue;
            switch (m.source) {
                case Pending::fd:
                    moves.push_back({FdOp::dup, m.from, m.to});
                    readers[m.from]--;
                    break;
                case Pending::saved:
                    moves.push_back({FdOp::restore, -1, m.to});
                    break;
                case Pending::null:
                    moves.push_back({FdOp::null, -1, m.to});
                    break;
            }
            m.done = true;
            left--;
            progress = true;
        }
        if (progress) continue;

        /* Only cycles are left, and in a cycle each target has exactly one
         * pending reader. Saving one target lets the whole cycle run down
         * to that reader, which restores from the temporary and closes it,
         * before another cycle needs the temporary. */
        Pending *first = nullptr;
        for (Pending &m : pending)
            if (!m.done) {
                first = &m;
                break;
            }
        moves.push_back({FdOp::save, first->to, -1});
        for (Pending &m : pending)
            if (!m.done && m.source == Pending::fd && m.from == first->to) {
                m.source = Pending::saved;
                m.from = -1;
            }
        readers[first->to] = 0;
    }
    if (any_null) moves.push_back({FdOp::close_null, -1, -1});
}

Failed compile(const IpcbSpawnOptions &o, const PlanContext &context, PlanStorage *s,
               SpawnPlan *p) {
    int r = check_options(o, context);
    if (r < 0) return {IPCB_STEP_PREPARE, r};

    build_envp(o, s);

    const char *program = o.path ? o.path : o.argv[0];
    bool exec_fd = o.flags & IPCB_SPAWN_EXEC_FD;
    bool search = !exec_fd && !(o.flags & IPCB_SPAWN_NO_PATH_SEARCH) && !strchr(program, '/');
    if (search) {
        const char *path_list = env_value(s->envp, "PATH");
        r = search_path(program, path_list ? std::string_view(path_list) : kDefaultPath, o.cwd,
                        &s->path);
        if (r < 0) return {IPCB_STEP_PATH, r};
    }

    int floor;
    compile_fd_moves(o, s, &floor);

    for (size_t i = 0; i < o.n_rlimits; i++) {
        const struct rlimit &l = o.rlimits[i].limit;
        auto widen = [](rlim_t v) -> uint64_t {
            return v == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(v);
        };
        s->rlimits.push_back({o.rlimits[i].resource, widen(l.rlim_cur), widen(l.rlim_max)});
    }
    if (o.flags & IPCB_SPAWN_SET_GROUPS) s->groups.assign(o.groups, o.groups + o.n_groups);

    *p = SpawnPlan{};
    p->path = exec_fd ? nullptr : search ? s->path.data() : program;
    p->exec_fd = exec_fd ? o.exec_fd : -1;
    p->argv = const_cast<char *const *>(o.argv);
    p->envp = s->envp.data();
    p->record_slot = s->record_slot.empty() ? nullptr : s->record_slot.data();
    p->flags = o.flags;
    if (o.flags & IPCB_SPAWN_KEEP_SIGNALS)
        pthread_sigmask(SIG_BLOCK, nullptr, &p->sigmask);
    else
        sigemptyset(&p->sigmask);
    p->parent_death_signal = o.parent_death_signal;
    p->parent_pid = context.parent_pid;
    p->cgroup_fd = (o.flags & IPCB_SPAWN_CGROUP) ? o.cgroup_fd : -1;
    plan_use_lists(p, *s);
    p->fd_floor = floor;
    /* Only what a flag asks for: the rest is 0, so that a plan has one
     * spelling in the trampoline's format. */
    p->gid = (o.flags & IPCB_SPAWN_SET_GID) ? o.gid : 0;
    p->uid = (o.flags & IPCB_SPAWN_SET_UID) ? o.uid : 0;
    p->umask = (o.flags & IPCB_SPAWN_SET_UMASK) ? o.umask : 0;
    p->cwd = o.cwd;
    p->child_callback = o.child_callback;
    p->child_callback_userdata = o.child_callback_userdata;
    p->barrier = context.barrier;
    p->report_fd = context.report_fd;
    p->status = context.status;
    p->deadline_usec = 0; /* the path sets it: it counts from the call */
    return {IPCB_STEP_NONE, 0};
}

}  // namespace

int plan_compile(const IpcbSpawnOptions *options, const PlanContext &context, PlanStorage *storage,
                 SpawnPlan *ret_plan, IpcbSpawnError *ret_error) noexcept {
    Failed failed{IPCB_STEP_PREPARE, -EINVAL};
    if (options) {
        try {
            /* Built aside and moved in whole, so that a failure changes
             * nothing. The pointers survive the move: each buffer is a heap
             * block that the move hands over. */
            PlanStorage s;
            SpawnPlan p;
            failed = compile(*options, context, &s, &p);
            if (failed.r == 0) {
                *storage = std::move(s);
                *ret_plan = p;
                return 0;
            }
        } catch (const std::bad_alloc &) {
            failed = {IPCB_STEP_PREPARE, -ENOMEM};
        }
    }
    if (ret_error) *ret_error = {failed.step, -failed.r};
    return failed.r;
}

}  // namespace ipcbarrier::detail
