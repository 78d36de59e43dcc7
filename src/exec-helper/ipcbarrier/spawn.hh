/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#if __cplusplus < 202002L
#error "the ipcbarrier C++ headers need C++20 (-std=c++20); C code uses <ipcbarrier/spawn.h>"
#endif

/* The C++ interface to spawning (see ipcbarrier-spawn(3)): the options are
 * the C aggregate (designated initializers work in C++20 too), the result
 * an owning, move-only Process. */

#include <chrono>

#include <ipcbarrier/spawn.h>
#include <ipcbarrier/time-util.hh>

namespace ipcbarrier {

using SpawnOptions = ::IpcbSpawnOptions;
using SpawnError = ::IpcbSpawnError;
using SpawnFd = ::IpcbSpawnFd;
using SpawnRlimit = ::IpcbSpawnRlimit;

/* A started program: its pid and pidfd (and, with IPCB_SPAWN_READY, the
 * parent's side of the barrier). Destroying it closes them without
 * waiting: the process goes on, and whoever reaps children reaps it. */
class Process {
  public:
    Process() noexcept = default;
    Process(Process &&other) noexcept { take(&other); }
    Process &operator=(Process &&other) noexcept {
        if (this != &other) {
            ipcb_process_close(&p_);
            take(&other);
        }
        return *this;
    }
    Process(const Process &) = delete;
    Process &operator=(const Process &) = delete;
    ~Process() { ipcb_process_close(&p_); }

    [[nodiscard]] pid_t pid() const noexcept { return p_.pid; }
    [[nodiscard]] int pidfd() const noexcept { return p_.pidfd; }

    /* See ipcb_process_wait(): 0 once it ended and was reaped (how, in
     * *ret_info), -ETIMEDOUT, or another -errno. */
    [[nodiscard]] int wait(siginfo_t *ret_info) noexcept {
        return ipcb_process_wait(&p_, UINT64_MAX, ret_info);
    }
    [[nodiscard]] int wait_until(Deadline deadline, siginfo_t *ret_info) noexcept {
        return ipcb_process_wait(&p_, deadline.remaining_usec(), ret_info);
    }
    template <class Rep, class Period>
    [[nodiscard]] int wait_for(std::chrono::duration<Rep, Period> timeout,
                               siginfo_t *ret_info) noexcept {
        return ipcb_process_wait(&p_, usec_from_duration(timeout), ret_info);
    }

    /* See ipcb_process_kill(). */
    [[nodiscard]] int kill(int sig, bool group = false) noexcept {
        return ipcb_process_kill(&p_, sig, group);
    }

    /* With IPCB_SPAWN_READY: the parent's side of the barrier, whose
     * barrier_wait_next_timeout() returns 1 once the program is ready. */
    [[nodiscard]] ::Barrier *barrier() noexcept { return &p_.barrier; }

    /* The C process inside, for the C functions. */
    [[nodiscard]] ::IpcbProcess *c_process() noexcept { return &p_; }

    /* Starts a program (see ipcb_spawn()) into *ret (closing what it
     * held). Returns 0 or -errno, with the step in *ret_error. */
    [[nodiscard]] static int spawn(const SpawnOptions &options, Process *ret,
                                   SpawnError *ret_error = nullptr) noexcept {
        ::IpcbProcess p = IPCB_PROCESS_NULL;
        int r = ipcb_spawn(&options, &p, ret_error);
        if (r < 0) return r;
        ipcb_process_close(&ret->p_);
        ret->p_ = p;
        return 0;
    }

  private:
    /* The barrier moves with barrier_move(): an event-loop source attached
     * to it follows it, where a copy would leave the source on the old
     * address. p_ holds nothing when this is called. */
    void take(Process *other) noexcept {
        p_.pid = other->p_.pid;
        p_.pidfd = other->p_.pidfd;
        barrier_move(&p_.barrier, &other->p_.barrier);
        other->p_.pid = 0;
        other->p_.pidfd = -1;
    }

    ::IpcbProcess p_ = IPCB_PROCESS_NULL;
};

}  // namespace ipcbarrier
