/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The strategies behind close_all_fds_sorted(), visible to the tests so that
 * each can be proven on a kernel that would never choose it. */

#include <span>

namespace ipcbarrier::detail {

int close_all_fds_by_close_range(std::span<const int> sorted_except) noexcept;
int close_all_fds_by_proc(std::span<const int> sorted_except) noexcept;
int close_all_fds_by_loop(std::span<const int> sorted_except) noexcept;

}  // namespace ipcbarrier::detail
