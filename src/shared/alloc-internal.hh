/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Allocation failure as an error code, for the noexcept functions that
 * allocate. */

#include <cerrno>
#include <new>

namespace ipcbarrier::detail {

/* Returns f(), or -ENOMEM if it ran out of memory. Code built without
 * exceptions (the exec helper, whose operator new ends the process
 * instead of returning) gets f() alone. */
template <class F>
int catch_oom(F &&f) noexcept {
#if defined(__cpp_exceptions)
    try {
        return f();
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    }
#else
    return f();
#endif
}

}  // namespace ipcbarrier::detail
