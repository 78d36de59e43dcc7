/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/barrier-glib.h>

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <poll.h>

#include <ipcbarrier/fd-util.hh>

/* How it works: the source holds duplicates of the barrier's eventfd and
 * pipe end and adds them to its context with g_source_add_unix_fd(). Before
 * each poll (prepare) and whenever one of them reports an event (check), it
 * calls the chosen wait with a timeout of 0, which consumes what arrived;
 * a result other than -ETIMEDOUT makes the source ready. The duplicates are
 * ours, so the context never polls a number the barrier has closed and an
 * unrelated fd may have been given since. */

namespace {

struct BarrierSource {
    GSource source; /* first: GLib allocates the struct and hands it back */
    Barrier *barrier;
    BarrierWaitKind kind;
    int fds[2]; /* our duplicates of the eventfd and the pipe end, or -1 */
    gpointer tags[2];
    int result; /* what the wait returned; valid while pending */
    bool pending;
    bool done; /* a result <= 0 was delivered: inert for good */
};

BarrierSource *as_barrier_source(GSource *source) {
    return reinterpret_cast<BarrierSource *>(source);
}

/* Removes the duplicates from the context and closes them. */
void unwatch(BarrierSource *s) {
    for (int i = 0; i < 2; i++) {
        if (s->tags[i]) g_source_remove_unix_fd(&s->source, s->tags[i]);
        s->tags[i] = nullptr;
        s->fds[i] = ipcbarrier::safe_close(s->fds[i]);
    }
}

/* Looks at the barrier without blocking and records a result that ends the
 * wait. Returns whether one is pending. */
bool look(BarrierSource *s) {
    if (s->done) return false;
    if (s->pending) return true;

    struct pollfd unused[2];
    int r;
    if (barrier_get_pollfds(s->barrier, unused) < 0) {
        /* Destroyed by its owner. Our duplicate of the pipe end would keep
         * the pipe alive, and the peer would never see the hang-up. */
        unwatch(s);
        r = -EBADF;
    } else {
        r = barrier_wait_kind_timeout(s->barrier, s->kind, 0);
        if (r == -ETIMEDOUT) return false;
        /* After an abortion or an error the pipe may report a hang-up for
         * ever: watching it would spin. */
        if (r <= 0) unwatch(s);
    }
    s->result = r;
    s->pending = true;
    return true;
}

gboolean barrier_source_prepare(GSource *source, gint *timeout) {
    *timeout = -1;
    return look(as_barrier_source(source));
}

gboolean barrier_source_check(GSource *source) {
    BarrierSource *s = as_barrier_source(source);
    if (s->done || s->pending) return s->pending;
    for (int i = 0; i < 2; i++)
        if (s->tags[i] && g_source_query_unix_fd(source, s->tags[i]) != 0) return look(s);
    return FALSE;
}

gboolean barrier_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data) {
    BarrierSource *s = as_barrier_source(source);
    /* GLib also dispatches when an fd has events that check() found to
     * be no result yet (the wait consumed them). */
    if (!s->pending) return G_SOURCE_CONTINUE;
    s->pending = false;
    int r = s->result;
    if (r <= 0) s->done = true;
    if (!callback) return G_SOURCE_REMOVE;
    /* The callback was cast to GSourceFunc through void (*)(void), as
     * G_SOURCE_FUNC() does; cast it back the same way. */
    auto func = reinterpret_cast<BarrierSourceFunc>(reinterpret_cast<void (*)()>(callback));
    return func(s->barrier, r, user_data);
}

void barrier_source_finalize(GSource *source) {
    BarrierSource *s = as_barrier_source(source);
    /* GLib has already dropped the poll records; only the fds are ours. */
    for (int &fd : s->fds) fd = ipcbarrier::safe_close(fd);
}

GSourceFuncs barrier_source_funcs = {
    .prepare = barrier_source_prepare,
    .check = barrier_source_check,
    .dispatch = barrier_source_dispatch,
    .finalize = barrier_source_finalize,
    .closure_callback = nullptr,
    .closure_marshal = nullptr,
};

/* Whether kind is one of the enumerators. A C caller may pass any int,
 * which C++ must not load as a BarrierWaitKind: look at its bytes. */
bool kind_is_known(const BarrierWaitKind &kind) {
    unsigned k;
    static_assert(sizeof k == sizeof kind);
    memcpy(&k, &kind, sizeof k);
    return k <= BARRIER_WAIT_ABORTION;
}

/* A close-on-exec duplicate above stdio, or -errno. */
int dup_fd(int fd) {
    int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    return r < 0 ? -errno : r;
}

}  // namespace

extern "C" {

GSource *barrier_source_new(Barrier *b, BarrierWaitKind kind) {
    if (!b || !kind_is_known(kind)) {
        errno = EINVAL;
        return nullptr;
    }
    struct pollfd pfd[2];
    int r = barrier_get_pollfds(b, pfd);
    if (r < 0) {
        errno = -r;
        return nullptr;
    }

    ipcbarrier::UniqueFd fds[2];
    for (int i = 0; i < 2; i++) {
        /* the pipe end is -1 after a fatal I/O error */
        if (pfd[i].fd < 0) continue;
        r = dup_fd(pfd[i].fd);
        if (r < 0) {
            errno = -r;
            return nullptr;
        }
        fds[i].reset(r);
    }

    GSource *source = g_source_new(&barrier_source_funcs, sizeof(BarrierSource));
    g_source_set_name(source, "ipcbarrier");
    BarrierSource *s = as_barrier_source(source);
    s->barrier = b;
    s->kind = kind;
    const GIOCondition conditions[2] = {G_IO_IN, static_cast<GIOCondition>(G_IO_HUP | G_IO_ERR)};
    for (int i = 0; i < 2; i++) {
        s->fds[i] = fds[i].release();
        if (s->fds[i] >= 0) s->tags[i] = g_source_add_unix_fd(source, s->fds[i], conditions[i]);
    }
    return source;
}

guint barrier_add_watch(Barrier *b, BarrierWaitKind kind, BarrierSourceFunc func,
                        gpointer user_data) {
    if (!func) {
        errno = EINVAL;
        return 0;
    }
    GSource *source = barrier_source_new(b, kind);
    if (!source) return 0;
    g_source_set_callback(source, G_SOURCE_FUNC(func), user_data, nullptr);
    guint id = g_source_attach(source, nullptr);
    g_source_unref(source);
    return id;
}

}  // extern "C"
