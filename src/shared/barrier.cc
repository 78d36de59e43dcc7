/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ipcbarrier/barrier.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <poll.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ipcbarrier/eventfd-util.hh>
#include <ipcbarrier/pipe-util.hh>
#include <ipcbarrier/time-util.hh>

/* How it works: each side writes its sync points into the eventfd the other
 * side reads ("me" and "them"). An eventfd adds up what is written, so a
 * reader learns how many points arrived since it last looked. b->barriers
 * holds "placed by me minus consumed of theirs". An abortion is written as
 * one huge value, so that it swamps, and thereby cancels, whatever sync
 * points are still queued in front of it. Once a side knows of an abortion,
 * b->barriers leaves the counting range for one of three bias values.
 *
 * Exit, execve() and destroy are seen through the pipe: each side keeps one
 * end, and the other end reports hang-up or error once every copy of its
 * partner is closed. A pending eventfd value is always consumed before a
 * hang-up is honoured, so points placed just before exiting still count. */

namespace {

using ipcbarrier::BorrowedFd;
using ipcbarrier::Deadline;

constexpr uint64_t ABORTION = INT64_MAX;

/* Abortion states, far below any count; keep WE < THEY < I, as
 * wait_abortion() compares against THEY. */
constexpr int64_t BIAS = INT64_MIN;
constexpr int64_t WE_ABORTED = BIAS + 1;
constexpr int64_t THEY_ABORTED = BIAS + 2;
constexpr int64_t I_ABORTED = BIAS + 3;
/* A count below this would run into the abortion states: only a peer that
 * writes garbage gets there, and that is treated as an I/O error. */
constexpr int64_t COUNT_FLOOR = BIAS + 64;

bool role_is_set(const Barrier *b) {
    if (b->me < 0 || b->them < 0) return false;
    /* Setting the role closes one pipe end; a fatal error closes both. */
    return b->pipe[0] < 0 || b->pipe[1] < 0;
}

int pipe_end(const Barrier *b) {
    return b->pipe[0] >= 0 ? b->pipe[0] : b->pipe[1];
}

/* Any I/O failure is unrecoverable: nobody can tell how many sync points got
 * through. Closing our pipe end makes the peer see an abortion too. */
void fail(Barrier *b) {
    b->pipe[0] = ipcbarrier::safe_close(b->pipe[0]);
    b->pipe[1] = ipcbarrier::safe_close(b->pipe[1]);
    b->barriers = WE_ABORTED;
}

/* Accounts for value read from the peer's eventfd. Returns 0, or -EPROTO
 * for a count no barrier writes (then the barrier is "we aborted"). */
int consume(Barrier *b, uint64_t value) {
    if (value >= ABORTION) {
        b->barriers = barrier_i_aborted(b) ? WE_ABORTED : THEY_ABORTED;
    } else if (barrier_is_aborted(b)) {
        /* only wait_abortion() reads after a local abort */
    } else if (value > static_cast<uint64_t>(b->barriers) - static_cast<uint64_t>(COUNT_FLOOR)) {
        /* unsigned: the exact distance to the floor, without overflow */
        fail(b);
        return -EPROTO;
    } else {
        b->barriers -= static_cast<int64_t>(value);
    }
    return 0;
}

void consume_hangup(Barrier *b) {
    b->barriers = barrier_i_aborted(b) ? WE_ABORTED : THEY_ABORTED;
}

/* Reads the peer's sync points until b->barriers <= limit or the peer
 * aborts. Returns 0 when done (the caller looks at the state), -ETIMEDOUT
 * when the deadline passed first, or the -errno of an I/O error, which
 * has made the barrier "we aborted". */
int read_until(Barrier *b, int64_t limit, Deadline deadline) {
    while (b->barriers > limit) {
        uint64_t value;

        /* Try the eventfd first: when the peer is ahead, this is the only
         * syscall a wait needs. */
        int r = ipcbarrier::eventfd_drain(BorrowedFd(b->them), &value);
        if (r == 0) {
            r = consume(b, value);
            if (r < 0) return r;
            continue;
        }
        if (r != -EAGAIN) {
            fail(b);
            return r;
        }

        struct pollfd pfd[2] = {
            {.fd = b->them, .events = POLLIN, .revents = 0},
            /* Hang-up and error are always reported; asking for nothing
             * else keeps a writable pipe end from waking us. */
            {.fd = pipe_end(b), .events = 0, .revents = 0},
        };
        struct timespec ts;
        /* The remaining time is recomputed on every pass, so signals
         * (with or without SA_RESTART) neither shorten nor lengthen it. */
        int n = ppoll(pfd, 2, deadline.remaining_timespec(&ts), nullptr);
        if (n < 0) {
            if (errno == EINTR) continue;
            r = -errno;
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
        if (pfd[0].revents & POLLIN) continue;
        if (pfd[1].revents & (POLLHUP | POLLERR)) {
            /* The peer is gone, but what it placed before leaving must
             * still be seen: check the eventfd once more, since the two
             * events need not arrive in one ppoll(). */
            r = ipcbarrier::eventfd_drain(BorrowedFd(b->them), &value);
            if (r == 0) {
                r = consume(b, value);
                if (r < 0) return r;
            } else if (r == -EAGAIN) {
                consume_hangup(b);
            } else {
                fail(b);
                return r;
            }
        }
    }
    return 0;
}

enum class Wait { next, sync_next, sync, abortion };

/* Every wait: 1 where the plain call returns true, 0 where it returns
 * false, -ETIMEDOUT, -EBADF for a barrier without role, or the -errno of
 * an I/O error (the barrier is then "we aborted"). */
int wait_for(Barrier *b, Wait what, Deadline deadline) {
    if (!role_is_set(b)) return -EBADF;

    int64_t limit;
    switch (what) {
        case Wait::next:
            if (barrier_is_aborted(b)) return 0;
            limit = b->barriers - 1;
            break;
        case Wait::sync_next:
            if (barrier_is_aborted(b)) return 0;
            limit = b->barriers > 0 ? b->barriers - 1 : 0;
            break;
        case Wait::sync:
            if (barrier_is_aborted(b)) return 0;
            limit = 0;
            break;
        case Wait::abortion:
            limit = THEY_ABORTED;
            break;
    }

    int r = read_until(b, limit, deadline);
    if (r < 0) return r;
    if (what == Wait::abortion) return !barrier_i_aborted(b);
    return !barrier_is_aborted(b);
}

/* Writes value (a sync point or the abortion) to the peer. */
bool write_point(Barrier *b, uint64_t value) {
    /* -EAGAIN would mean the counter is near 2^64: the peer is not a
     * barrier. Every error is fatal. */
    if (ipcbarrier::eventfd_add(BorrowedFd(b->me), value) < 0) {
        fail(b);
        return false;
    }
    return true;
}

}  // namespace

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

    b->me = me.release();
    b->them = them.release();
    b->pipe[0] = pipe.read_end.release();
    b->pipe[1] = pipe.write_end.release();
    b->barriers = 0;
    return 0;
}

void barrier_destroy(Barrier *b) {
    b->me = ipcbarrier::safe_close(b->me);
    b->them = ipcbarrier::safe_close(b->them);
    b->pipe[0] = ipcbarrier::safe_close(b->pipe[0]);
    b->pipe[1] = ipcbarrier::safe_close(b->pipe[1]);
    b->barriers = 0;
}

int barrier_set_role(Barrier *b, unsigned role) {
    if (role != BARRIER_PARENT && role != BARRIER_CHILD) return -EINVAL;
    if (b->me < 0 || b->them < 0) return -EBADF;
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

bool barrier_place(Barrier *b) {
    if (!role_is_set(b) || barrier_is_aborted(b)) return false;
    if (write_point(b, 1)) b->barriers += 1;
    return !barrier_is_aborted(b);
}

bool barrier_abort(Barrier *b) {
    if (!role_is_set(b)) return false;
    if (!barrier_i_aborted(b) && write_point(b, ABORTION))
        b->barriers = barrier_they_aborted(b) ? WE_ABORTED : I_ABORTED;
    return !barrier_they_aborted(b);
}

bool barrier_wait_next(Barrier *b) {
    return wait_for(b, Wait::next, Deadline::never()) > 0;
}

bool barrier_wait_abortion(Barrier *b) {
    return wait_for(b, Wait::abortion, Deadline::never()) > 0;
}

bool barrier_sync_next(Barrier *b) {
    return wait_for(b, Wait::sync_next, Deadline::never()) > 0;
}

bool barrier_sync(Barrier *b) {
    return wait_for(b, Wait::sync, Deadline::never()) > 0;
}

int barrier_wait_next_timeout(Barrier *b, uint64_t timeout_usec) {
    return wait_for(b, Wait::next, Deadline::after(timeout_usec));
}

int barrier_wait_abortion_timeout(Barrier *b, uint64_t timeout_usec) {
    return wait_for(b, Wait::abortion, Deadline::after(timeout_usec));
}

int barrier_sync_next_timeout(Barrier *b, uint64_t timeout_usec) {
    return wait_for(b, Wait::sync_next, Deadline::after(timeout_usec));
}

int barrier_sync_timeout(Barrier *b, uint64_t timeout_usec) {
    return wait_for(b, Wait::sync, Deadline::after(timeout_usec));
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
    return b->barriers == I_ABORTED || b->barriers == WE_ABORTED;
}

bool barrier_they_aborted(const Barrier *b) {
    return b->barriers == THEY_ABORTED || b->barriers == WE_ABORTED;
}

bool barrier_we_aborted(const Barrier *b) {
    return b->barriers == WE_ABORTED;
}

bool barrier_is_aborted(const Barrier *b) {
    return barrier_i_aborted(b) || barrier_they_aborted(b);
}

}  // extern "C"

/* ---- across execve() ----
 *
 * The record, version 1, one line of ASCII:
 *
 *   ipcbarrier1 pid=P role=R me=M them=T pipe=F n=N state=S
 *
 * P: the pid it is meant for (decimal, > 0); R: parent or child; M, T, F:
 * the eventfd written, the eventfd read, the pipe end kept (decimal fds);
 * N: the counter (signed decimal, 0 unless S is none); S: none, i, they or
 * we (who has aborted). Numbers have no sign (but N's '-'), no leading
 * zeros, no spaces; fields come in this order, separated by one space,
 * with nothing after the last. */

namespace {

constexpr char RECORD_MAGIC[] = "ipcbarrier1";

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
};

const char *state_name(const Barrier *b) {
    if (barrier_we_aborted(b)) return "we";
    if (barrier_i_aborted(b)) return "i";
    if (barrier_they_aborted(b)) return "they";
    return "none";
}

/* Formats the record; changes nothing. Returns its length or -errno. */
int format_record(const Barrier *b, char *buf, size_t size) {
    if (!role_is_set(b) || pipe_end(b) < 0) return -EBADF;
    RecordWriter w{buf, size};
    w.put(RECORD_MAGIC);
    w.put(" pid=");
    w.put_u64(static_cast<uint64_t>(getpid()));
    w.put(b->pipe[0] >= 0 ? " role=parent" : " role=child");
    w.put(" me=");
    w.put_u64(static_cast<uint64_t>(b->me));
    w.put(" them=");
    w.put_u64(static_cast<uint64_t>(b->them));
    w.put(" pipe=");
    w.put_u64(static_cast<uint64_t>(pipe_end(b)));
    w.put(" n=");
    w.put_i64(barrier_is_aborted(b) ? 0 : b->barriers);
    w.put(" state=");
    w.put(state_name(b));
    if (w.overflow || size == 0) return -ENOBUFS;
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
    bool fd(int *ret) {
        uint64_t v;
        if (!u64(INT_MAX, &v)) return false;
        *ret = static_cast<int>(v);
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

bool is_eventfd(int fd) {
    char path[32] = "/proc/self/fd/";
    RecordWriter w{path, sizeof path, strlen(path)};
    w.put_u64(static_cast<uint64_t>(fd));
    path[w.len] = '\0';
    char target[32];
    ssize_t n = readlink(path, target, sizeof target);
    if (n >= 0) return n == 20 && memcmp(target, "anon_inode:[eventfd]", 20) == 0;
    /* Without /proc only the inode type is known: an anonymous inode. */
    struct stat st;
    return errno == ENOENT && access("/proc/self/fd", F_OK) < 0 && fstat(fd, &st) == 0 &&
           (st.st_mode & S_IFMT) == 0;
}

int check_fd(int fd, bool eventfd, int access_mode) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -EBADF;
    if (eventfd) {
        /* The waits rely on reads that do not block. */
        if (!(flags & O_NONBLOCK) || !is_eventfd(fd)) return -EBADFD;
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (!S_ISFIFO(st.st_mode) || (flags & O_ACCMODE) != access_mode) return -EBADFD;
    return 0;
}

}  // namespace

extern "C" {

int barrier_serialize(Barrier *b, char *buf, size_t size) {
    int len = format_record(b, buf, size);
    if (len < 0) return len;
    int r = set_cloexec(b, false);
    if (r < 0) return r;
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
    uint64_t pid;
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
    if (!in.literal(" me=") || !in.fd(&b.me) || !in.literal(" them=") || !in.fd(&b.them) ||
        !in.literal(" pipe=") || !in.fd(&pipe_fd) || !in.literal(" n=") || !in.i64(&n) ||
        !in.literal(" state="))
        return -EINVAL;
    bool aborted = true;
    if (in.literal("none")) {
        aborted = false;
        b.barriers = n;
    } else if (in.literal("i")) {
        b.barriers = I_ABORTED;
    } else if (in.literal("they")) {
        b.barriers = THEY_ABORTED;
    } else if (in.literal("we")) {
        b.barriers = WE_ABORTED;
    } else {
        return -EINVAL;
    }
    if (*in.p != '\0') return -EINVAL;
    /* An aborted side has no count; a count never reaches the states. */
    if (aborted ? n != 0 : n < COUNT_FLOOR) return -EINVAL;
    if (b.me == b.them || b.me == pipe_fd || b.them == pipe_fd) return -EINVAL;

    if (static_cast<pid_t>(pid) != (owner != 0 ? owner : getpid())) return -ESRCH;

    int r = check_fd(b.me, true, 0);
    if (r == 0) r = check_fd(b.them, true, 0);
    if (r == 0) r = check_fd(pipe_fd, false, child ? O_WRONLY : O_RDONLY);
    if (r < 0) return r;

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
