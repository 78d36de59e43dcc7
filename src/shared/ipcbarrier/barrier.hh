/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if __cplusplus < 202002L
#error "the ipcbarrier C++ headers need C++20 (-std=c++20); C code uses <ipcbarrier/barrier.h>"
#endif

/* The C++ interface to the barrier (see ipcbarrier-barrier(3)): an owning,
 * move-only wrapper with the semantics of the C interface in barrier.h. */

#include <chrono>

#include <ipcbarrier/barrier.h>
#include <ipcbarrier/time-util.hh>

namespace ipcbarrier {

enum class BarrierRole : unsigned {
    parent = BARRIER_PARENT,
    child = BARRIER_CHILD,
};

class Barrier {
  public:
    /* An empty barrier: owns nothing, every operation on it fails. */
    Barrier() noexcept = default;
    /* Moves leave other empty; an event-loop source attached to it
     * follows the barrier. */
    Barrier(Barrier &&other) noexcept { barrier_move(&b_, &other.b_); }
    Barrier &operator=(Barrier &&other) noexcept {
        barrier_move(&b_, &other.b_);
        return *this;
    }
    Barrier(const Barrier &) = delete;
    Barrier &operator=(const Barrier &) = delete;
    ~Barrier() { (void)barrier_destroy(&b_); }

    /* Creates a barrier, before fork(), and moves it into *ret_barrier
     * (destroying what that held). Returns 0 or -errno; *ret_barrier is
     * untouched on failure and nothing is left open. */
    [[nodiscard]] static int create(Barrier *ret_barrier) noexcept {
        ::Barrier b BARRIER_NULL;
        int r = barrier_create(&b);
        if (r < 0) return r;
        barrier_move(&ret_barrier->b_, &b);
        return 0;
    }

    /* After fork(), once on each side. Returns 0, -EBADF for an empty
     * barrier, -EBUSY if the role is already set. */
    [[nodiscard]] int set_role(BarrierRole role) noexcept {
        return barrier_set_role(&b_, static_cast<unsigned>(role));
    }

    /* See barrier_get_fds(): the fds to keep in a child, 2 or 3 of them. */
    [[nodiscard]] int get_fds(int ret[3]) const noexcept { return barrier_get_fds(&b_, ret); }

    bool place() noexcept { return barrier_place(&b_); }
    bool abort() noexcept { return barrier_abort(&b_); }
    /* An abortion with a reason, and the reason the other side sent: see
     * barrier_abort_errno() and barrier_get_abort_errno(). */
    bool abort_errno(int err) noexcept { return barrier_abort_errno(&b_, err); }
    [[nodiscard]] int get_abort_errno() const noexcept { return barrier_get_abort_errno(&b_); }
    bool wait_next() noexcept { return barrier_wait_next(&b_); }
    bool wait_abortion() noexcept { return barrier_wait_abortion(&b_); }
    bool sync_next() noexcept { return barrier_sync_next(&b_); }
    bool sync() noexcept { return barrier_sync(&b_); }
    bool place_and_sync() noexcept { return barrier_place_and_sync(&b_); }

    /* Whether the barrier holds its fds (created and not destroyed). */
    [[nodiscard]] bool valid() const noexcept { return b_.me != b_.them; }

    /* The C barrier inside, for the C functions that take one (the
     * event-loop adapters): it stays owned by this object. */
    [[nodiscard]] ::Barrier *c_barrier() noexcept { return &b_; }
    [[nodiscard]] const ::Barrier *c_barrier() const noexcept { return &b_; }

    /* The waits with a limit: 1 where the plain wait returns true, 0 where
     * it returns false, -ETIMEDOUT when the deadline passed (nothing is
     * aborted; the wait may be repeated), another -errno on failure. The
     * _for variants take any std::chrono duration (rounded up to whole
     * microseconds), the _until variants a Deadline. */
    [[nodiscard]] int wait_next_until(Deadline deadline) noexcept {
        return barrier_wait_next_timeout(&b_, deadline.remaining_usec());
    }
    [[nodiscard]] int sync_next_until(Deadline deadline) noexcept {
        return barrier_sync_next_timeout(&b_, deadline.remaining_usec());
    }
    [[nodiscard]] int sync_until(Deadline deadline) noexcept {
        return barrier_sync_timeout(&b_, deadline.remaining_usec());
    }
    [[nodiscard]] int wait_abortion_until(Deadline deadline) noexcept {
        return barrier_wait_abortion_timeout(&b_, deadline.remaining_usec());
    }
    template <class Rep, class Period>
    [[nodiscard]] int wait_next_for(std::chrono::duration<Rep, Period> timeout) noexcept {
        return barrier_wait_next_timeout(&b_, usec_from_duration(timeout));
    }
    template <class Rep, class Period>
    [[nodiscard]] int sync_next_for(std::chrono::duration<Rep, Period> timeout) noexcept {
        return barrier_sync_next_timeout(&b_, usec_from_duration(timeout));
    }
    template <class Rep, class Period>
    [[nodiscard]] int sync_for(std::chrono::duration<Rep, Period> timeout) noexcept {
        return barrier_sync_timeout(&b_, usec_from_duration(timeout));
    }
    template <class Rep, class Period>
    [[nodiscard]] int wait_abortion_for(std::chrono::duration<Rep, Period> timeout) noexcept {
        return barrier_wait_abortion_timeout(&b_, usec_from_duration(timeout));
    }

    /* See barrier_get_pollfds(). */
    [[nodiscard]] int get_pollfds(struct pollfd ret[2]) const noexcept {
        return barrier_get_pollfds(&b_, ret);
    }

    /* Across execve(): see barrier_serialize() and friends. */
    [[nodiscard]] int serialize(char *buf, size_t size) noexcept {
        return barrier_serialize(&b_, buf, size);
    }
    [[nodiscard]] int serialize_env(const char *name = nullptr) noexcept {
        return barrier_serialize_env(&b_, name);
    }
    /* Fills *ret_barrier (destroying what it held) from record; on failure
     * *ret_barrier is untouched. */
    [[nodiscard]] static int deserialize(Barrier *ret_barrier, const char *record,
                                         pid_t owner = 0) noexcept {
        ::Barrier b BARRIER_NULL;
        int r = barrier_deserialize(&b, record, owner);
        if (r < 0) return r;
        barrier_move(&ret_barrier->b_, &b);
        return 0;
    }
    [[nodiscard]] static int deserialize_env(Barrier *ret_barrier,
                                             const char *name = nullptr) noexcept {
        ::Barrier b BARRIER_NULL;
        int r = barrier_deserialize_env(&b, name);
        if (r < 0) return r;
        barrier_move(&ret_barrier->b_, &b);
        return 0;
    }

    [[nodiscard]] bool i_aborted() const noexcept { return barrier_i_aborted(&b_); }
    [[nodiscard]] bool they_aborted() const noexcept { return barrier_they_aborted(&b_); }
    [[nodiscard]] bool we_aborted() const noexcept { return barrier_we_aborted(&b_); }
    [[nodiscard]] bool is_aborted() const noexcept { return barrier_is_aborted(&b_); }

    /* Closes every fd now; the barrier is empty afterwards. */
    void destroy() noexcept { (void)barrier_destroy(&b_); }

  private:
    ::Barrier b_ = BARRIER_NULL;
};

}  // namespace ipcbarrier
