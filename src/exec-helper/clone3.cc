/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "clone3.hh"

#include <cerrno>

#include <sys/syscall.h>

#if defined(__x86_64__) && defined(SYS_clone3)

extern "C" long ipcb_clone3_entry(ipcbarrier::detail::CloneArgs *args, size_t size,
                                  int (*fn)(void *), void *arg) noexcept;

/* In the parent: the system call's result, returned. In the child, whose
 * registers are the parent's but for the result and whose stack pointer
 * is at the top of its new stack: fn(arg), then exit with its result.
 * fn and arg travel in registers that the system call leaves alone. */
#define IPCB_STR_(x) #x
#define IPCB_STR(x) IPCB_STR_(x)

__asm__(
    ".text\n"
    ".globl ipcb_clone3_entry\n"
    ".hidden ipcb_clone3_entry\n"
    ".type ipcb_clone3_entry,@function\n"
    "ipcb_clone3_entry:\n"
    "  mov %rdx, %r8\n"
    "  mov %rcx, %r9\n"
    "  mov $" IPCB_STR(SYS_clone3) ", %eax\n"
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jz 1f\n"
    "  ret\n"
    "1:\n"
    "  xor %ebp, %ebp\n"
    "  mov %r9, %rdi\n"
    "  call *%r8\n"
    "  mov %eax, %edi\n"
    "  mov $" IPCB_STR(SYS_exit) ", %eax\n"
    "  syscall\n"
    "  hlt\n"
    ".size ipcb_clone3_entry, .-ipcb_clone3_entry\n");

namespace ipcbarrier::detail {

long clone3_call(CloneArgs *args, int (*fn)(void *), void *arg) noexcept {
    return ipcb_clone3_entry(args, sizeof *args, fn, arg);
}

}  // namespace ipcbarrier::detail

#else

namespace ipcbarrier::detail {

long clone3_call(CloneArgs *, int (*)(void *), void *) noexcept {
    return -ENOSYS;
}

}  // namespace ipcbarrier::detail

#endif
