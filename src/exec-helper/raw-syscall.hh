/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* System calls for the child between clone() and execve(), without libc's
 * wrappers. On the vfork path the child runs on the parent's memory with the
 * parent thread's TLS: a wrapper that stores errno writes into the parent
 * thread's errno, and one that is reached through the PLT may run the
 * dynamic linker's lazy binding. The calls here return the result or
 * -errno, as the kernel does, and never touch errno.
 *
 * x86_64 and aarch64 enter the kernel with inline assembly. Elsewhere they
 * go through libc's syscall() and put errno back; the signal calls there go
 * through sigaction() and sigprocmask(), because the kernel's struct
 * sigaction differs between those architectures. */

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <type_traits>

#include <sys/syscall.h>
#include <unistd.h>

namespace ipcbarrier::detail {

#if defined(__x86_64__)

inline long raw_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) noexcept {
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    /* The kernel clobbers rcx (return address) and r11 (flags). "memory":
     * it reads and writes the buffers the pointers refer to. */
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

#elif defined(__aarch64__)

inline long raw_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) noexcept {
    register long x8 __asm__("x8") = nr;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;
    register long x4 __asm__("x4") = a5;
    register long x5 __asm__("x5") = a6;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}

#else

inline long raw_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) noexcept {
    int saved = errno;
    long ret = syscall(nr, a1, a2, a3, a4, a5, a6);
    /* None of the calls made through here returns -1 on success. */
    if (ret == -1) ret = -errno;
    errno = saved;
    return ret;
}

#endif

template <class T>
inline long raw_syscall_arg(T v) noexcept {
    if constexpr (std::is_pointer_v<T> || std::is_null_pointer_v<T>)
        return reinterpret_cast<long>(v);
    else
        return static_cast<long>(v);
}

/* raw_syscall(SYS_x, args...): up to six integer or pointer arguments. */
template <class... Args>
inline long raw_syscall(long nr, Args... args) noexcept {
    static_assert(sizeof...(Args) <= 6);
    long a[6] = {raw_syscall_arg(args)...};
    return raw_syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* A signal's disposition, as far as resetting it is concerned. */
enum class Disposition { dfl, ign, caught };

#if defined(__x86_64__) || defined(__aarch64__)

/* The kernel's struct sigaction on these two architectures; its mask is the
 * kernel's 64-signal set, whatever the size of libc's sigset_t. */
struct KernelSigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    uint64_t mask;
};
constexpr unsigned long kKernelSigsetSize = sizeof(uint64_t);

/* sig's disposition, or -errno (-EINVAL for a signal the kernel or a
 * supervisor such as valgrind keeps to itself). */
inline int raw_signal_get(int sig, Disposition *ret) noexcept {
    KernelSigaction old{};
    long r = raw_syscall(SYS_rt_sigaction, sig, nullptr, &old, kKernelSigsetSize);
    if (r < 0) return static_cast<int>(r);
    *ret = old.handler == SIG_DFL   ? Disposition::dfl
           : old.handler == SIG_IGN ? Disposition::ign
                                    : Disposition::caught;
    return 0;
}

/* Sets sig to SIG_DFL. A default action needs no restorer. */
inline int raw_signal_reset(int sig) noexcept {
    KernelSigaction dfl{};
    dfl.handler = SIG_DFL;
    return static_cast<int>(raw_syscall(SYS_rt_sigaction, sig, &dfl, nullptr, kKernelSigsetSize));
}

/* Sets the calling thread's mask. libc's sigset_t begins with the kernel's
 * 64 bits, in the same order. */
inline int raw_sigmask_set(const sigset_t *mask) noexcept {
    return static_cast<int>(
        raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, mask, nullptr, kKernelSigsetSize));
}

#else

inline int raw_signal_get(int sig, Disposition *ret) noexcept {
    int saved = errno;
    struct sigaction old {};
    int r = sigaction(sig, nullptr, &old) < 0 ? -errno : 0;
    errno = saved;
    if (r < 0) return r;
    *ret = old.sa_handler == SIG_DFL   ? Disposition::dfl
           : old.sa_handler == SIG_IGN ? Disposition::ign
                                       : Disposition::caught;
    return 0;
}

inline int raw_signal_reset(int sig) noexcept {
    int saved = errno;
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    int r = sigaction(sig, &dfl, nullptr) < 0 ? -errno : 0;
    errno = saved;
    return r;
}

inline int raw_sigmask_set(const sigset_t *mask) noexcept {
    int saved = errno;
    int r = sigprocmask(SIG_SETMASK, mask, nullptr) < 0 ? -errno : 0;
    errno = saved;
    return r;
}

#endif

}  // namespace ipcbarrier::detail
