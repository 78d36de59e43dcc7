/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The C++ interface to the barrier (see ipcbarrier-barrier(3)): an owning,
 * move-only wrapper with the semantics of the C interface in barrier.h. */

#include <ipcbarrier/barrier.h>

namespace ipcbarrier {

enum class BarrierRole : unsigned {
    parent = BARRIER_PARENT,
    child = BARRIER_CHILD,
};

class Barrier {
  public:
    /* An empty barrier: owns nothing, every operation on it fails. */
    Barrier() noexcept = default;
    Barrier(Barrier &&other) noexcept : b_(other.b_) { other.b_ = ::Barrier BARRIER_NULL; }
    Barrier &operator=(Barrier &&other) noexcept {
        if (this != &other) {
            barrier_destroy(&b_);
            b_ = other.b_;
            other.b_ = ::Barrier BARRIER_NULL;
        }
        return *this;
    }
    Barrier(const Barrier &) = delete;
    Barrier &operator=(const Barrier &) = delete;
    ~Barrier() { barrier_destroy(&b_); }

    /* Creates a barrier, before fork(), and moves it into *ret_barrier
     * (destroying what that held). Returns 0 or -errno; *ret_barrier is
     * untouched on failure and nothing is left open. */
    [[nodiscard]] static int create(Barrier *ret_barrier) noexcept {
        ::Barrier b BARRIER_NULL;
        int r = barrier_create(&b);
        if (r < 0) return r;
        barrier_destroy(&ret_barrier->b_);
        ret_barrier->b_ = b;
        return 0;
    }

    /* After fork(), once on each side. Returns 0, -EBADF for an empty
     * barrier, -EBUSY if the role is already set. */
    [[nodiscard]] int set_role(BarrierRole role) noexcept {
        return barrier_set_role(&b_, static_cast<unsigned>(role));
    }

    bool place() noexcept { return barrier_place(&b_); }
    bool abort() noexcept { return barrier_abort(&b_); }
    bool wait_next() noexcept { return barrier_wait_next(&b_); }
    bool wait_abortion() noexcept { return barrier_wait_abortion(&b_); }
    bool sync_next() noexcept { return barrier_sync_next(&b_); }
    bool sync() noexcept { return barrier_sync(&b_); }
    bool place_and_sync() noexcept { return barrier_place_and_sync(&b_); }

    /* Whether the barrier holds its fds (created and not destroyed). */
    [[nodiscard]] bool valid() const noexcept { return b_.me >= 0; }

    [[nodiscard]] bool i_aborted() const noexcept { return barrier_i_aborted(&b_); }
    [[nodiscard]] bool they_aborted() const noexcept { return barrier_they_aborted(&b_); }
    [[nodiscard]] bool we_aborted() const noexcept { return barrier_we_aborted(&b_); }
    [[nodiscard]] bool is_aborted() const noexcept { return barrier_is_aborted(&b_); }

    /* Closes every fd now; the barrier is empty afterwards. */
    void destroy() noexcept { barrier_destroy(&b_); }

  private:
    ::Barrier b_ = BARRIER_NULL;
};

}  // namespace ipcbarrier
