/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* spawn-helper-probe: prints whether it runs in a secure context (AT_SECURE)
 * and which trampoline helper the library would start there:
 *
 *   secure=0|1
 *   helper=PATH
 */

#include <cstdio>

#include <sys/auxv.h>

#include "spawn-helper.hh"

/* In sanitizer builds: LeakSanitizer cannot stop the threads of a
 * set-user-ID process, which may not trace itself, and would fail the
 * probe at its exit (its options from the environment do not count in a
 * secure context). The runtime, a shared library, asks this function
 * whether to look, if it can see it. */
extern "C" __attribute__((visibility("default"))) int __lsan_is_turned_off();
extern "C" int __lsan_is_turned_off() {
    return 1;
}

int main() {
    printf("secure=%d\nhelper=%s\n", getauxval(AT_SECURE) ? 1 : 0,
           ipcbarrier::detail::exec_helper_path());
    return 0;
}
