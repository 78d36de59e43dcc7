/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/barrier.h>
#include <ipcbarrier/barrier-event.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include <fcntl.h>
#include <poll.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ipcbarrier/eventfd-util.hh>
#include <ipcbarrier/pipe-util.hh>
#include <ipcbarrier/time-util.hh>

#include "barrier-internal.hh"

/* How it works: each side writes its sync points into the eventfd the other
 * side reads ("me" and "them"). An eventfd adds up what is written, so a
 * reader learns how many points arrived since it last looked. b->barriers
 * holds "placed by me minus consumed of theirs". Once a side knows of an
 * abortion, b->barriers leaves the counting range for one of three bias
 * values.
 *
 * An abortion is written as a value whose high bits swamp, and thereby
 * cancel, whatever sync points are still queued in front of it. Its middle
 * bits carry the reason. Values add up in the eventfd, so the fields are
 * laid out to survive that:
 *
 *   bits  0..43  sync points (never more than 2 * BARRIER_COUNT_MAX queued)
 *   bits 44..57  the sum of the reasons (each 1 .. 4095)
 *   bits 58..59  how many abortions carried a reason
 *   bits 60..63  how many abortions there are (any > 0 is "aborted")
 *
 * So two abortions written into one eventfd (two processes acting for one
 * side) still fit, and a single reason is read back exactly.
 *
 * Exit, execve() and destroy are seen through the pipe: each side keeps one
 * end, and the other end reports hang-up or error once every copy of its
 * partner is closed. A pending eventfd value is always consumed before a
 * hang-up is honoured, so points placed just before exiting still count. */

namespace {

using ipcbarrier::BorrowedFd;
using ipcbarrier::Deadline;
using ipcbarrier::detail::Wait;

constexpr int REASON_SHIFT = 44;
constexpr uint64_t REASON_MASK = (UINT64_C(1) << 14) - 1;
constexpr uint64_t ONE_REASON = UINT64_C(1) << 58;
constexpr uint64_t ONE_ABORTION = UINT64_C(1) << 60;

/* Abortion states, far below any count; keep WE < THEY < I, as
 * wait_abortion() compares against THEY. */
constexpr int64_t BIAS = INT64_MIN;
constexpr int64_t WE_ABORTED = BIAS + 1;
constexpr int64_t THEY_ABORTED = BIAS + 2;
constexpr int64_t I_ABORTED = BIAS + 3;
static_assert(-BARRIER_COUNT_MAX > I_ABORTED);
/* What an honest peer can have queued for us (see the layout above). */
static_assert(2 * static_cast<uint64_t>(BARRIER_COUNT_MAX) < (UINT64_C(1) << REASON_SHIFT));

/* The predicates, for use inside: the exported ones are called through the
 * PLT from here, and a wait asks them several times. The states are
 * contiguous, so each is one or two comparisons. */
bool i_aborted(const Barrier *b) {
    return b->barriers == I_ABORTED || b->barriers == WE_ABORTED;
}
bool they_aborted(const Barrier *b) {
    return b->barriers == THEY_ABORTED || b->barriers == WE_ABORTED;
}
bool is_aborted(const Barrier *b) {
    return b->barriers <= I_ABORTED;
}

/* Empty: BARRIER_NULL, zero-filled, or destroyed. A created barrier's two
 * eventfds always differ. */
bool is_empty(const Barrier *b) {
    return b->me == b->them;
}

bool role_is_set(const Barrier *b) {
    if (is_empty(b) || b->me < 0 || b->them < 0) return false;
    /* Setting the role closes one pipe end; a fatal error closes both. */
    return b->pipe[0] < 0 || b->pipe[1] < 0;
}

int pipe_end(const Barrier *b) {
    return b->pipe[0] >= 0 ? b->pipe[0] : b->pipe[1];
}

/* The watch attached in this process, or NULL. A forked child's copy of
 * the parent's watch points into its copy of the parent's event loop,
 * which it must not touch: for the child there is no watch. */
BarrierWatch *own_watch(const Barrier *b) {
    BarrierWatch *w = b->watch;
    return w && w->pid == getpid() ? w : nullptr;
}

/* Tells the attached source what happened. CLOSING detaches it first. */
void notify(Barrier *b, BarrierWatchEvent event) {
    if (!b->watch) return;
    BarrierWatch *w = own_watch(b);
    if (event == BARRIER_WATCH_CLOSING) b->watch = nullptr;
    if (w) w->func(b, event, w->userdata);
}

/* Any I/O failure is unrecoverable: nobody can tell how many sync points got
 * through. Closing our pipe end makes the peer see an abortion too. */
void fail(Barrier *b) {
    b->barriers = WE_ABORTED;
    notify(b, BARRIER_WATCH_FAILED);
    b->pipe[0] = ipcbarrier::safe_close(b->pipe[0]);
    b->pipe[1] = ipcbarrier::safe_close(b->pipe[1]);
}

/* The reason an abortion value carries. */
int decode_reason(uint64_t value) {
    const uint64_t n_reasons = (value >> 58) & 3;
    const uint64_t sum = (value >> REASON_SHIFT) & REASON_MASK;
    if (n_reasons == 0 && sum == 0) return 0;
    if (n_reasons == 1 && sum >= 1 && sum <= BARRIER_ABORT_ERRNO_MAX) return static_cast<int>(sum);
    /* Several reasons add up to none of them. */
    return EPROTO;
}

void set_they_aborted(Barrier *b, int reason) {
    b->barriers = i_aborted(b) ? WE_ABORTED : THEY_ABORTED;
    b->abort_errno = reason;
}

/* Accounts for value read from the peer's eventfd. Returns 0, or -EPROTO
 * for a count no barrier writes (then the barrier is "we aborted"). */
int consume(Barrier *b, uint64_t value) {
    if (value >= ONE_ABORTION) {
        set_they_aborted(b, decode_reason(value));
    } else if (is_aborted(b)) {
        /* only wait_abortion() reads after a local abort */
    } else if (value > 2 * static_cast<uint64_t>(BARRIER_COUNT_MAX) ||
               b->barriers - static_cast<int64_t>(value) < -BARRIER_COUNT_MAX) {
        /* An honest peer is never that far ahead (place() stops at
         * BARRIER_COUNT_MAX). */
        fail(b);
        return -EPROTO;
    } else {
        b->barriers -= static_cast<int64_t>(value);
    }
    return 0;
}

/* Reads the peer's sync points until b->barriers <= limit or the peer
 * aborts. Returns 0 when done (the caller looks at the state), -ETIMEDOUT
 * when the deadline passed first, or the -errno of an I/O error, which
 * has made the barrier "we aborted". */
int read_until(Barrier *b, int64_t limit, Deadline deadline) {
    while (b->barriers > limit) {
        /* Poll first, then read: a wait that must wait costs two syscalls,
         * and so does one whose point has arrived already. */
        struct pollfd pfd[2] = {
            {.fd = b->them, .events = POLLIN, .revents = 0},
            /* Hang-up and error are always reported; asking for nothing
             * else keeps a writable pipe end from waking us. */
            {.fd = pipe_end(b), .events = 0, .revents = 0},
        };
        /* The remaining time is recomputed on every pass, so signals
         * (with or without SA_RESTART) neither shorten nor lengthen it.
         * Without a deadline, poll() is the cheaper call. */
        struct timespec ts;
        int n = deadline.infinite() ? poll(pfd, 2, -1)
                                    : ppoll(pfd, 2, deadline.remaining_timespec(&ts), nullptr);
        if (n < 0) {
            if (errno == EINTR) continue;
            int r = -errno;
            fail(b);
            return r;
        }
        if (n == 0) return -ETIMEDOUT;
        if ((pfd[0].revents | pfd[1].revents) & POLLNVAL) {
            /* one of our fds was closed behind our back */
            fail(b);
            return -EBADF;
        }
        if (pfd[0].revents & POLLERR) {
            fail(b);
            return -EIO;
        }
        const bool hangup = pfd[1].revents & (POLLHUP | POLLERR);
        if (!(pfd[0].revents & POLLIN) && !hangup) continue;

        /* The peer may be gone, but what it placed before leaving must
         * still be seen: the eventfd is read before a hang-up counts, also
         * when the two were not reported by the same ppoll(). */
        uint64_t value;
        int r = ipcbarrier::eventfd_drain(BorrowedFd(b->them), &value);
        if (r == 0) {
            r = consume(b, value);
            if (r < 0) return r;
        } else if (r != -EAGAIN) {
            fail(b);
            return r;
        } else if (hangup) {
            set_they_aborted(b, 0);
        }
    }
    return 0;
}

/* Writes value (a sync point or an abortion) to the peer. Returns 0 or
 * -errno; the caller decides what a failure means. */
int write_value(Barrier *b, uint64_t value) {
    return ipcbarrier::eventfd_add(BorrowedFd(b->me), value);
}

bool abort_with(Barrier *b, int err) {
    if (!role_is_set(b)) return false;
    if (!i_aborted(b)) {
        unsigned reason = err < 0 ? 0u - static_cast<unsigned>(err) : static_cast<unsigned>(err);
        if (reason > BARRIER_ABORT_ERRNO_MAX) reason = EINVAL;
        uint64_t value = ONE_ABORTION;
        if (reason) value += ONE_REASON + (static_cast<uint64_t>(reason) << REASON_SHIFT);
        int r = write_value(b, value);
        /* -EAGAIN: the eventfd is too full to take another abortion, which
         * it only gets when fifteen are in it already. Either way the peer
         * sees one. */
        if (r < 0 && r != -EAGAIN) {
            fail(b);
            return false;
        }
        b->barriers = they_aborted(b) ? WE_ABORTED : I_ABORTED;
        notify(b, BARRIER_WATCH_CHANGED);
    }
    return !they_aborted(b);
}

}  // namespace

namespace ipcbarrier::detail {

int barrier_peek(const Barrier *b, Wait what) noexcept {
    if (!role_is_set(b)) return -EBADF;
    if (what == Wait::abortion) return they_aborted(b) ? !i_aborted(b) : -EAGAIN;
    if (is_aborted(b)) return 0;
    /* A sync that is not ahead has nothing to wait for. */
    if ((what == Wait::sync || what == Wait::sync_next) && b->barriers <= 0) return 1;
    return -EAGAIN;
}

int barrier_wait(Barrier *b, Wait what, uint64_t timeout_usec) noexcept {
    int r = barrier_peek(b, what);
    if (r != -EAGAIN) return r;

    int64_t limit = 0;
    switch (what) {
        case Wait::next:
        case Wait::sync_next: /* only reached when ahead */
            limit = b->barriers - 1;
            break;
        case Wait::sync:
            limit = 0;
            break;
        case Wait::abortion:
            limit = THEY_ABORTED;
            break;
    }

    r = read_until(b, limit, Deadline::after(timeout_usec));
    if (r < 0) return r;
    if (what == Wait::abortion) return !i_aborted(b);
    return !is_aborted(b);
}

}  // namespace ipcbarrier::detail

using ipcbarrier::detail::barrier_wait;

extern "C" {

int barrier_create(Barrier *b) {
    ipcbarrier::UniqueFd me, them;
    ipcbarrier::Pipe pipe;

    int r = ipcbarrier::eventfd_new(ipcbarrier::EventfdMode::nonblocking, &me);
    if (r < 0) return r;
    r = ipcbarrier::eventfd_new(ipcbarrier::EventfdMode::nonblocking, &them);
    if (r < 0) return r;
    r = ipcbarrier::pipe_new(ipcbarrier::PipeMode::nonblocking, &pipe);
    if (r < 0) return r;

    *b = Barrier BARRIER_NULL;
    b->me = me.release();
    b->them = them.release();
    b->pipe[0] = pipe.read_end.release();
    b->pipe[1] = pipe.write_end.release();
    return 0;
}

Barrier *barrier_destroy(Barrier *b) {
    if (!b) return nullptr;
    /* The source lets go of the fds while they are still open. */
    notify(b, BARRIER_WATCH_CLOSING);
    if (!is_empty(b)) {
        (void)ipcbarrier::safe_close(b->me);
        (void)ipcbarrier::safe_close(b->them);
        (void)ipcbarrier::safe_close(b->pipe[0]);
        (void)ipcbarrier::safe_close(b->pipe[1]);
    }
    *b = Barrier BARRIER_NULL;
    return nullptr;
}

void barrier_move(Barrier *dst, Barrier *src) {
    if (dst == src) return;
    (void)barrier_destroy(dst);
    *dst = *src;
    *src = Barrier BARRIER_NULL;
    notify(dst, BARRIER_WATCH_MOVED);
}

int barrier_set_role(Barrier *b, unsigned role) {
    if (role != BARRIER_PARENT && role != BARRIER_CHILD) return -EINVAL;
    if (is_empty(b) || b->me < 0 || b->them < 0) return -EBADF;
    if (b->pipe[0] < 0 || b->pipe[1] < 0) return -EBUSY;

    if (role == BARRIER_PARENT) {
        b->pipe[1] = ipcbarrier::safe_close(b->pipe[1]);
    } else {
        b->pipe[0] = ipcbarrier::safe_close(b->pipe[0]);
        int fd = b->me;
        b->me = b->them;
        b->them = fd;
    }
    return 0;
}

int barrier_move_fds(Barrier *b, int min_fd) {
    if (is_empty(b) || b->me < 0 || b->them < 0) return -EBADF;
    if (own_watch(b)) return -EBUSY;
    if (min_fd < 0) return -EINVAL;
    for (int *fd : {&b->me, &b->them, &b->pipe[0], &b->pipe[1]}) {
        if (*fd < 0 || *fd >= min_fd) continue;
        int moved = fcntl(*fd, F_DUPFD_CLOEXEC, min_fd);
        if (moved < 0) return -errno;
        (void)ipcbarrier::safe_close(*fd);
        *fd = moved;
    }
    return 0;
}

int barrier_get_fds(const Barrier *b, int ret[3]) {
    if (!role_is_set(b)) return -EBADF;
    ret[0] = b->me;
    ret[1] = b->them;
    ret[2] = pipe_end(b);
    return ret[2] >= 0 ? 3 : 2;
}

bool barrier_place(Barrier *b) {
    if (!role_is_set(b) || is_aborted(b)) return false;
    if (b->barriers >= BARRIER_COUNT_MAX) return false;
    /* -EAGAIN would mean the counter is near 2^64: the peer is not a
     * barrier. Every error is fatal. */
    if (write_value(b, 1) < 0) {
        fail(b);
        return false;
    }
    b->barriers += 1;
    return true;
}

bool barrier_abort(Barrier *b) {
    return abort_with(b, 0);
}

bool barrier_abort_errno(Barrier *b, int err) {
    return abort_with(b, err);
}

int barrier_get_abort_errno(const Barrier *b) {
    return they_aborted(b) ? b->abort_errno : 0;
}

bool barrier_wait_next(Barrier *b) {
    return barrier_wait(b, Wait::next, UINT64_MAX) > 0;
}

bool barrier_wait_abortion(Barrier *b) {
    return barrier_wait(b, Wait::abortion, UINT64_MAX) > 0;
}

bool barrier_sync_next(Barrier *b) {
    return barrier_wait(b, Wait::sync_next, UINT64_MAX) > 0;
}

bool barrier_sync(Barrier *b) {
    return barrier_wait(b, Wait::sync, UINT64_MAX) > 0;
}

int barrier_wait_next_timeout(Barrier *b, uint64_t timeout_usec) {
    return barrier_wait(b, Wait::next, timeout_usec);
}

int barrier_wait_abortion_timeout(Barrier *b, uint64_t timeout_usec) {
    return barrier_wait(b, Wait::abortion, timeout_usec);
}

int barrier_sync_next_timeout(Barrier *b, uint64_t timeout_usec) {
    return barrier_wait(b, Wait::sync_next, timeout_usec);
}

int barrier_sync_timeout(Barrier *b, uint64_t timeout_usec) {
    return barrier_wait(b, Wait::sync, timeout_usec);
}

int barrier_get_pollfds(const Barrier *b, struct pollfd ret[2]) {
    if (!role_is_set(b)) return -EBADF;
    ret[0] = pollfd{.fd = b->them, .events = POLLIN, .revents = 0};
    /* -1 after an I/O error closed the pipe end: poll() skips it. */
    ret[1] = pollfd{.fd = pipe_end(b), .events = POLLHUP, .revents = 0};
    return 0;
}

bool barrier_place_and_sync(Barrier *b) {
    (void)barrier_place(b);
    return barrier_sync(b);
}

bool barrier_i_aborted(const Barrier *b) {
    return i_aborted(b);
}

bool barrier_they_aborted(const Barrier *b) {
    return they_aborted(b);
}

bool barrier_we_aborted(const Barrier *b) {
    return b->barriers == WE_ABORTED;
}

bool barrier_is_aborted(const Barrier *b) {
    return is_aborted(b);
}

int barrier_watch(Barrier *b, BarrierWatch *w, barrier_watch_func_t func, void *userdata) {
    if (!b || !w || !func) return -EINVAL;
    if (!role_is_set(b)) return -EBADF;
    if (own_watch(b)) return -EBUSY;
    *w = BarrierWatch{func, userdata, getpid()};
    b->watch = w;
    return 0;
}

int barrier_unwatch(Barrier *b, BarrierWatch *w) {
    if (!b || !w || b->watch != w) return -ENOENT;
    b->watch = nullptr;
    return 0;
}

}  // extern "C"

/* ---- across execve() ----
 *
 * The record, version 2, one line of ASCII:
 *
 *   ipcbarrier2 pid=P role=R me=M:I them=T:J pipe=F:K n=N state=S err=E
 *
 * P: the pid it is meant for (decimal, > 0); R: parent or child; M, T, F:
 * the eventfd written, the eventfd read, the pipe end kept (decimal fds);
 * I, J: the eventfds' ids as the kernel shows them in /proc/self/fdinfo (0
 * where it does not); K: the pipe's inode number; N: the counter (signed
 * decimal, within +-BARRIER_COUNT_MAX, 0 unless S is none); S: none, i,
 * they or we (who has aborted); E: the reason the other side aborted with
 * (0 unless S is they or we). Numbers have no sign (but N's '-'), no
 * leading zeros, no spaces; fields come in this order, separated by one
 * space, with nothing after the last. */

namespace {

constexpr char RECORD_MAGIC[] = "ipcbarrier2";

/* An append-only writer into a fixed buffer, async-signal-safe. */
struct RecordWriter {
    char *buf;
    size_t size;
    size_t len = 0;
    bool overflow = false;

    void put(const char *s) {
        for (; *s; s++) {
            if (len + 1 >= size) {
                overflow = true;
                return;
            }
            buf[len++] = *s;
        }
    }
    void put_u64(uint64_t v) {
        char digits[21];
        size_t n = 0;
        do {
            digits[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v);
        char out[22];
        for (size_t i = 0; i < n; i++) out[i] = digits[n - 1 - i];
        out[n] = '\0';
        put(out);
    }
    void put_i64(int64_t v) {
        if (v < 0) {
            put("-");
            put_u64(static_cast<uint64_t>(-(v + 1)) + 1); /* no overflow at INT64_MIN */
        } else {
            put_u64(static_cast<uint64_t>(v));
        }
    }
    void put_fd_id(const char *key, int fd, uint64_t id) {
        put(key);
        put_u64(static_cast<uint64_t>(fd));
        put(":");
        put_u64(id);
    }
};

/* "/proc/self/<dir>/<fd>" into buf. */
void proc_fd_path(char (&buf)[40], const char *dir, int fd) {
    RecordWriter w{buf, sizeof buf};
    w.put("/proc/self/");
    w.put(dir);
    w.put("/");
    w.put_u64(static_cast<uint64_t>(fd));
    buf[w.len] = '\0';
}

/* What /proc tells of an eventfd, all of it async-signal-safe to learn. */
struct EventfdInfo {
    bool proc = false;    /* /proc/self is there to ask */
    bool eventfd = false; /* fd is an eventfd (without /proc: an anonymous inode) */
    uint64_t id = 0;      /* its "eventfd-id", 0 where the kernel does not show one */
    bool semaphore = false;
};

/* The unsigned number after "key" at the start of a line of text, or 0. */
uint64_t fdinfo_field(const char *text, const char *key) {
    size_t n = strlen(key);
    for (const char *line = text; *line;) {
        if (strncmp(line, key, n) == 0) {
            const char *p = line + n;
            while (*p == ' ' || *p == '\t') p++;
            uint64_t v = 0;
            for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + static_cast<uint64_t>(*p - '0');
            return v;
        }
        const char *next = strchr(line, '\n');
        if (!next) break;
        line = next + 1;
    }
    return 0;
}

EventfdInfo eventfd_info(int fd) {
    EventfdInfo info;
    char path[40], target[32];
    proc_fd_path(path, "fd", fd);
    ssize_t n = readlink(path, target, sizeof target);
    if (n < 0) {
        /* Without /proc only the inode type is known: an anonymous inode. */
        struct stat st;
        info.eventfd = errno == ENOENT && access("/proc/self/fd", F_OK) < 0 &&
                       fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == 0;
        return info;
    }
    info.proc = true;
    info.eventfd = n == 20 && memcmp(target, "anon_inode:[eventfd]", 20) == 0;
    if (!info.eventfd) return info;

    proc_fd_path(path, "fdinfo", fd);
    int fdinfo = open(path, O_RDONLY | O_CLOEXEC);
    if (fdinfo < 0) return info;
    char text[512];
    ssize_t len = read(fdinfo, text, sizeof text - 1);
    (void)ipcbarrier::safe_close(fdinfo);
    if (len <= 0) return info;
    text[len] = '\0';
    info.id = fdinfo_field(text, "eventfd-id:");
    info.semaphore = fdinfo_field(text, "eventfd-semaphore:") != 0;
    return info;
}

const char *state_name(const Barrier *b) {
    if ((b->barriers == WE_ABORTED)) return "we";
    if (i_aborted(b)) return "i";
    if (they_aborted(b)) return "they";
    return "none";
}

/* Formats the record into buf, complete or not at all; changes nothing
 * else. Returns its length or -errno. */
int format_record(const Barrier *b, char *buf, size_t size) {
    if (!role_is_set(b) || pipe_end(b) < 0) return -EBADF;
    struct stat st;
    if (fstat(pipe_end(b), &st) < 0) return -errno;

    char record[BARRIER_RECORD_MAX];
    RecordWriter w{record, sizeof record};
    w.put(RECORD_MAGIC);
    w.put(" pid=");
    w.put_u64(static_cast<uint64_t>(getpid()));
    w.put(b->pipe[0] >= 0 ? " role=parent" : " role=child");
    w.put_fd_id(" me=", b->me, eventfd_info(b->me).id);
    w.put_fd_id(" them=", b->them, eventfd_info(b->them).id);
    w.put_fd_id(" pipe=", pipe_end(b), static_cast<uint64_t>(st.st_ino));
    w.put(" n=");
    w.put_i64(is_aborted(b) ? 0 : b->barriers);
    w.put(" state=");
    w.put(state_name(b));
    w.put(" err=");
    w.put_u64(static_cast<uint64_t>(barrier_get_abort_errno(b)));
    /* Cannot happen: BARRIER_RECORD_MAX holds the longest record. */
    if (w.overflow) return -ENOBUFS;
    if (w.len >= size) return -ENOBUFS;
    memcpy(buf, record, w.len);
    buf[w.len] = '\0';
    return static_cast<int>(w.len);
}

/* Sets or clears close-on-exec on the three fds a side holds; on failure
 * puts back what it changed. */
int set_cloexec(const Barrier *b, bool on) {
    const int fds[3] = {b->me, b->them, pipe_end(b)};
    for (int i = 0; i < 3; i++) {
        int r = ipcbarrier::fd_set_cloexec(BorrowedFd(fds[i]), on);
        if (r < 0) {
            while (i-- > 0) (void)ipcbarrier::fd_set_cloexec(BorrowedFd(fds[i]), !on);
            return r;
        }
    }
    return 0;
}

/* A strict reader: every accessor fails on anything but the exact form. */
struct RecordReader {
    const char *p;

    bool literal(const char *s) {
        size_t n = strlen(s);
        if (strncmp(p, s, n) != 0) return false;
        p += n;
        return true;
    }
    bool u64(uint64_t max, uint64_t *ret) {
        if (*p < '0' || *p > '9') return false;
        if (*p == '0' && p[1] >= '0' && p[1] <= '9') return false; /* leading zero */
        uint64_t v = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            unsigned d = static_cast<unsigned>(*p - '0');
            if (v > (max - d) / 10) return false;
            v = v * 10 + d;
        }
        *ret = v;
        return true;
    }
    bool fd_id(const char *key, int *ret_fd, uint64_t *ret_id) {
        uint64_t v;
        if (!literal(key) || !u64(INT_MAX, &v) || !literal(":") || !u64(UINT64_MAX, ret_id))
            return false;
        *ret_fd = static_cast<int>(v);
        return true;
    }
    bool i64(int64_t *ret) {
        bool negative = literal("-");
        uint64_t v;
        if (!u64(negative ? static_cast<uint64_t>(INT64_MAX) + 1 : INT64_MAX, &v)) return false;
        if (negative && v == 0) return false; /* "-0" */
        *ret = negative ? static_cast<int64_t>(~v + 1) : static_cast<int64_t>(v);
        return true;
    }
};

/* Whether fd is open and was inherited: -EBADF if it is not open, -EBADFD
 * if it is close-on-exec (nobody handed it over), one of stdio, or an
 * O_PATH fd (which names a file without opening it for I/O). */
int check_inherited(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -EBADF;
    if (fd <= STDERR_FILENO || (flags & FD_CLOEXEC)) return -EBADFD;
    int status = fcntl(fd, F_GETFL);
    if (status < 0) return -EBADF;
    if (status & O_PATH) return -EBADFD;
    return 0;
}

/* Whether fd is the non-blocking eventfd with the recorded id (0 where the
 * kernel shows none: the record was written on the same kernel) and no
 * semaphore; stores what /proc tells of it in *ret_info. */
int check_eventfd(int fd, uint64_t id, EventfdInfo *ret_info) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -EBADF;
    /* The waits rely on reads that do not block, and on reads that return
     * the whole count: a semaphore would turn an abortion into a point. */
    if (!(flags & O_NONBLOCK)) return -EBADFD;
    *ret_info = eventfd_info(fd);
    if (!ret_info->eventfd || ret_info->semaphore) return -EBADFD;
    if (id != ret_info->id) return -EBADFD;
    return 0;
}

/* Whether a and b are one open file under two numbers. */
bool same_file(int a, int b, const EventfdInfo &ia, const EventfdInfo &ib) {
    if (ia.id != 0 && ib.id != 0) return ia.id == ib.id;
    pid_t self = getpid();
    long r = syscall(SYS_kcmp, self, self, 0 /* KCMP_FILE */, a, b);
    /* Without kcmp (an old kernel, or a seccomp filter) two numbers are
     * taken for two files. */
    return r == 0;
}

/* Whether fd is the anonymous pipe with inode ino, open in access_mode. */
int check_pipe(int fd, uint64_t ino, int access_mode) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -EBADF;
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (!S_ISFIFO(st.st_mode) || static_cast<uint64_t>(st.st_ino) != ino ||
        (flags & O_ACCMODE) != access_mode)
        return -EBADFD;
    /* A named FIFO is a FIFO too; an anonymous pipe has no path. */
    char path[40], target[48];
    proc_fd_path(path, "fd", fd);
    ssize_t n = readlink(path, target, sizeof target);
    if (n >= 0 && (n < 6 || memcmp(target, "pipe:[", 6) != 0)) return -EBADFD;
    return 0;
}

}  // namespace

extern "C" {

int barrier_serialize(Barrier *b, char *buf, size_t size) {
    char record[BARRIER_RECORD_MAX];
    int len = format_record(b, record, sizeof record);
    if (len < 0) return len;
    if (static_cast<size_t>(len) >= size) return -ENOBUFS;
    int r = set_cloexec(b, false);
    if (r < 0) return r;
    /* Only now, so that a failure leaves buf as it was. */
    memcpy(buf, record, static_cast<size_t>(len) + 1);
    return len;
}

int barrier_serialize_env(Barrier *b, const char *name) {
    if (!name) name = BARRIER_ENV;
    if (!*name || strchr(name, '=')) return -EINVAL;
    char record[BARRIER_RECORD_MAX];
    int r = format_record(b, record, sizeof record);
    if (r < 0) return r;
    /* close-on-exec first: it can be put back, an overwritten variable
     * cannot */
    r = set_cloexec(b, false);
    if (r < 0) return r;
    if (setenv(name, record, 1) < 0) {
        r = -errno;
        (void)set_cloexec(b, true);
        return r;
    }
    return 0;
}

int barrier_deserialize(Barrier *ret, const char *record, pid_t owner) {
    /* NULL as from getenv() of an unset variable */
    if (!record) return -ENOENT;
    if (owner < 0) return -EINVAL;
    if (strnlen(record, BARRIER_RECORD_MAX) >= BARRIER_RECORD_MAX) return -E2BIG;

    RecordReader in{record};
    uint64_t pid, me_id, them_id, pipe_ino, err;
    bool child;
    Barrier b BARRIER_NULL;
    int pipe_fd;
    int64_t n;

    if (!in.literal(RECORD_MAGIC) || !in.literal(" pid=") || !in.u64(INT_MAX, &pid) || pid == 0)
        return -EINVAL;
    if (in.literal(" role=parent"))
        child = false;
    else if (in.literal(" role=child"))
        child = true;
    else
        return -EINVAL;
    if (!in.fd_id(" me=", &b.me, &me_id) || !in.fd_id(" them=", &b.them, &them_id) ||
        !in.fd_id(" pipe=", &pipe_fd, &pipe_ino) || !in.literal(" n=") || !in.i64(&n) ||
        !in.literal(" state="))
        return -EINVAL;
    bool aborted = true, they = false;
    if (in.literal("none")) {
        aborted = false;
        b.barriers = n;
    } else if (in.literal("i")) {
        b.barriers = I_ABORTED;
    } else if (in.literal("they")) {
        b.barriers = THEY_ABORTED;
        they = true;
    } else if (in.literal("we")) {
        b.barriers = WE_ABORTED;
        they = true;
    } else {
        return -EINVAL;
    }
    if (!in.literal(" err=") || !in.u64(BARRIER_ABORT_ERRNO_MAX, &err) || *in.p != '\0')
        return -EINVAL;
    /* An aborted side has no count, and a count stays within what place()
     * allows; only a side that saw them abort knows a reason. */
    if (aborted ? n != 0 : (n < -BARRIER_COUNT_MAX || n > BARRIER_COUNT_MAX)) return -EINVAL;
    if (err != 0 && !they) return -EINVAL;
    b.abort_errno = static_cast<int>(err);
    if (b.me == b.them || b.me == pipe_fd || b.them == pipe_fd) return -EINVAL;

    if (static_cast<pid_t>(pid) != (owner != 0 ? owner : getpid())) return -ESRCH;

    const int fds[3] = {b.me, b.them, pipe_fd};
    for (int fd : fds) {
        int r = check_inherited(fd);
        if (r < 0) return r;
    }
    EventfdInfo me_info, them_info;
    int r = check_eventfd(b.me, me_id, &me_info);
    if (r == 0) r = check_eventfd(b.them, them_id, &them_info);
    if (r == 0) r = check_pipe(pipe_fd, pipe_ino, child ? O_WRONLY : O_RDONLY);
    if (r < 0) return r;
    if (same_file(b.me, b.them, me_info, them_info)) return -EBADFD;

    b.pipe[child ? 1 : 0] = pipe_fd;
    r = set_cloexec(&b, true);
    if (r < 0) return r;
    *ret = b;
    return 0;
}

int barrier_deserialize_env(Barrier *ret, const char *name) {
    if (!name) name = BARRIER_ENV;
    if (!*name || strchr(name, '=')) return -EINVAL;
    /* secure_getenv() alone could not tell "ignored" from "unset". */
    if (getauxval(AT_SECURE)) return -EPERM;
    const char *record = secure_getenv(name);
    if (!record) return -ENOENT;
    int r = barrier_deserialize(ret, record, 0);
    if (r < 0) return r;
    (void)unsetenv(name);
    return 0;
}

}  // extern "C"

namespace ipcbarrier::detail {

int barrier_adopt_child(Barrier *ret, int me, int them, int pipe_write) noexcept {
    if (me == them || me == pipe_write || them == pipe_write) return -EBADFD;
    /* One F_GETFL each tells whether it is open, and how; an fd that
     * survived execve() is not close-on-exec. */
    const int fds[3] = {me, them, pipe_write};
    for (int fd : fds) {
        if (fd <= STDERR_FILENO) return -EBADFD;
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0) return -EBADF;
        bool usable = fd == pipe_write ? (flags & O_ACCMODE) == O_WRONLY
                                       : (flags & O_ACCMODE) == O_RDWR && (flags & O_NONBLOCK) != 0;
        if (!usable || (flags & O_PATH)) return -EBADFD;
    }
    struct stat st;
    if (fstat(pipe_write, &st) < 0) return -errno;
    if (!S_ISFIFO(st.st_mode)) return -EBADFD;

    Barrier b BARRIER_NULL;
    b.me = me;
    b.them = them;
    b.pipe[1] = pipe_write;
    for (int i = 0; i < 3; i++)
        if (fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
            int r = -errno;
            while (i-- > 0) (void)fcntl(fds[i], F_SETFD, 0);
            return r;
        }
    *ret = b;
    return 0;
}

}  // namespace ipcbarrier::detail
