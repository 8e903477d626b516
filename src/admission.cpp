// Admission controller: queue bookkeeping under one mutex, waiters woken through their own
// one-slot channels.
//
// Invariants (under the mutex):
//   - in_use <= max_permits;
//   - a waiter is queued only while no permit is free: release() hands a permit to the best
//     waiter instead of freeing it, so "free permit and non-empty queue" never holds;
//   - a waiter leaves the queue exactly once, by grant, eviction, close(), timeout or
//     cancellation, and whoever removes it decides its result.
#include "omnitak/pool/admission.hpp"

#include <asio/cancellation_type.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <cassert>
#include <set>
#include <stdexcept>

namespace omnitak {

namespace {

// One request waiting in the queue. Shared by the queue and the waiting coroutine, so a
// grant can fill the channel while the coroutine is being cancelled on another thread.
struct waiter {
    // void(error_code, int) because Asio 1.22 cannot build a channel of void(error_code).
    using channel = asio::experimental::concurrent_channel<void(std::error_code, int)>;

    waiter(const asio::any_io_executor& executor, std::uint8_t prio, std::uint64_t seq)
        : wake(executor, 1), priority(prio), sequence(seq)
    {
    }

    channel wake;
    const std::uint8_t priority;
    const std::uint64_t sequence;

    // Guarded by the controller's mutex.
    bool queued = true;
    std::error_code result;  // valid once !queued: {} = granted a permit
};

using waiter_ptr = std::shared_ptr<waiter>;

// Best first: higher priority, then earlier arrival. begin() is served next, prev(end()) is
// evicted first.
struct serve_order {
    bool operator()(const waiter_ptr& a, const waiter_ptr& b) const noexcept
    {
        if (a->priority != b->priority) return a->priority > b->priority;
        return a->sequence < b->sequence;
    }
};

}  // namespace

struct admission_controller::state {
    explicit state(const admission_params& p)
        : max_permits(p.max_permits), max_queue(p.max_queue), queue_timeout(p.queue_timeout)
    {
    }

    // Takes `w` out of the queue with `result` and wakes its coroutine. Caller holds mutex.
    // `w` is taken by value: the caller usually passes the queue's own element, which erase()
    // destroys.
    void finish_locked(waiter_ptr w, std::error_code result)
    {
        queue.erase(w);
        w->queued = false;
        w->result = result;
        waiting.store(queue.size(), std::memory_order_relaxed);
        // try_send never runs the receiver inline (the completion is posted to the waiter's
        // executor), so calling it under our mutex cannot re-enter the controller.
        w->wake.try_send(std::error_code{}, 0);
    }

    // Returns one permit: to the best waiter if any, else to the free pool. Caller holds mutex.
    void release_locked()
    {
        if (!queue.empty()) {
            finish_locked(*queue.begin(), std::error_code{});
            return;
        }
        const auto used = in_use.load(std::memory_order_relaxed);
        assert(used > 0 && "admission_controller::release without a permit in use");
        if (used > 0) in_use.store(used - 1, std::memory_order_relaxed);
    }

    // The waiting coroutine is done with `w` (result read, or its frame is being destroyed):
    // removes it if still queued and hands back a permit granted to it that nobody will use.
    void abandon(const waiter_ptr& w)
    {
        std::lock_guard lock(mutex);
        if (w->queued) {
            queue.erase(w);
            w->queued = false;
            w->result = make_error_code(errc::cancelled);
            waiting.store(queue.size(), std::memory_order_relaxed);
        } else if (!w->result) {
            release_locked();
        }
    }

    const std::size_t max_permits;
    const std::size_t max_queue;
    const std::chrono::milliseconds queue_timeout;

    mutable std::mutex mutex;
    std::set<waiter_ptr, serve_order> queue;
    std::uint64_t next_sequence = 0;
    bool closed = false;

    // Written under the mutex, read without it.
    std::atomic<std::size_t> in_use{0};
    std::atomic<std::size_t> waiting{0};
    std::atomic<bool> closed_flag{false};
    std::atomic<std::uint64_t> timed_out{0};
    std::atomic<std::uint64_t> evicted{0};
    std::atomic<std::uint64_t> refused_queue_full{0};
    std::atomic<std::uint64_t> cancelled{0};
};

admission_controller::admission_controller(admission_params params)
{
    if (params.max_permits == 0) {
        throw std::invalid_argument("admission_params::max_permits must be > 0");
    }
    if (params.queue_timeout.count() < 0) {
        throw std::invalid_argument("admission_params::queue_timeout must be >= 0");
    }
    state_ = std::make_unique<state>(params);
}

admission_controller::~admission_controller() = default;

asio::awaitable<admission_permit> admission_controller::async_acquire(std::uint8_t priority)
{
    using namespace asio::experimental::awaitable_operators;
    state& s = *state_;
    const auto executor = co_await asio::this_coro::executor;
    const auto cancel_state = co_await asio::this_coro::cancellation_state;

    // A coroutine that is already cancelled must not queue: its next co_await would throw
    // before the wait even started.
    if (cancel_state.cancelled() != asio::cancellation_type::none) {
        s.cancelled.fetch_add(1, std::memory_order_relaxed);
        co_return admission_permit(make_error_code(errc::cancelled));
    }

    // Step 1: take a free permit, or join the queue (evicting the worst waiter if full).
    waiter_ptr self;
    {
        std::lock_guard lock(s.mutex);
        if (s.closed) co_return admission_permit(make_error_code(errc::shut_down));

        if (s.in_use.load(std::memory_order_relaxed) < s.max_permits) {
            s.in_use.fetch_add(1, std::memory_order_relaxed);
            co_return admission_permit(*this, std::adopt_lock);
        }

        self = std::make_shared<waiter>(executor, priority, s.next_sequence++);
        if (s.queue.size() >= s.max_queue) {
            // The newcomer arrived last, so on equal priority it ranks below the worst waiter.
            if (s.max_queue == 0 || !serve_order{}(self, *std::prev(s.queue.end()))) {
                s.refused_queue_full.fetch_add(1, std::memory_order_relaxed);
                co_return admission_permit(make_error_code(errc::admission_queue_full));
            }
            s.finish_locked(*std::prev(s.queue.end()), make_error_code(errc::admission_evicted));
            s.evicted.fetch_add(1, std::memory_order_relaxed);
        }
        s.queue.insert(self);
        s.waiting.store(s.queue.size(), std::memory_order_relaxed);
    }

    // From here until the result is read, a destroyed frame or an exception must not leave
    // the waiter queued or a granted permit orphaned.
    struct guard {
        state& s;
        const waiter_ptr& w;
        bool armed = true;
        ~guard()
        {
            if (armed) s.abandon(w);
        }
    } cleanup{s, self};

    // Step 2: wait for a grant, eviction or close (the channel), the queue timeout, or
    // cancellation. Which of these finished first is only a hint: the outcome is decided under
    // the mutex below, because a grant may race with the timer or the cancellation.
    if (s.queue_timeout.count() > 0) {
        asio::steady_timer timer(executor, s.queue_timeout);
        std::error_code timer_ec;
        co_await (self->wake.async_receive(asio::experimental::as_tuple(asio::use_awaitable)) ||
                  timer.async_wait(asio::redirect_error(asio::use_awaitable, timer_ec)));
    } else {
        co_await self->wake.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
    }
    const bool was_cancelled = cancel_state.cancelled() != asio::cancellation_type::none;

    // Step 3: settle.
    std::lock_guard lock(s.mutex);
    cleanup.armed = false;
    if (self->queued) {
        // Nobody dequeued us: the timer fired or we were cancelled.
        s.queue.erase(self);
        self->queued = false;
        s.waiting.store(s.queue.size(), std::memory_order_relaxed);
        if (was_cancelled) {
            s.cancelled.fetch_add(1, std::memory_order_relaxed);
            co_return admission_permit(make_error_code(errc::cancelled));
        }
        s.timed_out.fetch_add(1, std::memory_order_relaxed);
        co_return admission_permit(make_error_code(errc::admission_timeout));
    }
    if (self->result) co_return admission_permit(self->result);

    // Granted. A caller that was cancelled meanwhile will not use it: pass it on.
    if (was_cancelled) {
        s.release_locked();
        s.cancelled.fetch_add(1, std::memory_order_relaxed);
        co_return admission_permit(make_error_code(errc::cancelled));
    }
    co_return admission_permit(*this, std::adopt_lock);
}

bool admission_controller::try_acquire() noexcept
{
    state& s = *state_;
    std::lock_guard lock(s.mutex);
    if (s.closed || s.in_use.load(std::memory_order_relaxed) >= s.max_permits) return false;
    s.in_use.fetch_add(1, std::memory_order_relaxed);
    return true;
}

void admission_controller::release() noexcept
{
    state& s = *state_;
    std::lock_guard lock(s.mutex);
    s.release_locked();
}

void admission_controller::close() noexcept
{
    state& s = *state_;
    std::lock_guard lock(s.mutex);
    s.closed = true;
    s.closed_flag.store(true, std::memory_order_release);
    while (!s.queue.empty())
        s.finish_locked(*s.queue.begin(), make_error_code(errc::shut_down));
}

bool admission_controller::closed() const noexcept
{
    return state_->closed_flag.load(std::memory_order_acquire);
}

std::size_t admission_controller::in_use() const noexcept
{
    return state_->in_use.load(std::memory_order_relaxed);
}

std::size_t admission_controller::waiting() const noexcept
{
    return state_->waiting.load(std::memory_order_relaxed);
}

std::size_t admission_controller::max_permits() const noexcept
{
    return state_->max_permits;
}

std::size_t admission_controller::max_queue() const noexcept
{
    return state_->max_queue;
}

std::uint64_t admission_controller::timed_out() const noexcept
{
    return state_->timed_out.load(std::memory_order_relaxed);
}

std::uint64_t admission_controller::evicted() const noexcept
{
    return state_->evicted.load(std::memory_order_relaxed);
}

std::uint64_t admission_controller::refused_queue_full() const noexcept
{
    return state_->refused_queue_full.load(std::memory_order_relaxed);
}

std::uint64_t admission_controller::cancelled() const noexcept
{
    return state_->cancelled.load(std::memory_order_relaxed);
}

}  // namespace omnitak
