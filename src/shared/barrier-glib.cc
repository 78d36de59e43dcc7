/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/barrier-glib.h>

#include <cerrno>
#include <cstring>

#include <poll.h>

/* How it works: the source adds the barrier's own eventfd and pipe end to
 * its context with g_source_add_unix_fd() and has neither prepare nor
 * check: GLib dispatches it when one of them reports an event, and only
 * then does dispatch read the barrier (the chosen wait with a timeout of
 * 0). A result known without reading (barrier_wait_kind_peek(): at
 * creation, after a local abortion, after a callback that goes on) is
 * recorded and the source made ready with g_source_set_ready_time(0). So
 * an idle source costs no syscall however often the loop iterates.
 *
 * The source is the barrier's watch (barrier_watch()), which tells it of a
 * local abortion, of a move, and of barrier_destroy() or a fatal error
 * before the fds are closed: then it takes them out of the context at
 * once, so the context never polls a closed fd and nothing of ours keeps
 * the barrier's pipe open. After barrier_destroy() it never looks at the
 * Barrier again: its memory may hold another barrier by then. */

namespace {

struct BarrierSource {
    GSource source;   /* first: GLib allocates the struct and hands it back */
    Barrier *barrier; /* the barrier read, or NULL once let go of */
    BarrierWaitKind kind;
    gpointer tags[2]; /* the eventfd and the pipe end in the context */
    BarrierWatch watch;
    bool watching; /* watch is attached to barrier */
    bool pending;  /* result is to be delivered */
    bool done;     /* a result <= 0 was delivered: inert for good */
    int result;
};

BarrierSource *as_barrier_source(GSource *source) {
    return reinterpret_cast<BarrierSource *>(source);
}

/* Takes the fds out of the context. A destroyed source has none there any
 * more, and GLib refuses to be asked. */
void remove_fds(BarrierSource *s) {
    const bool destroyed = g_source_is_destroyed(&s->source);
    for (gpointer &tag : s->tags) {
        if (tag && !destroyed) g_source_remove_unix_fd(&s->source, tag);
        tag = nullptr;
    }
}

void on_watch(Barrier *b, BarrierWatchEvent event, void *userdata);

/* Lets go of the barrier: no fds in the context, no watch. */
void release(BarrierSource *s) {
    remove_fds(s);
    if (s->watching) (void)barrier_unwatch(s->barrier, &s->watch);
    s->watching = false;
    s->barrier = nullptr;
}

/* Records a result to deliver and makes the source ready for it. */
void schedule(BarrierSource *s, int result) {
    s->result = result;
    s->pending = true;
    /* After a result <= 0 the pipe may report a hang-up for ever. */
    if (result <= 0) remove_fds(s);
    if (!g_source_is_destroyed(&s->source)) g_source_set_ready_time(&s->source, 0);
}

/* Schedules the result that the barrier's state alone decides, if any. */
void peek(BarrierSource *s) {
    if (s->done || s->pending || !s->barrier) return;
    int r = barrier_wait_kind_peek(s->barrier, s->kind);
    if (r == 0 || r == 1) schedule(s, r);
}

void on_watch(Barrier *b, BarrierWatchEvent event, void *userdata) {
    auto *s = static_cast<BarrierSource *>(userdata);
    switch (event) {
        case BARRIER_WATCH_CHANGED:
            peek(s);
            break;
        case BARRIER_WATCH_MOVED:
            s->barrier = b;
            break;
        case BARRIER_WATCH_CLOSING:
            /* The watch is gone already; the fds are still open. */
            s->watching = false;
            remove_fds(s);
            s->barrier = nullptr;
            /* Whatever was recorded: the barrier is gone. */
            if (!s->done) schedule(s, -EBADF);
            break;
        case BARRIER_WATCH_FAILED:
            /* The pipe end is about to be closed; the watch stays, so a
             * destroy or a move still reaches us until the 0 is
             * delivered. */
            remove_fds(s);
            if (!s->done && !s->pending) schedule(s, 0);
            break;
    }
}

/* Whether GLib reported an event on one of the fds in this iteration. */
bool fds_have_events(BarrierSource *s) {
    for (gpointer tag : s->tags)
        if (tag && g_source_query_unix_fd(&s->source, tag) != 0) return true;
    return false;
}

gboolean barrier_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data) {
    BarrierSource *s = as_barrier_source(source);
    if (!s->pending && !s->done && s->barrier && fds_have_events(s)) {
        int r = barrier_wait_kind_timeout(s->barrier, s->kind, 0);
        /* -ETIMEDOUT: it consumed what arrived, and the wait is not over.
         * A fatal error was announced as FAILED, which recorded a 0; the
         * error itself tells more. */
        if (r != -ETIMEDOUT) {
            s->result = r;
            s->pending = true;
            if (r <= 0) remove_fds(s);
        }
    }
    /* GLib does not reset it: a source left ready would spin. */
    if (g_source_get_ready_time(source) != -1) g_source_set_ready_time(source, -1);
    if (!s->pending) return G_SOURCE_CONTINUE;

    s->pending = false;
    const int r = s->result;
    Barrier *b = s->barrier;
    if (r <= 0) {
        /* The last one: the barrier is free for another reader, also
         * from within the callback. */
        s->done = true;
        release(s);
    }
    if (!callback) return G_SOURCE_REMOVE;
    /* The callback was cast to GSourceFunc through void (*)(void), as
     * G_SOURCE_FUNC() does; cast it back the same way. */
    auto func = reinterpret_cast<BarrierSourceFunc>(reinterpret_cast<void (*)()>(callback));
    const gboolean keep = func(b, r, user_data);
    /* A wait that is still over (a sync not ahead) is delivered again. */
    if (keep && !g_source_is_destroyed(source)) peek(s);
    return keep;
}

void barrier_source_finalize(GSource *source) {
    /* GLib has dropped the fds from the context already, and asking it
     * anything about a source being finalized is an error. */
    BarrierSource *s = as_barrier_source(source);
    if (s->watching) (void)barrier_unwatch(s->barrier, &s->watch);
}

GSourceFuncs barrier_source_funcs = {
    .prepare = nullptr,
    .check = nullptr,
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

/* barrier_source_new() as -errno. */
int source_new(Barrier *b, BarrierWaitKind kind, GSource **ret) {
    if (!b) return -EINVAL;
    struct pollfd pfd[2];
    int r = barrier_get_pollfds(b, pfd);
    if (r < 0) return r;

    GSource *source = g_source_new(&barrier_source_funcs, sizeof(BarrierSource));
    BarrierSource *s = as_barrier_source(source);
    s->barrier = b;
    s->kind = kind;
    r = barrier_watch(b, &s->watch, on_watch, s);
    if (r < 0) {
        s->barrier = nullptr;
        g_source_unref(source);
        return r;
    }
    s->watching = true;
    g_source_set_name(source, "ipcbarrier");
    /* Hang-up and error are always reported. The pipe end is -1 after a
     * fatal I/O error; then the wait is decided (0) anyway. */
    const GIOCondition conditions[2] = {G_IO_IN, static_cast<GIOCondition>(G_IO_HUP | G_IO_ERR)};
    for (int i = 0; i < 2; i++)
        if (pfd[i].fd >= 0) s->tags[i] = g_source_add_unix_fd(source, pfd[i].fd, conditions[i]);
    peek(s);
    *ret = source;
    return 0;
}

}  // namespace

extern "C" {

/* Each entry point checks kind before it passes it on: passing it loads
 * the value, which C++ may do only for one of the enumerators. */

GSource *barrier_source_new(Barrier *b, BarrierWaitKind kind) {
    GSource *source;
    int r = kind_is_known(kind) ? source_new(b, kind, &source) : -EINVAL;
    if (r < 0) {
        errno = -r;
        return nullptr;
    }
    return source;
}

guint barrier_add_watch_full(gint priority, Barrier *b, BarrierWaitKind kind,
                             BarrierSourceFunc func, gpointer user_data, GDestroyNotify notify) {
    if (!func || !kind_is_known(kind)) {
        errno = EINVAL;
        return 0;
    }
    GSource *source = barrier_source_new(b, kind);
    if (!source) return 0;
    if (priority != G_PRIORITY_DEFAULT) g_source_set_priority(source, priority);
    g_source_set_callback(source, G_SOURCE_FUNC(func), user_data, notify);
    guint id = g_source_attach(source, nullptr);
    g_source_unref(source);
    return id;
}

guint barrier_add_watch(Barrier *b, BarrierWaitKind kind, BarrierSourceFunc func,
                        gpointer user_data) {
    if (!kind_is_known(kind)) {
        errno = EINVAL;
        return 0;
    }
    return barrier_add_watch_full(G_PRIORITY_DEFAULT, b, kind, func, user_data, nullptr);
}

}  // extern "C"
