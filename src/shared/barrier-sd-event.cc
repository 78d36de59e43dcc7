/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/barrier-sd-event.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>

#include <poll.h>
#include <sys/epoll.h>

/* How it works: a BarrierEventSource is made of up to three sd-event
 * sources: an io source for the barrier's own eventfd, one for its own
 * pipe end (neither owns its fd), and a defer source for results known
 * without reading. There is no prepare callback: the barrier is read (the
 * chosen wait with a timeout of 0) only when an io source fires, and the
 * handler is called from there. A result that the barrier's state alone
 * decides (barrier_wait_kind_peek(): when added, after a local abortion,
 * after a handler that goes on) is recorded and the defer source enabled
 * ONESHOT, which the loop dispatches in the next iteration without
 * polling. So an idle source costs no syscall however often the loop
 * iterates.
 *
 * The source is the barrier's watch (barrier_watch()), which tells it of a
 * local abortion, of a move, and of barrier_destroy() or a fatal error
 * before the fds are closed: then it drops its io sources at once, which
 * takes the fds out of the epoll set while they are still open. After
 * barrier_destroy() it never looks at the Barrier again: its memory may
 * hold another barrier by then.
 *
 * Lifetime: the struct lives while anybody holds a reference (n_ref: the
 * callers', plus the loop's while floating), while one of our functions
 * that calls the handler runs (n_busy), and while one of its sd-event
 * sources is not freed yet (n_sources: sd-event frees a source that is
 * dispatching only once its callback has returned, and tells us through
 * the destroy callback). The sd-event sources are ours, each holding a
 * reference to the loop, unless the source is floating: then they are
 * floating too, the loop alone holds them, and freeing the loop frees
 * them; their destroy callbacks tell us that the loop has gone. */

struct BarrierEventSource {
    unsigned n_ref;
    unsigned n_busy;
    unsigned n_sources;
    sd_event *event;        /* NULL once the loop has been freed */
    sd_event_source *io[2]; /* eventfd, pipe end; NULL once dropped */
    sd_event_source *defer;
    Barrier *barrier; /* the barrier read, or NULL once let go of */
    BarrierWaitKind kind;
    barrier_event_handler_t handler;
    void *userdata;
    char *description;
    int64_t priority;
    int enabled; /* SD_EVENT_OFF, _ON or _ONESHOT, as the caller set it */
    int result;  /* to be delivered, while pending */
    bool pending;
    BarrierWatch watch;
    bool watching; /* watch is attached to barrier */
    bool stopped;  /* never calls the handler again */
    bool floating;
};

namespace {

void maybe_free(BarrierEventSource *s) {
    if (s->n_ref > 0 || s->n_busy > 0 || s->n_sources > 0) return;
    free(s->description);
    delete s;
}

/* Drops one of our sd-event sources. Disabling an io source takes its fd
 * out of the epoll set at once, even while it is dispatching (sd-event
 * frees it later then). */
void drop(BarrierEventSource *s, sd_event_source **p) {
    sd_event_source *source = *p;
    if (!source) return;
    *p = nullptr;
    if (!s->event) return; /* the loop is freeing it */
    if (s->floating) {
        /* The loop holds the only reference: take it over. */
        sd_event_source_ref(source);
        (void)sd_event_source_set_floating(source, false);
    }
    sd_event_source_disable_unref(source);
}

void remove_fds(BarrierEventSource *s) {
    drop(s, &s->io[0]);
    drop(s, &s->io[1]);
}

void on_watch(Barrier *b, BarrierWatchEvent event, void *userdata);

/* Lets go of the barrier: no fds in the loop, no watch. */
void release(BarrierEventSource *s) {
    remove_fds(s);
    if (s->watching) (void)barrier_unwatch(s->barrier, &s->watch);
    s->watching = false;
    s->barrier = nullptr;
}

/* Sets the sd-event sources to the state s->enabled asks for: the io
 * sources read unless it is off, the defer source delivers what is
 * pending. */
int apply_enabled(BarrierEventSource *s) {
    const int io_state = s->enabled == SD_EVENT_OFF ? SD_EVENT_OFF : SD_EVENT_ON;
    for (sd_event_source *io : s->io) {
        if (!io) continue;
        int r = sd_event_source_set_enabled(io, io_state);
        if (r < 0) return r;
    }
    if (!s->defer) return 0;
    const bool deliver = s->pending && s->enabled != SD_EVENT_OFF;
    return sd_event_source_set_enabled(s->defer, deliver ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
}

/* Stops for good: lets go of the barrier and of every sd-event source, and
 * the loop lets go of the source. The caller calls maybe_free(). */
void stop(BarrierEventSource *s) {
    if (!s->stopped) {
        s->stopped = true;
        s->pending = false;
        s->enabled = SD_EVENT_OFF;
        release(s);
        drop(s, &s->defer);
    }
    if (s->floating) {
        s->floating = false;
        /* Only a caller who dropped a reference it did not hold gets 0. */
        if (s->n_ref > 0) s->n_ref--;
    }
}

/* One of our sd-event sources is being freed. If we did not drop it, the
 * loop is freeing it, and with it the loop itself and every other source
 * of ours: forget them. */
void source_freed(BarrierEventSource *s, sd_event_source **p) {
    s->n_sources--;
    if (*p) {
        s->event = nullptr;
        s->io[0] = s->io[1] = s->defer = nullptr;
        stop(s);
    }
    maybe_free(s);
}

void on_io0_freed(void *userdata) {
    auto *s = static_cast<BarrierEventSource *>(userdata);
    source_freed(s, &s->io[0]);
}

void on_io1_freed(void *userdata) {
    auto *s = static_cast<BarrierEventSource *>(userdata);
    source_freed(s, &s->io[1]);
}

void on_defer_freed(void *userdata) {
    auto *s = static_cast<BarrierEventSource *>(userdata);
    source_freed(s, &s->defer);
}

/* Records a result to deliver and, unless the source is off, makes the
 * loop deliver it in the next iteration. */
void schedule(BarrierEventSource *s, int result) {
    s->result = result;
    s->pending = true;
    /* After a result <= 0 the pipe may report a hang-up for ever. */
    if (result <= 0) remove_fds(s);
    /* Enabling a defer source fails only in a loop used across fork(),
     * where nothing works any more. */
    if (s->defer && s->enabled != SD_EVENT_OFF)
        (void)sd_event_source_set_enabled(s->defer, SD_EVENT_ONESHOT);
}

/* Schedules the result that the barrier's state alone decides, if any. */
void peek(BarrierEventSource *s) {
    if (s->stopped || s->pending || !s->barrier || s->enabled == SD_EVENT_OFF) return;
    int r = barrier_wait_kind_peek(s->barrier, s->kind);
    if (r == 0 || r == 1) schedule(s, r);
}

void on_watch(Barrier *b, BarrierWatchEvent event, void *userdata) {
    auto *s = static_cast<BarrierEventSource *>(userdata);
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
            if (!s->stopped) schedule(s, -EBADF);
            break;
        case BARRIER_WATCH_FAILED:
            /* The pipe end is about to be closed; the watch stays, so a
             * destroy or a move still reaches us until the 0 is
             * delivered. */
            remove_fds(s);
            if (!s->stopped && !s->pending) schedule(s, 0);
            break;
    }
}

/* Calls the handler with the pending result. The caller holds n_busy. */
void deliver(BarrierEventSource *s) {
    if (!s->pending || s->stopped || s->enabled == SD_EVENT_OFF) return;
    s->pending = false;
    const int r = s->result;
    Barrier *b = s->barrier;
    /* The last result: the barrier is free for another reader, also from
     * within the handler. */
    if (r <= 0) release(s);
    if (s->enabled == SD_EVENT_ONESHOT) s->enabled = SD_EVENT_OFF;
    /* Cannot fail when it only disables. */
    (void)apply_enabled(s);

    /* The handler may drop s: n_busy keeps it. */
    int k = s->handler(s, b, r, s->userdata);
    if (r <= 0 || k < 0)
        stop(s);
    else
        peek(s); /* a wait that is still over (a sync not ahead) comes again */
}

int on_io(sd_event_source *, int, uint32_t, void *userdata) {
    auto *s = static_cast<BarrierEventSource *>(userdata);
    s->n_busy++;
    if (!s->pending && !s->stopped && s->barrier && s->enabled != SD_EVENT_OFF) {
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
    deliver(s);
    s->n_busy--;
    maybe_free(s);
    /* Never < 0: sd-event would log it and disable the source. */
    return 0;
}

int on_defer(sd_event_source *, void *userdata) {
    auto *s = static_cast<BarrierEventSource *>(userdata);
    s->n_busy++;
    deliver(s);
    s->n_busy--;
    maybe_free(s);
    return 0;
}

/* Whether kind is one of the enumerators. A C caller may pass any int,
 * which C++ must not load as a BarrierWaitKind: look at its bytes. */
bool kind_is_known(const BarrierWaitKind &kind) {
    unsigned k;
    static_assert(sizeof k == sizeof kind);
    memcpy(&k, &kind, sizeof k);
    return k <= BARRIER_WAIT_ABORTION;
}

/* Counts a new sd-event source of ours and learns when it is freed.
 * Neither call can fail on a source just created. */
void adopt(BarrierEventSource *s, sd_event_source *source, sd_event_destroy_t on_freed) {
    s->n_sources++;
    (void)sd_event_source_set_destroy_callback(source, on_freed);
}

int add_sources(BarrierEventSource *s, const struct pollfd pfd[2]) {
    int r = sd_event_add_io(s->event, &s->io[0], pfd[0].fd, EPOLLIN, on_io, s);
    if (r < 0) return r;
    adopt(s, s->io[0], on_io0_freed);
    /* The pipe end is -1 after a fatal I/O error (the wait is decided
     * then). Hang-up and error are reported without being asked for. */
    if (pfd[1].fd >= 0) {
        r = sd_event_add_io(s->event, &s->io[1], pfd[1].fd, 0, on_io, s);
        if (r < 0) return r;
        adopt(s, s->io[1], on_io1_freed);
    }
    r = sd_event_add_defer(s->event, &s->defer, on_defer, s);
    if (r < 0) return r;
    adopt(s, s->defer, on_defer_freed);
    return sd_event_source_set_enabled(s->defer, SD_EVENT_OFF);
}

/* The sd-event sources that exist, for the setters. */
template <typename F>
int for_each_source(BarrierEventSource *s, F f) {
    for (sd_event_source *source : {s->io[0], s->io[1], s->defer}) {
        if (!source) continue;
        int r = f(source);
        if (r < 0) return r;
    }
    return 0;
}

}  // namespace

extern "C" {

int barrier_event_add(sd_event *e, BarrierEventSource **ret, Barrier *b, BarrierWaitKind kind,
                      barrier_event_handler_t handler, void *userdata) {
    if (!e || !b || !handler || !kind_is_known(kind)) return -EINVAL;
    struct pollfd pfd[2];
    int r = barrier_get_pollfds(b, pfd);
    if (r < 0) return r;

    auto *s = new (std::nothrow) BarrierEventSource{};
    if (!s) return -ENOMEM;
    s->n_ref = 1; /* ours until it is complete */
    s->event = e;
    s->kind = kind;
    s->handler = handler;
    s->userdata = userdata;
    s->priority = SD_EVENT_PRIORITY_NORMAL;
    s->enabled = SD_EVENT_ON;
    r = barrier_watch(b, &s->watch, on_watch, s);
    if (r < 0) {
        delete s;
        return r;
    }
    s->watching = true;
    s->barrier = b;

    r = add_sources(s, pfd);
    if (r < 0) {
        (void)barrier_event_source_unref(s);
        return r;
    }
    peek(s);

    if (!ret) {
        /* Our reference becomes the loop's. Setting a source floating
         * fails only once the loop has let go of it, which a source just
         * added cannot have. */
        (void)for_each_source(s, [](sd_event_source *source) {
            (void)sd_event_source_set_floating(source, true);
            sd_event_source_unref(source);
            return 0;
        });
        s->floating = true;
        return 0;
    }
    *ret = s;
    return 0;
}

BarrierEventSource *barrier_event_source_ref(BarrierEventSource *s) {
    if (s) s->n_ref++;
    return s;
}

BarrierEventSource *barrier_event_source_unref(BarrierEventSource *s) {
    if (!s) return nullptr;
    if (s->n_ref > 0) s->n_ref--;
    if (s->n_ref == 0) {
        /* Dropping the sd-event sources calls source_freed(), which must
         * not free s under our feet. */
        s->n_busy++;
        stop(s);
        s->n_busy--;
    }
    maybe_free(s);
    return nullptr;
}

BarrierEventSource *barrier_event_source_disable_unref(BarrierEventSource *s) {
    (void)barrier_event_source_set_enabled(s, SD_EVENT_OFF);
    return barrier_event_source_unref(s);
}

int barrier_event_source_set_priority(BarrierEventSource *s, int64_t priority) {
    if (!s) return -EINVAL;
    int r = for_each_source(s, [priority](sd_event_source *source) {
        return sd_event_source_set_priority(source, priority);
    });
    if (r < 0) {
        /* Put back those that took it. */
        const int64_t old = s->priority;
        (void)for_each_source(s, [old](sd_event_source *source) {
            (void)sd_event_source_set_priority(source, old);
            return 0;
        });
        return r;
    }
    s->priority = priority;
    return 0;
}

int barrier_event_source_get_priority(BarrierEventSource *s, int64_t *ret) {
    if (!s || !ret) return -EINVAL;
    *ret = s->priority;
    return 0;
}

int barrier_event_source_set_description(BarrierEventSource *s, const char *description) {
    if (!s) return -EINVAL;
    char *copy = nullptr;
    if (description) {
        copy = strdup(description);
        if (!copy) return -ENOMEM;
    }
    int r = for_each_source(s, [description](sd_event_source *source) {
        return sd_event_source_set_description(source, description);
    });
    if (r < 0) {
        const char *old = s->description;
        (void)for_each_source(s, [old](sd_event_source *source) {
            (void)sd_event_source_set_description(source, old);
            return 0;
        });
        free(copy);
        return r;
    }
    free(s->description);
    s->description = copy;
    return 0;
}

int barrier_event_source_get_description(BarrierEventSource *s, const char **ret) {
    if (!s || !ret) return -EINVAL;
    if (!s->description) return -ENXIO;
    *ret = s->description;
    return 0;
}

int barrier_event_source_set_enabled(BarrierEventSource *s, int enabled) {
    if (!s) return -EINVAL;
    if (enabled != SD_EVENT_OFF && enabled != SD_EVENT_ON && enabled != SD_EVENT_ONESHOT)
        return -EINVAL;
    if (enabled != SD_EVENT_OFF && (s->stopped || !s->event)) return -ESTALE;
    const int old = s->enabled;
    s->enabled = enabled;
    int r = apply_enabled(s);
    if (r < 0) {
        s->enabled = old;
        (void)apply_enabled(s);
        return r;
    }
    /* What happened while it was off, the fds tell; what this side did,
     * the state. */
    peek(s);
    return 0;
}

int barrier_event_source_get_enabled(BarrierEventSource *s, int *ret) {
    if (!s) return -EINVAL;
    if (ret) *ret = s->enabled;
    return s->enabled != SD_EVENT_OFF;
}

int barrier_event_source_set_floating(BarrierEventSource *s, int b) {
    if (!s) return -EINVAL;
    const bool floating = b != 0;
    if (s->floating == floating) return 0;
    if (floating) {
        if (s->stopped || !s->event) return -ESTALE;
        /* The loop takes the sd-event sources over, and a reference. */
        (void)for_each_source(s, [](sd_event_source *source) {
            (void)sd_event_source_set_floating(source, true);
            sd_event_source_unref(source);
            return 0;
        });
        s->floating = true;
        s->n_ref++;
        return 1;
    }
    (void)for_each_source(s, [](sd_event_source *source) {
        sd_event_source_ref(source);
        (void)sd_event_source_set_floating(source, false);
        return 0;
    });
    s->floating = false;
    /* The loop's reference goes; if it was the last, the source too. */
    (void)barrier_event_source_unref(s);
    return 1;
}

int barrier_event_source_get_floating(BarrierEventSource *s) {
    if (!s) return -EINVAL;
    return s->floating;
}

sd_event *barrier_event_source_get_event(BarrierEventSource *s) {
    return s ? s->event : nullptr;
}

}  // extern "C"
