// Admission control for link slots: an async semaphore with a bounded priority queue.
//
// The controller holds max_permits permits (the pool's maximum number of live links). A
// request that finds none free waits in a queue ordered by priority (higher first) and then by
// arrival (first come, first served within a priority). A released permit goes straight to the
// best waiter, so try_acquire() can never jump the queue.
//
// The queue is bounded: when it holds max_queue waiters, a newcomer that ranks above the worst
// waiter (lowest priority, most recent) evicts it, and the evicted request completes with
// errc::admission_evicted; a newcomer that would itself rank lowest is refused with
// errc::admission_queue_full. A waiter gives up after queue_timeout (errc::admission_timeout).
//
// Waiters are woken on their own executor: each has a one-slot concurrent channel that
// release() fills from whatever thread it runs on, so nobody touches another coroutine's timer.
//
//     admission_permit permit = co_await admission.async_acquire(link.priority);
//     if (!permit) co_return permit.error();    // timeout, evicted, queue full, shut down...
//     slots.emplace(id, std::move(permit));      // held for the link's life, released on erase
//
// The queue timeout runs on asio::steady_timer (real time), unlike the sans-I/O parts of the
// library; tests of ordering, eviction and cancellation drive the io_context by hand instead.
#pragma once

// Standard headers first: Asio 1.22 decides how it allocates (aligned_alloc or operator new)
// from macros that only exist once a standard header has been included.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <system_error>
#include <utility>

#include <asio/awaitable.hpp>

#include "omnitak/pool/error.hpp"

namespace omnitak {

/// Parameters of an admission_controller. Validated by its constructor, which throws
/// std::invalid_argument naming the field.
struct admission_params {
    /// Permits (concurrent holders) available. Required: must be > 0.
    std::size_t max_permits = 0;

    /// Most requests that may wait at once. Default 1,000. 0 means no queue: a request that
    /// finds no free permit fails at once with errc::admission_queue_full.
    std::size_t max_queue = 1000;

    /// Longest time one request waits in the queue before it fails with
    /// errc::admission_timeout. Default 30 s. 0 means no limit (wait until granted, evicted,
    /// cancelled or closed). Must be >= 0.
    std::chrono::milliseconds queue_timeout{30'000};
};

class admission_controller;

/// Ownership of one permit of an admission_controller, or the reason there is none.
///
/// Move-only. Destroying, reset() or assigning over a permit that owns a permit returns it to
/// the controller (which hands it to the best waiter). Because a permit that nobody looks at
/// is released by its destructor, `co_await (admission.async_acquire(p) || timer.async_wait())`
/// cannot leak a permit even when both complete at once.
///
/// Object lifetimes: the controller must outlive every permit that owns one of its permits.
/// Thread safety: distinct objects: safe. Shared objects: unsafe. A permit may be destroyed on
/// any thread.
class admission_permit {
public:
    /// An empty permit (error() == {}).
    admission_permit() noexcept = default;

    /// An empty permit carrying the reason the request failed.
    explicit admission_permit(std::error_code reason) noexcept : error_(reason) {}

    /// Adopts a permit the caller already holds (from admission_controller::try_acquire()).
    admission_permit(admission_controller& owner, std::adopt_lock_t) noexcept : owner_(&owner) {}

    admission_permit(admission_permit&& other) noexcept
        : owner_(std::exchange(other.owner_, nullptr)), error_(other.error_)
    {
    }

    admission_permit& operator=(admission_permit&& other) noexcept
    {
        if (this != &other) {
            reset();
            owner_ = std::exchange(other.owner_, nullptr);
            error_ = other.error_;
        }
        return *this;
    }

    admission_permit(const admission_permit&) = delete;
    admission_permit& operator=(const admission_permit&) = delete;

    ~admission_permit() { reset(); }

    /// True when this object owns a permit.
    bool owns_permit() const noexcept { return owner_ != nullptr; }
    explicit operator bool() const noexcept { return owns_permit(); }

    /// Why the request failed: errc::admission_timeout, admission_evicted,
    /// admission_queue_full, shut_down or cancelled. {} when a permit was granted.
    std::error_code error() const noexcept { return error_; }

    /// Returns the permit to the controller now (no-op when none is owned).
    inline void reset() noexcept;

    /// Gives up ownership without returning the permit; the caller must then call
    /// admission_controller::release() itself. Returns the controller (nullptr if none).
    admission_controller* detach() noexcept { return std::exchange(owner_, nullptr); }

private:
    admission_controller* owner_ = nullptr;
    std::error_code error_;
};

/// An async semaphore with a bounded priority queue; see the file comment.
///
/// Thread safety: every member may be called from any thread on a shared object (one mutex
/// guards the queue; in_use(), waiting() and the counters are atomics and may be slightly
/// stale). async_acquire() must be awaited from a coroutine whose executor runs its handlers
/// one at a time (a strand, or an io_context run by one thread): it races a channel against a
/// timer with `||`, which Asio does not make safe on a multi-threaded executor.
///
/// Object lifetimes: the controller must outlive every coroutine suspended in async_acquire()
/// and every admission_permit that owns one of its permits; call close() and let those
/// coroutines finish before destroying it.
///
/// Exceptions: the constructor throws std::invalid_argument for bad params; async_acquire()
/// may throw std::bad_alloc; nothing else throws.
class admission_controller {
public:
    explicit admission_controller(admission_params params);
    ~admission_controller();

    admission_controller(const admission_controller&) = delete;
    admission_controller& operator=(const admission_controller&) = delete;

    /// Waits for a permit. `priority`: 0..255, higher is served first.
    ///
    /// Completes with an admission_permit that owns the permit, or carries why not:
    /// errc::admission_timeout (waited queue_timeout), errc::admission_evicted (pushed out of
    /// a full queue by a better request), errc::admission_queue_full (the queue was full and
    /// this request ranked lowest; it never waited), errc::shut_down (close() was called
    /// before or while it waited), errc::cancelled (the awaiting coroutine was cancelled).
    ///
    /// Cancellation: any cancellation that reaches the wait removes the request from the
    /// queue at once (terminal, partial and total are all honoured; which types reach it is
    /// decided by the awaiting coroutine's cancellation filter, terminal only by default, see
    /// asio::this_coro::reset_cancellation_state). If a permit was granted concurrently with
    /// the cancellation it is returned to the controller (handed to the next waiter), never
    /// leaked. A coroutine already cancelled when it calls async_acquire() gets
    /// errc::cancelled without queueing.
    ///
    /// The result is delivered on the awaiting coroutine's executor.
    asio::awaitable<admission_permit> async_acquire(std::uint8_t priority = 128);

    /// Takes a free permit without waiting; false when none is free or the controller is
    /// closed. Pair a true result with release(), or adopt it:
    /// `admission_permit p(controller, std::adopt_lock);`.
    bool try_acquire() noexcept;

    /// Returns one permit: it goes to the best waiter if there is one. Precondition: the
    /// caller holds a permit (from try_acquire() or a detached admission_permit); a release
    /// without a permit in use is ignored.
    void release() noexcept;

    /// Fails every waiter with errc::shut_down and refuses all later requests. Permits in
    /// use stay valid and may still be released. Idempotent.
    void close() noexcept;

    bool closed() const noexcept;
    /// Permits held now (granted and not yet released).
    std::size_t in_use() const noexcept;
    /// Requests waiting in the queue now.
    std::size_t waiting() const noexcept;
    std::size_t max_permits() const noexcept;
    std::size_t max_queue() const noexcept;

    /// Requests that failed, by reason, since construction (for metrics).
    std::uint64_t timed_out() const noexcept;
    std::uint64_t evicted() const noexcept;
    std::uint64_t refused_queue_full() const noexcept;
    std::uint64_t cancelled() const noexcept;

private:
    struct state;
    std::unique_ptr<state> state_;
};

inline void admission_permit::reset() noexcept
{
    if (owner_ != nullptr) std::exchange(owner_, nullptr)->release();
}

}  // namespace omnitak
