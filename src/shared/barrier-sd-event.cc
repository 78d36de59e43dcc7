/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/barrier-sd-event.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <new>

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>

#include <ipcbarrier/fd-util.hh>

/* How it works: a BarrierEventSource is made of three sd-event sources: an
 * io source for a duplicate of the barrier's eventfd, one for a duplicate
 * of its pipe end (each owning its fd), and a defer source that delivers.
 * Before each poll (a prepare callback on the first io source) and when an
 * io source fires, the wait is called with a timeout of 0; a result other
 * than -ETIMEDOUT is recorded and the defer source enabled, so the loop
 * dispatches it in this iteration. The duplicates are ours, so the epoll
 * set never holds a number that the barrier has closed and an unrelated fd
 * may have been given since.
 *
 * Lifetime: every sd-event source calls on_destroy() when it is freed,
 * which may be later than we drop it (sd-event keeps a source that is
 * dispatching until its callback has returned). The struct is freed once
 * all three are gone and nobody holds it: not the caller (user_ref), and
 * not a function of ours that is still running (it counts itself in
 * n_alive). For a floating source the loop holds the sd-event sources, and
 * freeing the loop frees them, and thereby the struct. */

struct BarrierEventSource {
    sd_event_source *io[2]; /* eventfd, pipe end; nullptr once dropped */
    sd_event_source *defer;
    Barrier *barrier;
    BarrierWaitKind kind;
    barrier_event_handler_t handler;
    void *userdata;
    unsigned n_alive; /* sd-event sources not freed yet, plus running calls */
    int result;       /* what the wait returned; valid while pending */
    bool pending;
    bool done; /* stopped: never calls the handler again */
    bool floating;
    bool user_ref;
};

namespace {

void maybe_free(BarrierEventSource *s) {
    if (s->n_alive == 0 && !s->user_ref) delete s;
}

void on_destroy(void *userdata) {
    auto *s = static_cast<BarrierEventSource *>(userdata);
    s->n_alive--;
    maybe_free(s);
}

/* Drops one of our sd-event sources: it is disabled and, once freed,
 * closes the fd it owns. */
void drop(BarrierEventSource *s, sd_event_source **p) {
    sd_event_source *source = *p;
    if (!source) return;
    *p = nullptr;
    if (s->floating) {
        /* Take the loop's reference over, then drop it. */
        sd_event_source_ref(source);
        (void)sd_event_source_set_floating(source, false);
    }
    sd_event_source_disable_unref(source);
}

/* Closes the duplicates: the peer must see the hang-up of a destroyed
 * barrier, and a hung-up pipe would make the loop spin. */
void unwatch(BarrierEventSource *s) {
    drop(s, &s->io[0]);
    drop(s, &s->io[1]);
}

/* Stops for good. s may be freed on return (a floating source, or one the
 * caller has let go of): the caller must not touch it afterwards. */
void stop(BarrierEventSource *s) {
    s->n_alive++; /* keeps s while its sources go */
    s->done = true;
    s->pending = false;
    unwatch(s);
    drop(s, &s->defer);
    s->n_alive--;
    maybe_free(s);
}

/* Looks at the barrier without blocking and schedules the delivery of a
 * result that ends the wait. */
void look(BarrierEventSource *s) {
    if (s->done || s->pending) return;

    struct pollfd unused[2];
    int r;
    if (barrier_get_pollfds(s->barrier, unused) < 0) {
        /* destroyed by its owner */
        unwatch(s);
        r = -EBADF;
    } else {
        r = barrier_wait_kind_timeout(s->barrier, s->kind, 0);
        if (r == -ETIMEDOUT) return;
        if (r <= 0) unwatch(s);
    }
    s->result = r;
    s->pending = true;
    /* A defer source that is enabled is pending at once: the loop runs it
     * in this iteration, without polling. Enabling one cannot fail but in
     * a loop used across fork(), where nothing works any more. */
    (void)sd_event_source_set_enabled(s->defer, SD_EVENT_ONESHOT);
}

int on_prepare(sd_event_source *, void *userdata) {
    look(static_cast<BarrierEventSource *>(userdata));
    return 0;
}

int on_io(sd_event_source *, int, uint32_t, void *userdata) {
    look(static_cast<BarrierEventSource *>(userdata));
    return 0;
}

int on_defer(sd_event_source *, void *userdata) {
    auto *s = static_cast<BarrierEventSource *>(userdata);
    if (!s->pending) return 0;
    s->pending = false;
    int r = s->result;
    if (r <= 0) s->done = true;
    /* The handler may drop s: this defer source, which is dispatching, and
     * with it s stay until we return. */
    int k = s->handler(s, s->barrier, r, s->userdata);
    if (r <= 0 || k < 0) stop(s);
    /* Never < 0: sd-event would log it. */
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

/* Adds an io source owning a duplicate of fd. Returns 0 or -errno. */
int add_io(sd_event *e, BarrierEventSource *s, int i, int fd, uint32_t events) {
    ipcbarrier::UniqueFd dup(fcntl(fd, F_DUPFD_CLOEXEC, 3));
    if (!dup) return -errno;
    int r = sd_event_add_io(e, &s->io[i], dup.get(), events, on_io, s);
    if (r < 0) return r;
    (void)dup.release();
    s->n_alive++;
    /* Neither can fail on a source just created. */
    (void)sd_event_source_set_destroy_callback(s->io[i], on_destroy);
    (void)sd_event_source_set_io_fd_own(s->io[i], true);
    return 0;
}

int add_sources(sd_event *e, BarrierEventSource *s) {
    struct pollfd pfd[2];
    int r = barrier_get_pollfds(s->barrier, pfd);
    if (r < 0) return r;

    r = add_io(e, s, 0, pfd[0].fd, EPOLLIN);
    if (r < 0) return r;
    /* The pipe end is -1 after a fatal I/O error. Hang-up and error are
     * reported without being asked for. */
    if (pfd[1].fd >= 0) {
        r = add_io(e, s, 1, pfd[1].fd, 0);
        if (r < 0) return r;
    }
    r = sd_event_source_set_prepare(s->io[0], on_prepare);
    if (r < 0) return r;

    r = sd_event_add_defer(e, &s->defer, on_defer, s);
    if (r < 0) return r;
    s->n_alive++;
    (void)sd_event_source_set_destroy_callback(s->defer, on_destroy);
    return sd_event_source_set_enabled(s->defer, SD_EVENT_OFF);
}

}  // namespace

extern "C" {

int barrier_event_add(sd_event *e, BarrierEventSource **ret, Barrier *b, BarrierWaitKind kind,
                      barrier_event_handler_t handler, void *userdata) {
    if (!e || !b || !handler || !kind_is_known(kind)) return -EINVAL;

    auto *s = new (std::nothrow) BarrierEventSource{};
    if (!s) return -ENOMEM;
    s->barrier = b;
    s->kind = kind;
    s->handler = handler;
    s->userdata = userdata;
    s->user_ref = true; /* ours until it is complete */

    int r = add_sources(e, s);
    if (r < 0) {
        s->user_ref = false;
        stop(s);
        return r;
    }

    if (!ret) {
        /* Hand our references to the loop. Setting a source floating
         * fails only once the loop has let go of it, which a source just
         * added cannot have. */
        s->floating = true;
        s->user_ref = false;
        for (sd_event_source *source : {s->io[0], s->io[1], s->defer}) {
            if (!source) continue;
            (void)sd_event_source_set_floating(source, true);
            sd_event_source_unref(source);
        }
        return 0;
    }
    *ret = s;
    return 0;
}

BarrierEventSource *barrier_event_source_unref(BarrierEventSource *s) {
    if (!s) return nullptr;
    s->user_ref = false;
    stop(s);
    return nullptr;
}

}  // extern "C"
