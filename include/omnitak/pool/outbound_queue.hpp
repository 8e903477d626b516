// The bounded multi-producer queue in front of each link's writer.
//
// moodycamel::ConcurrentQueue is unbounded and FIFO only per producer. "Bounded" is this
// wrapper's promise: a slot is reserved on an atomic counter before anything is enqueued, so
// the queue never holds more than capacity() messages. Messages from one producer thread come
// out in the order it pushed them; messages from different producers may interleave.
//
// Across a reconnect the queue belongs to the link, not to the TCP session: queued messages
// stay (up to capacity) and are written once the link is connected again. Pushes that find the
// queue full are refused and counted in rejected().
//
// Thread safety: every member may be called from any thread, on distinct and shared objects,
// except that try_pop_bulk() and async_wait_nonempty() are meant for the single consumer
// (the link's writer); several consumers are safe but compete for messages.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <chrono>
#include <concurrentqueue/concurrentqueue.h>
#include <cstddef>
#include <stdexcept>

#include "omnitak/pool/message.hpp"

namespace omnitak {

class outbound_queue {
public:
    /// Throws std::invalid_argument when capacity is 0.
    outbound_queue(asio::any_io_executor executor, std::size_t capacity)
        : capacity_(capacity),
          queue_(capacity < 32 ? 32 : capacity),
          not_empty_(executor, 1),
          not_full_(executor, 1)
    {
        if (capacity == 0) throw std::invalid_argument("outbound_queue: capacity must be > 0");
    }

    outbound_queue(const outbound_queue&) = delete;
    outbound_queue& operator=(const outbound_queue&) = delete;

    /// Enqueues without waiting. Returns false (and counts a rejection) when the queue is full
    /// or closed. Lock-free; may allocate a block inside moodycamel on first use of a slot.
    bool try_push(message_ptr message)
    {
        if (closed_.load(std::memory_order_acquire) || !reserve_slot()) {
            rejected_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        queue_.enqueue(std::move(message));
        ring(not_empty_);
        return true;
    }

    /// Enqueues, waiting up to max_wait for space (duration::max() waits until space or
    /// close). Returns false, counting a rejection, when it timed out or the queue closed.
    /// Cancelling the awaiting coroutine ends the wait; the message is then not queued.
    asio::awaitable<bool> async_push(message_ptr message,
                                     std::chrono::steady_clock::duration max_wait =
                                         std::chrono::steady_clock::duration::max())
    {
        using namespace asio::experimental::awaitable_operators;
        const auto deadline = max_wait == std::chrono::steady_clock::duration::max()
                                  ? std::chrono::steady_clock::time_point::max()
                                  : std::chrono::steady_clock::now() + max_wait;
        asio::steady_timer timer(co_await asio::this_coro::executor, deadline);

        for (;;) {
            if (closed_.load(std::memory_order_acquire)) break;
            if (reserve_slot()) {
                queue_.enqueue(std::move(message));
                ring(not_empty_);
                // Space may remain for another waiter: pass the wake-up on.
                if (size() < capacity_) ring(not_full_);
                co_return true;
            }
            if (std::chrono::steady_clock::now() >= deadline) break;

            std::error_code timer_ec;
            auto woken = co_await (
                not_full_.async_receive(asio::experimental::as_tuple(asio::use_awaitable)) ||
                timer.async_wait(asio::redirect_error(asio::use_awaitable, timer_ec)));
            if (woken.index() == 1) break;  // deadline passed
        }
        rejected_.fetch_add(1, std::memory_order_relaxed);
        co_return false;
    }

    /// Moves up to `max` messages into `out`; returns how many. Never waits, never allocates.
    std::size_t try_pop_bulk(message_ptr* out, std::size_t max)
    {
        const std::size_t taken = queue_.try_dequeue_bulk(out, max);
        if (taken > 0) {
            size_.fetch_sub(taken, std::memory_order_acq_rel);
            ring(not_full_);
        }
        return taken;
    }

    /// Completes when the queue may hold a message or has been closed. Wake-ups can be
    /// spurious (the caller re-checks with try_pop_bulk), never lost.
    asio::awaitable<void> async_wait_nonempty()
    {
        if (size() > 0 || closed_.load(std::memory_order_acquire)) co_return;
        co_await not_empty_.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
    }

    /// Refuses further pushes and wakes every waiter. Queued messages can still be popped.
    void close()
    {
        closed_.store(true, std::memory_order_release);
        not_empty_.close();
        not_full_.close();
    }

    bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
    /// Messages queued now (exact for reservations; a push in progress counts).
    std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }
    std::size_t capacity() const noexcept { return capacity_; }
    /// Pushes refused because the queue was full, closed, or a wait timed out.
    std::uint64_t rejected() const noexcept { return rejected_.load(std::memory_order_relaxed); }

private:
    using doorbell = asio::experimental::concurrent_channel<void(std::error_code, bool)>;

    bool reserve_slot() noexcept
    {
        std::size_t current = size_.load(std::memory_order_relaxed);
        do {
            if (current >= capacity_) return false;
        } while (!size_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel,
                                              std::memory_order_relaxed));
        return true;
    }

    // A doorbell holds at most one pending ring; ringing a rung bell is a no-op. That is
    // enough: the waiter re-checks the queue after every wake-up. The (error_code, bool)
    // signature works around Asio 1.22's ambiguous channel_traits for void(error_code).
    static void ring(doorbell& bell) { bell.try_send(std::error_code{}, true); }

    const std::size_t capacity_;
    std::atomic<std::size_t> size_{0};
    std::atomic<bool> closed_{false};
    std::atomic<std::uint64_t> rejected_{0};
    moodycamel::ConcurrentQueue<message_ptr> queue_;
    doorbell not_empty_;
    doorbell not_full_;
};

}  // namespace omnitak
