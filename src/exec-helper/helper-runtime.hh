/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the exec helper's own runtime (helper-runtime.cc) needs from the
 * helper. */

/* Records error as the helper's failure in the caller's status, if the
 * helper has mapped it by then, and ends the helper with _exit(127).
 * Called where there is no error to return: when memory runs out. */
extern "C" [[noreturn]] void ipcb_helper_fatal(int error) noexcept;

/* The helper's main(): _start calls it, as ISO C++ does not let code call
 * main() itself. */
extern "C" int ipcb_helper_main(int argc, char **argv) noexcept;
