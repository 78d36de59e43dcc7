/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* fuzz-barrier-record: barrier_deserialize() on arbitrary text.
 *
 * A record is only accepted when its pid is the caller's and its fds are a
 * real barrier's, which random bytes never are. So the process creates one
 * barrier (role child) at start-up and keeps it, and the input may name its
 * parts with placeholders that are replaced before parsing:
 *
 *   $PID    getpid()
 *   $ME     the barrier's eventfd written to    $THEM   the one read from
 *   $PIPE   the pipe end the barrier kept (the write end, as a child)
 *   $RPIPE  a copy of the read end, taken before the role closed it, so
 *           that records of role parent can be accepted too
 *   $EFD    a blocking eventfd (an eventfd of the wrong kind)
 *   $NULL   /dev/null opened read-only (neither eventfd nor pipe)
 *
 * Checked on every input, aborting when violated:
 *   - on failure the result is -EINVAL, -E2BIG, -ESRCH, -EBADF or -EBADFD,
 *     and the output Barrier is untouched;
 *   - on success the eventfds are the start-up barrier's two, the pipe end
 *     is a pipe of the direction the role needs, all three are
 *     close-on-exec, and barrier_serialize() of the result gives back the
 *     text that was parsed, byte for byte (so only the one canonical
 *     spelling of a record is ever accepted);
 *   - either way, the fds the process created keep close-on-exec.
 *
 * The result is not destroyed: its fds are the start-up barrier's.
 *
 * The standalone driver (standalone-main.cc) tells the target each file's
 * name through fuzz_input_name(). A name that begins with an outcome and a
 * '-' ("ok-", "einval-", "e2big-", "esrch-", "ebadf-", "ebadfd-") is an
 * expectation and is checked too; "any-" and other names check only the
 * invariants. This turns the seed corpus into a regression test. */

#include <ipcbarrier/barrier.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern "C" void fuzz_input_name(const char *name);

namespace {

struct Fixture {
    Barrier barrier;
    int read_end;     /* the copy of the pipe's read end */
    int blocking_efd; /* an eventfd without O_NONBLOCK */
    int devnull;
};

[[noreturn]] void fail(const char *what, const std::string &text) {
    fprintf(stderr, "fuzz-barrier-record: %s\n  record: \"%s\"\n", what, text.c_str());
    abort();
}

[[noreturn]] void fail_setup(const char *what, int error) {
    fprintf(stderr, "fuzz-barrier-record: setup: %s: %s\n", what, strerror(error));
    abort();
}

const Fixture &fixture() {
    static const Fixture f = [] {
        Fixture s{BARRIER_NULL, -1, -1, -1};
        int r = barrier_create(&s.barrier);
        if (r < 0) fail_setup("barrier_create", -r);
        s.read_end = fcntl(s.barrier.pipe[0], F_DUPFD_CLOEXEC, 0);
        if (s.read_end < 0) fail_setup("dup of the read end", errno);
        r = barrier_set_role(&s.barrier, BARRIER_CHILD);
        if (r < 0) fail_setup("barrier_set_role", -r);
        s.blocking_efd = eventfd(0, EFD_CLOEXEC);
        if (s.blocking_efd < 0) fail_setup("eventfd", errno);
        s.devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (s.devnull < 0) fail_setup("/dev/null", errno);
        return s;
    }();
    return f;
}

/* The text the parser sees: the input up to its first NUL, with the
 * placeholders replaced. */
std::string substitute(const Fixture &f, std::string_view in) {
    const struct {
        std::string_view name;
        long value;
    } placeholders[] = {
        {"$PID", static_cast<long>(getpid())},
        {"$ME", f.barrier.me},
        {"$THEM", f.barrier.them},
        {"$PIPE", f.barrier.pipe[1]},
        {"$RPIPE", f.read_end},
        {"$EFD", f.blocking_efd},
        {"$NULL", f.devnull},
    };
    std::string out;
    out.reserve(in.size());
    while (!in.empty()) {
        bool replaced = false;
        if (in.front() == '$') {
            for (const auto &p : placeholders) {
                if (in.substr(0, p.name.size()) == p.name) {
                    out += std::to_string(p.value);
                    in.remove_prefix(p.name.size());
                    replaced = true;
                    break;
                }
            }
        }
        if (!replaced) {
            out += in.front();
            in.remove_prefix(1);
        }
    }
    return out;
}

bool is_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC);
}

bool is_pipe(int fd, int access_mode) {
    struct stat st;
    int flags = fcntl(fd, F_GETFL);
    return flags >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
           (flags & O_ACCMODE) == access_mode;
}

void check_fixture_cloexec(const Fixture &f, const std::string &text) {
    const int fds[] = {f.barrier.me, f.barrier.them, f.barrier.pipe[1],
                       f.read_end,   f.blocking_efd, f.devnull};
    for (int fd : fds)
        if (!is_cloexec(fd)) fail("an fd of the process lost close-on-exec", text);
}

void check_success(const Fixture &f, Barrier *b, const std::string &text) {
    bool child = b->pipe[1] >= 0;
    int pipe_fd = child ? b->pipe[1] : b->pipe[0];
    if ((b->pipe[0] >= 0) == child) fail("not exactly one pipe end set", text);
    const int efds[] = {f.barrier.me, f.barrier.them};
    if (b->me == b->them || (b->me != efds[0] && b->me != efds[1]) ||
        (b->them != efds[0] && b->them != efds[1]))
        fail("accepted an eventfd that is not the barrier's", text);
    if (!is_pipe(pipe_fd, child ? O_WRONLY : O_RDONLY))
        fail("accepted a pipe end of the wrong kind or direction", text);
    if (!is_cloexec(b->me) || !is_cloexec(b->them) || !is_cloexec(pipe_fd))
        fail("accepted fds without close-on-exec", text);

    char again[BARRIER_RECORD_MAX];
    int len = barrier_serialize(b, again, sizeof again);
    /* barrier_serialize() cleared close-on-exec; the parse had set it. */
    const int fds[] = {b->me, b->them, pipe_fd};
    for (int fd : fds)
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) fail("cannot restore close-on-exec", text);
    if (len < 0) fail("the accepted barrier does not serialize", text);
    if (std::string_view(again, static_cast<size_t>(len)) != text) {
        fprintf(stderr, "fuzz-barrier-record: serialized again: \"%s\"\n", again);
        fail("an accepted record is not what barrier_serialize() writes", text);
    }
}

/* The results a file name can state as its expected outcome. */
constexpr struct {
    const char *prefix;
    int result;
} OUTCOMES[] = {
    {"ok-", 0},         {"einval-", -EINVAL}, {"e2big-", -E2BIG},
    {"esrch-", -ESRCH}, {"ebadf-", -EBADF},   {"ebadfd-", -EBADFD},
};

/* The index in OUTCOMES of the outcome name states, or -1. */
int stated_outcome(const char *name) {
    if (!name) return -1;
    for (size_t i = 0; i < std::size(OUTCOMES); i++)
        if (strncmp(name, OUTCOMES[i].prefix, strlen(OUTCOMES[i].prefix)) == 0)
            return static_cast<int>(i);
    return -1;
}

const char *input_name = nullptr;

}  // namespace

/* Called by the standalone driver with the name of the file whose contents
 * the next LLVMFuzzerTestOneInput() gets. */
void fuzz_input_name(const char *name) {
    input_name = name;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const Fixture &f = fixture();
    std::string_view input(reinterpret_cast<const char *>(data), size);
    std::string text = substitute(f, input.substr(0, input.find('\0')));

    Barrier out;
    Barrier sentinel;
    memset(&sentinel, 0xa5, sizeof sentinel);
    out = sentinel;

    int r = barrier_deserialize(&out, text.c_str(), 0);
    if (r == 0) {
        check_success(f, &out, text);
    } else {
        if (r != -EINVAL && r != -E2BIG && r != -ESRCH && r != -EBADF && r != -EBADFD)
            fail("an error the contract does not list", text);
        if (memcmp(&out, &sentinel, sizeof out) != 0) fail("a failure changed the output", text);
    }
    check_fixture_cloexec(f, text);

    int stated = stated_outcome(input_name);
    input_name = nullptr;
    if (stated >= 0 && r != OUTCOMES[stated].result) {
        const char *prefix = OUTCOMES[stated].prefix;
        fprintf(stderr, "fuzz-barrier-record: expected \"%.*s\", got %d (%s)\n",
                static_cast<int>(strlen(prefix) - 1), prefix, r, r ? strerror(-r) : "success");
        fail("the result is not the one the file name states", text);
    }
    return 0;
}
