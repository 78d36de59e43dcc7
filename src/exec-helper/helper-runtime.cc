/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The exec helper's own runtime, in place of libc and the C++ runtime.
 *
 * The helper is started on every start of the trampoline path, so its
 * start-up is part of what a start costs. A statically linked glibc spends
 * that start-up on work the helper has no use for: probing the CPU (each
 * cpuid instruction traps in a virtual machine), applying IRELATIVE
 * relocations, setting up TLS, stdio and malloc. Measured with posix_spawn()
 * of a program that only exits, that is about twice the cost of a program
 * that enters main() straight from _start. So on x86_64 the helper is
 * linked with -nostdlib and this file: the entry point and the
 * few functions its code calls, each a system call or a loop.
 *
 * What the helper runs is single-threaded and short-lived: errno is one
 * static int, memory comes from a static arena and then mmap(), and is
 * never given back (execve() or _exit() ends the process soon after). The
 * functions are defined under libc's symbol names (the asm labels), not
 * declared through libc's headers, so that the objects compiled against
 * those headers link with them. This file is compiled with -fno-builtin,
 * so that the compiler does not turn the loops below into calls to
 * themselves. */

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <new>
#if defined(__GLIBCXX__)
#include <bits/functexcept.h>
#endif

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include "helper-runtime.hh"
#include "raw-syscall.hh"

#if !defined(__x86_64__)
#error "the exec helper's own runtime is for x86_64"
#endif

using ipcbarrier::detail::raw_syscall;

namespace {

int errno_value;

/* The libc convention: the result, or -1 with errno set. */
long libc_result(long r) noexcept {
    if (r < 0 && r > -4096) {
        errno_value = static_cast<int>(-r);
        return -1;
    }
    return r;
}

/* The first allocations (the plan's buffers and its fd list) fit here;
 * bigger ones get their own mapping. */
alignas(16) unsigned char arena[64 * 1024];
size_t arena_used;

void *allocate(size_t size) noexcept {
    size = (size + 15) & ~static_cast<size_t>(15);
    if (size == 0) size = 16;
    if (size <= sizeof arena - arena_used) {
        void *p = arena + arena_used;
        arena_used += size;
        return p;
    }
    long r = raw_syscall(SYS_mmap, nullptr, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return r < 0 && r > -4096 ? nullptr : reinterpret_cast<void *>(r);
}

}  // namespace

extern "C" {

/* Called by _start with the initial stack: argc, then argv, NULL, envp,
 * NULL, auxv. Runs the constructors a static link may hold (none is
 * expected), then the helper. */
extern void (*__init_array_start[])(int, char **, char **) __attribute__((weak));
extern void (*__init_array_end[])(int, char **, char **) __attribute__((weak));

[[noreturn]] void ipcb_helper_start(long *stack) noexcept;
[[noreturn]] __attribute__((used)) void ipcb_helper_start(long *stack) noexcept {
    int argc = static_cast<int>(stack[0]);
    char **argv = reinterpret_cast<char **>(stack + 1);
    char **envp = argv + argc + 1;
    for (auto **f = __init_array_start; f < __init_array_end; f++) (*f)(argc, argv, envp);
    int status = ipcb_helper_main(argc, argv);
    for (;;) (void)raw_syscall(SYS_exit_group, status);
}

/* The entry point: no frame to return to, the stack pointer 16-byte
 * aligned for the call as the ABI wants it. */
__asm__(
    ".text\n"
    ".global _start\n"
    ".type _start,@function\n"
    "_start:\n"
    "  xor %ebp, %ebp\n"
    "  mov %rsp, %rdi\n"
    "  and $-16, %rsp\n"
    "  call ipcb_helper_start\n"
    "  hlt\n");

/* errno */

int *rt_errno_location() noexcept __asm__("__errno_location");
int *rt_errno_location() noexcept {
    return &errno_value;
}

/* System calls */

[[noreturn]] void rt_exit(int status) noexcept __asm__("_exit");
void rt_exit(int status) noexcept {
    for (;;) (void)raw_syscall(SYS_exit_group, status);
}

long rt_read(int fd, void *buf, size_t n) noexcept __asm__("read");
long rt_read(int fd, void *buf, size_t n) noexcept {
    return libc_result(raw_syscall(SYS_read, fd, buf, n));
}

long rt_write(int fd, const void *buf, size_t n) noexcept __asm__("write");
long rt_write(int fd, const void *buf, size_t n) noexcept {
    return libc_result(raw_syscall(SYS_write, fd, buf, n));
}

long rt_pread(int fd, void *buf, size_t n, long offset) noexcept __asm__("pread64");
long rt_pread(int fd, void *buf, size_t n, long offset) noexcept {
    return libc_result(raw_syscall(SYS_pread64, fd, buf, n, offset));
}

/* Never retried: Linux releases the number whatever the result. */
int rt_close(int fd) noexcept __asm__("close");
int rt_close(int fd) noexcept {
    return static_cast<int>(libc_result(raw_syscall(SYS_close, fd)));
}

int rt_fcntl(int fd, int cmd, ...) noexcept __asm__("fcntl64");
int rt_fcntl(int fd, int cmd, ...) noexcept {
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    return static_cast<int>(libc_result(raw_syscall(SYS_fcntl, fd, cmd, arg)));
}

int rt_open(const char *path, int flags, ...) noexcept __asm__("open64");
int rt_open(const char *path, int flags, ...) noexcept {
    va_list ap;
    va_start(ap, flags);
    long mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, long) : 0;
    va_end(ap);
    return static_cast<int>(libc_result(raw_syscall(SYS_openat, AT_FDCWD, path, flags, mode)));
}

int rt_access(const char *path, int mode) noexcept __asm__("access");
int rt_access(const char *path, int mode) noexcept {
    return static_cast<int>(libc_result(raw_syscall(SYS_faccessat, AT_FDCWD, path, mode)));
}

long rt_readlink(const char *path, char *buf, size_t size) noexcept __asm__("readlink");
long rt_readlink(const char *path, char *buf, size_t size) noexcept {
    return libc_result(raw_syscall(SYS_readlinkat, AT_FDCWD, path, buf, size));
}

/* glibc's struct stat is the kernel's on x86_64. */
int rt_fstat(int fd, void *st) noexcept __asm__("fstat64");
int rt_fstat(int fd, void *st) noexcept {
    return static_cast<int>(libc_result(raw_syscall(SYS_fstat, fd, st)));
}

void *rt_mmap(void *addr, size_t n, int prot, int flags, int fd, long offset) noexcept
    __asm__("mmap64");
void *rt_mmap(void *addr, size_t n, int prot, int flags, int fd, long offset) noexcept {
    long r = libc_result(raw_syscall(SYS_mmap, addr, n, prot, flags, fd, offset));
    return reinterpret_cast<void *>(r);
}

int rt_prctl(int option, ...) noexcept __asm__("prctl");
int rt_prctl(int option, ...) noexcept {
    va_list ap;
    va_start(ap, option);
    unsigned long a[4];
    for (unsigned long &v : a) v = va_arg(ap, unsigned long);
    va_end(ap);
    return static_cast<int>(libc_result(raw_syscall(SYS_prctl, option, a[0], a[1], a[2], a[3])));
}

int rt_getpid() noexcept __asm__("getpid");
int rt_getpid() noexcept {
    return static_cast<int>(raw_syscall(SYS_getpid));
}

int rt_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
             const void *sigmask) noexcept __asm__("ppoll");
int rt_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
             const void *sigmask) noexcept {
    /* The kernel writes the time left back: into a copy, as the caller's
     * is const. */
    struct timespec left = {};
    if (timeout) left = *timeout;
    return static_cast<int>(libc_result(
        raw_syscall(SYS_ppoll, fds, n, timeout ? &left : nullptr, sigmask, sigmask ? 8 : 0)));
}

int rt_poll(struct pollfd *fds, nfds_t n, int timeout_ms) noexcept __asm__("poll");
int rt_poll(struct pollfd *fds, nfds_t n, int timeout_ms) noexcept {
    struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    return rt_ppoll(fds, n, timeout_ms < 0 ? nullptr : &ts, nullptr);
}

/* Without the vDSO, which this runtime does not look up: a system call. */
int rt_clock_gettime(clockid_t clock, struct timespec *ts) noexcept __asm__("clock_gettime");
int rt_clock_gettime(clockid_t clock, struct timespec *ts) noexcept {
    return static_cast<int>(libc_result(raw_syscall(SYS_clock_gettime, clock, ts)));
}

long rt_syscall(long nr, ...) noexcept __asm__("syscall");
long rt_syscall(long nr, ...) noexcept {
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (long &v : a) v = va_arg(ap, long);
    va_end(ap);
    return libc_result(raw_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]));
}

/* Memory */

void *rt_malloc(size_t size) noexcept __asm__("malloc");
void *rt_malloc(size_t size) noexcept {
    void *p = allocate(size);
    if (!p) errno_value = ENOMEM;
    return p;
}

void rt_free(void *) noexcept __asm__("free");
void rt_free(void *) noexcept {}

/* Strings */

void *rt_memcpy(void *dst, const void *src, size_t n) noexcept __asm__("memcpy");
void *rt_memcpy(void *dst, const void *src, size_t n) noexcept {
    auto *d = static_cast<unsigned char *>(dst);
    const auto *s = static_cast<const unsigned char *>(src);
    for (size_t i = 0; i < n; i++) d[i] = s[i];
    return dst;
}

void *rt_memmove(void *dst, const void *src, size_t n) noexcept __asm__("memmove");
void *rt_memmove(void *dst, const void *src, size_t n) noexcept {
    auto *d = static_cast<unsigned char *>(dst);
    const auto *s = static_cast<const unsigned char *>(src);
    if (d < s)
        for (size_t i = 0; i < n; i++) d[i] = s[i];
    else
        for (size_t i = n; i > 0; i--) d[i - 1] = s[i - 1];
    return dst;
}

void *rt_memset(void *dst, int c, size_t n) noexcept __asm__("memset");
void *rt_memset(void *dst, int c, size_t n) noexcept {
    auto *d = static_cast<unsigned char *>(dst);
    for (size_t i = 0; i < n; i++) d[i] = static_cast<unsigned char>(c);
    return dst;
}

int rt_memcmp(const void *a, const void *b, size_t n) noexcept __asm__("memcmp");
int rt_memcmp(const void *a, const void *b, size_t n) noexcept {
    const auto *x = static_cast<const unsigned char *>(a);
    const auto *y = static_cast<const unsigned char *>(b);
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] - y[i];
    return 0;
}

const void *rt_memchr(const void *p, int c, size_t n) noexcept __asm__("memchr");
const void *rt_memchr(const void *p, int c, size_t n) noexcept {
    const auto *s = static_cast<const unsigned char *>(p);
    for (size_t i = 0; i < n; i++)
        if (s[i] == static_cast<unsigned char>(c)) return s + i;
    return nullptr;
}

size_t rt_strlen(const char *s) noexcept __asm__("strlen");
size_t rt_strlen(const char *s) noexcept {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

size_t rt_strnlen(const char *s, size_t max) noexcept __asm__("strnlen");
size_t rt_strnlen(const char *s, size_t max) noexcept {
    size_t n = 0;
    while (n < max && s[n]) n++;
    return n;
}

const char *rt_strchr(const char *s, int c) noexcept __asm__("strchr");
const char *rt_strchr(const char *s, int c) noexcept {
    for (;; s++) {
        if (*s == static_cast<char>(c)) return s;
        if (!*s) return nullptr;
    }
}

int rt_strncmp(const char *a, const char *b, size_t n) noexcept __asm__("strncmp");
int rt_strncmp(const char *a, const char *b, size_t n) noexcept {
    for (size_t i = 0; i < n; i++) {
        auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
        if (x != y || !x) return x - y;
    }
    return 0;
}

}  // extern "C"

/* The C++ runtime: allocation, which ends the helper when memory runs out
 * (it is built without exceptions), and the errors the standard library's
 * containers would throw. */

void *operator new(size_t size) {
    void *p = allocate(size);
    if (!p) ipcb_helper_fatal(ENOMEM);
    return p;
}

void operator delete(void *) noexcept {}
void operator delete(void *, size_t) noexcept {}

#if defined(__GLIBCXX__)
namespace std {
void __throw_length_error(const char *) {
    ipcb_helper_fatal(ENOMEM);
}
void __throw_bad_alloc() {
    ipcb_helper_fatal(ENOMEM);
}
void __throw_bad_array_new_length() {
    ipcb_helper_fatal(ENOMEM);
}
}  // namespace std
#endif

/* What a failed assertion or LLVM's libc++ without exceptions calls. */
extern "C" [[noreturn]] void rt_abort() noexcept __asm__("abort");
extern "C" void rt_abort() noexcept {
    ipcb_helper_fatal(ENOTRECOVERABLE);
}
extern "C" [[noreturn]] void rt_assert_fail(const char *, const char *, unsigned,
                                            const char *) noexcept __asm__("__assert_fail");
extern "C" void rt_assert_fail(const char *, const char *, unsigned, const char *) noexcept {
    ipcb_helper_fatal(ENOTRECOVERABLE);
}
