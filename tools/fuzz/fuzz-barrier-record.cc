/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* fuzz-barrier-record: barrier_deserialize() on arbitrary text.
 *
 * A record (version 2, see barrier.cc) is only accepted when its pid is the
 * caller's and its fds are a real barrier's, inherited (not close-on-exec)
 * and each the very file the record names by its eventfd id or pipe inode,
 * which random bytes never are. So the process sets up, once, a barrier
 * (role child) and a few fds of the wrong kinds, and the input may name
 * them with placeholders that are replaced before parsing:
 *
 *   $PID      getpid()
 *   $ME       the barrier's eventfd written to   $MEID    its eventfd id
 *   $THEM     the barrier's eventfd read from    $THEMID  its eventfd id
 *   $PIPE     the pipe end the barrier kept (the write end, as a child)
 *   $RPIPE    a copy of the read end, taken before the role closed it, so
 *             that records of role parent can be accepted too
 *   $PIPEINO  the pipe's inode number (both ends have it)
 *   $MEDUP    a dup of $ME: the same eventfd under another number
 *   $CLOEXEC  a dup of $ME that is close-on-exec (not inherited)
 *   $OTHER    an unrelated non-blocking eventfd  $OTHERID  its eventfd id
 *   $EFD      a blocking eventfd                 $EFDID    its eventfd id
 *   $SEMFD    a non-blocking semaphore eventfd   $SEMFDID  its eventfd id
 *   $FIFO     the write end of a named FIFO      $RFIFO    its read end
 *   $FIFOINO  the FIFO's inode number
 *   $NULL     /dev/null opened read-only (neither eventfd nor pipe)
 *   $OPATH    an O_PATH fd of the pipe's read end (names it, cannot read)
 *
 * The longest name wins ("$MEID" is not "$ME" and "ID"). What follows a
 * placeholder stays: "$PIPEINO1" is the inode with a 1 appended, a number
 * that is not the inode. The ids are 0 where the kernel shows none. Every
 * fd but $CLOEXEC is inherited, and the fixture puts that state back
 * before each input (a successful parse sets close-on-exec on the three
 * fds it adopts, barrier_serialize() clears it). The FIFO's directory and
 * name are removed as soon as both ends are open: /proc still shows the
 * ends as a named FIFO's, and nothing is left behind if the process dies.
 * stdin becomes another dup of $ME, so that a record naming fd 0 is
 * refused for being stdio and for nothing else (neither the target nor
 * libFuzzer reads stdin); stdout and stderr are opened on /dev/null where
 * they are closed, so that fds 0 to 2 are always open. The refusals of
 * semaphores and of unrelated eventfds rest on lines of /proc/self/fdinfo
 * that older kernels do not show; the fixture says so on stderr then, and
 * the files whose stated outcome rests on them ("semaphore", "-id" in the
 * name) are checked only for the invariants.
 *
 * Checked on every input, aborting when violated:
 *   - on failure the result is -EINVAL, -E2BIG, -ESRCH, -EBADF or -EBADFD,
 *     and neither the output Barrier nor the close-on-exec flag of any fd
 *     of the fixture has changed;
 *   - on success the eventfds are two different files among the
 *     fixture's inherited non-blocking, non-semaphore eventfds ($ME or
 *     $MEDUP, $THEM, and $OTHER: a record that gives an eventfd's own id
 *     names that very file, whatever barrier it was made for), the pipe
 *     end is the fixture's pipe in the direction the role needs, no
 *     event-loop source is attached, the three fds are close-on-exec and
 *     no other fd changed; barrier_serialize() of the result clears
 *     close-on-exec on exactly those three and gives back the text that
 *     was parsed, byte for byte: so every field, the abortion reason
 *     included, survives the round trip, and no other spelling of a
 *     record is ever accepted.
 *
 * The result is not destroyed: its fds are the fixture's.
 *
 * The standalone driver (standalone-main.cc) tells the target each file's
 * name through fuzz_input_name(). A name that begins with an outcome and a
 * '-' ("ok-", "einval-", "e2big-", "esrch-", "ebadf-", "ebadfd-") is an
 * expectation and is checked too; "any-" and other names check only the
 * invariants. This turns the seed corpus into a regression test. */

#include <ipcbarrier/barrier.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern "C" void fuzz_input_name(const char *name);

namespace {

const char *input_name = nullptr;

[[noreturn]] void fail(const char *what, const std::string &text) {
    fprintf(stderr, "fuzz-barrier-record: %s%s%s\n  record: \"%s\"\n", input_name ? input_name : "",
            input_name ? ": " : "", what, text.c_str());
    abort();
}

[[noreturn]] void fail_setup(const char *what, int error) {
    fprintf(stderr, "fuzz-barrier-record: setup: %s: %s\n", what, strerror(error));
    abort();
}

/* An fd of the fixture and whether it is close-on-exec between inputs. */
struct FixtureFd {
    int fd;
    bool cloexec;
};

struct Fixture {
    Barrier barrier;
    int read_end = -1; /* the copy of the pipe's read end */
    int me_dup = -1;
    int cloexec_dup = -1;
    int other_efd = -1;
    int blocking_efd = -1;
    int semaphore_efd = -1;
    int fifo_write = -1, fifo_read = -1;
    int devnull = -1;
    int opath = -1; /* an O_PATH fd of the pipe's read end */
    uint64_t pipe_ino = 0;
    /* What /proc/self/fdinfo shows on this kernel: the refusals of
     * semaphores and of unrelated eventfds rest on it. */
    bool semaphores_shown = true;
    bool ids_shown = true;
    std::vector<FixtureFd> fds;
    /* The placeholders, the longest name first. */
    std::vector<std::pair<std::string, std::string>> placeholders;
};

/* Whether /proc/self/fdinfo shows a line "key" for fd; if so, stores the
 * number after it in *ret. */
bool fdinfo_field(int fd, std::string_view key, uint64_t *ret) {
    std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
    int info = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (info < 0) return false;
    std::string text;
    char chunk[256];
    ssize_t n;
    while ((n = read(info, chunk, sizeof chunk)) > 0) text.append(chunk, static_cast<size_t>(n));
    close(info);
    for (size_t line = 0; line < text.size();) {
        if (std::string_view(text).substr(line, key.size()) == key) {
            *ret = strtoull(text.c_str() + line + key.size(), nullptr, 10);
            return true;
        }
        size_t next = text.find('\n', line);
        if (next == std::string::npos) break;
        line = next + 1;
    }
    return false;
}

/* The "eventfd-id" /proc/self/fdinfo shows for fd, or 0. */
uint64_t eventfd_id(int fd) {
    uint64_t id = 0;
    return fdinfo_field(fd, "eventfd-id:", &id) ? id : 0;
}

uint64_t inode_of(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) fail_setup("fstat", errno);
    return static_cast<uint64_t>(st.st_ino);
}

/* Opens /dev/null on each of fds 0 to 2 that is closed, lowest first, so
 * that open() returns that very number and the fixture's fds are above. */
void open_stdio() {
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0) continue;
        int r = open("/dev/null", O_RDWR);
        if (r < 0) fail_setup("/dev/null for stdio", errno);
        if (r != fd) fail_setup("/dev/null for stdio", EBADF);
    }
}

/* A named FIFO, both ends non-blocking, in a private directory that is
 * removed at once. */
void open_fifo(Fixture *s) {
    const char *tmp = getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/fuzz-barrier-record.XXXXXX";
    if (!mkdtemp(dir.data())) fail_setup("mkdtemp", errno);
    std::string path = dir + "/fifo";
    if (mkfifo(path.c_str(), 0600) < 0) fail_setup("mkfifo", errno);
    /* The read end first: a non-blocking write end needs a reader. */
    s->fifo_read = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (s->fifo_read < 0) fail_setup("the FIFO's read end", errno);
    s->fifo_write = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (s->fifo_write < 0) fail_setup("the FIFO's write end", errno);
    if (unlink(path.c_str()) < 0) fail_setup("unlink of the FIFO", errno);
    if (rmdir(dir.c_str()) < 0) fail_setup("rmdir of the FIFO's directory", errno);
}

void make_fixture(Fixture *s) {
    open_stdio();
    s->barrier = BARRIER_NULL;
    int r = barrier_create(&s->barrier);
    if (r < 0) fail_setup("barrier_create", -r);
    s->read_end = fcntl(s->barrier.pipe[0], F_DUPFD_CLOEXEC, 0);
    if (s->read_end < 0) fail_setup("dup of the read end", errno);
    r = barrier_set_role(&s->barrier, BARRIER_CHILD);
    if (r < 0) fail_setup("barrier_set_role", -r);
    s->pipe_ino = inode_of(s->barrier.pipe[1]);

    if (dup2(s->barrier.me, STDIN_FILENO) < 0) fail_setup("dup of me on stdin", errno);
    s->me_dup = fcntl(s->barrier.me, F_DUPFD_CLOEXEC, 0);
    if (s->me_dup < 0) fail_setup("dup of me", errno);
    s->cloexec_dup = fcntl(s->barrier.me, F_DUPFD_CLOEXEC, 0);
    if (s->cloexec_dup < 0) fail_setup("dup of me", errno);
    s->other_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->other_efd < 0) fail_setup("eventfd", errno);
    s->blocking_efd = eventfd(0, EFD_CLOEXEC);
    if (s->blocking_efd < 0) fail_setup("eventfd", errno);
    s->semaphore_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
    if (s->semaphore_efd < 0) fail_setup("eventfd", errno);
    open_fifo(s);
    s->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (s->devnull < 0) fail_setup("/dev/null", errno);
    std::string read_end_path = "/proc/self/fd/" + std::to_string(s->read_end);
    s->opath = open(read_end_path.c_str(), O_PATH | O_CLOEXEC);
    if (s->opath < 0) fail_setup("O_PATH open of the read end", errno);

    const int inherited[] = {STDIN_FILENO,     s->barrier.me, s->barrier.them, s->barrier.pipe[1],
                             s->read_end,      s->me_dup,     s->other_efd,    s->blocking_efd,
                             s->semaphore_efd, s->fifo_write, s->fifo_read,    s->devnull,
                             s->opath};
    for (int fd : inherited) s->fds.push_back({fd, false});
    s->fds.push_back({s->cloexec_dup, true});

    auto number = [](auto v) { return std::to_string(v); };
    s->placeholders = {
        {"$PID", number(getpid())},
        {"$ME", number(s->barrier.me)},
        {"$MEID", number(eventfd_id(s->barrier.me))},
        {"$THEM", number(s->barrier.them)},
        {"$THEMID", number(eventfd_id(s->barrier.them))},
        {"$PIPE", number(s->barrier.pipe[1])},
        {"$RPIPE", number(s->read_end)},
        {"$PIPEINO", number(s->pipe_ino)},
        {"$MEDUP", number(s->me_dup)},
        {"$CLOEXEC", number(s->cloexec_dup)},
        {"$OTHER", number(s->other_efd)},
        {"$OTHERID", number(eventfd_id(s->other_efd))},
        {"$EFD", number(s->blocking_efd)},
        {"$EFDID", number(eventfd_id(s->blocking_efd))},
        {"$SEMFD", number(s->semaphore_efd)},
        {"$SEMFDID", number(eventfd_id(s->semaphore_efd))},
        {"$FIFO", number(s->fifo_write)},
        {"$RFIFO", number(s->fifo_read)},
        {"$OPATH", number(s->opath)},
        {"$FIFOINO", number(inode_of(s->fifo_write))},
        {"$NULL", number(s->devnull)},
    };
    /* The refusals that rest on what the kernel shows cannot happen
     * without it: the files that expect them are then checked only for the
     * invariants. */
    uint64_t semaphore = 0;
    s->semaphores_shown =
        fdinfo_field(s->semaphore_efd, "eventfd-semaphore:", &semaphore) && semaphore == 1;
    if (!s->semaphores_shown)
        fprintf(stderr,
                "fuzz-barrier-record: note: /proc/self/fdinfo shows no eventfd-semaphore line "
                "(Linux < 6.5): a semaphore eventfd cannot be told from another\n");
    s->ids_shown = eventfd_id(s->barrier.me) != 0;
    if (!s->ids_shown)
        fprintf(stderr,
                "fuzz-barrier-record: note: /proc/self/fdinfo shows no eventfd-id line "
                "(Linux < 5.2): unrelated eventfds cannot be told from the barrier's\n");
    std::stable_sort(s->placeholders.begin(), s->placeholders.end(),
                     [](const auto &a, const auto &b) { return a.first.size() > b.first.size(); });
}

const Fixture &fixture() {
    static const Fixture f = [] {
        Fixture s;
        make_fixture(&s);
        return s;
    }();
    return f;
}

bool is_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    return flags >= 0 && (flags & FD_CLOEXEC);
}

/* Puts every fd of the fixture back into its state between inputs. */
void restore_fixture(const Fixture &f) {
    for (const auto &x : f.fds)
        if (fcntl(x.fd, F_SETFD, x.cloexec ? FD_CLOEXEC : 0) < 0)
            fail_setup("cannot restore close-on-exec", errno);
}

/* Checks that each fd of the fixture is close-on-exec as between inputs,
 * except that those in changed are close-on-exec exactly if cloexec. */
void check_fixture_fds(const Fixture &f, const std::vector<int> &changed, bool cloexec,
                       const char *what, const std::string &text) {
    for (const auto &x : f.fds) {
        bool expected =
            std::find(changed.begin(), changed.end(), x.fd) != changed.end() ? cloexec : x.cloexec;
        if (is_cloexec(x.fd) != expected) fail(what, text);
    }
}

/* The text the parser sees: the input up to its first NUL, with the
 * placeholders replaced. */
std::string substitute(const Fixture &f, std::string_view in) {
    std::string out;
    out.reserve(in.size() + 64);
    while (!in.empty()) {
        bool replaced = false;
        if (in.front() == '$') {
            for (const auto &[name, value] : f.placeholders) {
                if (in.substr(0, name.size()) == name) {
                    out += value;
                    in.remove_prefix(name.size());
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

bool is_pipe(int fd, int access_mode) {
    struct stat st;
    int flags = fcntl(fd, F_GETFL);
    return flags >= 0 && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
           (flags & O_ACCMODE) == access_mode;
}

/* Which eventfd of the fixture fd is (dups count as one), or -1 if it is
 * none that may be adopted. */
int eventfd_file(const Fixture &f, int fd) {
    if (fd == f.barrier.me || fd == f.me_dup) return 0;
    if (fd == f.barrier.them) return 1;
    if (fd == f.other_efd) return 2;
    return -1;
}

void check_success(const Fixture &f, Barrier *b, const std::string &text) {
    bool child = b->pipe[1] >= 0;
    int pipe_fd = child ? b->pipe[1] : b->pipe[0];
    if ((b->pipe[0] >= 0) == child) fail("not exactly one pipe end set", text);
    int me = eventfd_file(f, b->me), them = eventfd_file(f, b->them);
    if (me < 0 || them < 0) fail("accepted an eventfd that may not be adopted", text);
    if (me == them) fail("accepted one eventfd as both me and them", text);
    if (pipe_fd != (child ? f.barrier.pipe[1] : f.read_end))
        fail("accepted a pipe end that is not the barrier's", text);
    if (!is_pipe(pipe_fd, child ? O_WRONLY : O_RDONLY))
        fail("accepted a pipe end of the wrong kind or direction", text);
    if (b->watch) fail("the result has an event-loop source", text);
    const std::vector<int> adopted = {b->me, b->them, pipe_fd};
    check_fixture_fds(f, adopted, true, "accepted fds are not exactly the three close-on-exec",
                      text);

    char again[BARRIER_RECORD_MAX];
    int len = barrier_serialize(b, again, sizeof again);
    if (len < 0) fail("the accepted barrier does not serialize", text);
    check_fixture_fds(f, adopted, false,
                      "barrier_serialize() did not clear close-on-exec on exactly its three fds",
                      text);
    restore_fixture(f);
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

}  // namespace

/* Called by the standalone driver with the name of the file whose contents
 * the next LLVMFuzzerTestOneInput() gets. */
void fuzz_input_name(const char *name) {
    input_name = name;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const Fixture &f = fixture();
    restore_fixture(f);
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
        check_fixture_fds(f, {}, false, "a failure changed close-on-exec of an fd", text);
    }

    int stated = stated_outcome(input_name);
    /* An outcome that rests on what this kernel does not show. */
    if (stated >= 0 && ((!f.semaphores_shown && strstr(input_name, "semaphore")) ||
                        (!f.ids_shown && strstr(input_name, "-id"))))
        stated = -1;
    if (stated >= 0 && r != OUTCOMES[stated].result) {
        const char *prefix = OUTCOMES[stated].prefix;
        fprintf(stderr, "fuzz-barrier-record: expected \"%.*s\", got %d (%s)\n",
                static_cast<int>(strlen(prefix) - 1), prefix, r, r ? strerror(-r) : "success");
        fail("the result is not the one the file name states", text);
    }
    input_name = nullptr;
    return 0;
}
