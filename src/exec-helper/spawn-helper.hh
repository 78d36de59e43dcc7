/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The trampoline path's helper program: where it is, and the fd it is
 * executed by. The library opens it once per process, when it is loaded,
 * and keeps the fd, so that a package upgrade replacing the installed file
 * cannot make a running service manager execute a half-written file, none
 * at all, or a newer helper than its library. */

namespace ipcbarrier::detail {

/* The environment variable that names another helper, for running from a
 * build tree (the tests set it). Ignored in a secure context (AT_SECURE:
 * set-user-ID, set-group-ID, file capabilities), where the environment
 * belongs to someone less privileged than the program. */
#define IPCB_EXEC_HELPER_ENV "IPCBARRIER_EXEC_HELPER"

/* The helper's path: the environment's override where allowed and set
 * (not empty), else the installed one. */
[[nodiscard]] const char *exec_helper_path() noexcept;

/* The helper, opened O_PATH|O_CLOEXEC when the library is loaded (or, if
 * that failed, on first use) and kept for the life of the process (it is
 * one fd). Thread-safe. Checks each time that the fd still is the file it
 * opened (a program may close every fd it does not know of, e.g. in a
 * child it forked), and opens the helper again if not. Returns the fd, or
 * the -errno of opening it (not kept: a later call tries again). */
[[nodiscard]] int exec_helper_fd() noexcept;

}  // namespace ipcbarrier::detail
