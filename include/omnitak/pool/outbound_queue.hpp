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
// A batch whose write failed goes back in at the head: push_front() returns messages the
// consumer had taken to the front of the queue, in their order and ahead of everything pushed
// since, so the link's next session writes them first. They count against the capacity like
// any queued message: the slots they left when popped may have been taken by pushers in the
// meantime, so push_front() keeps as many of them as there is room for (the oldest first) and
// hands the rest back to the caller, which counts them as dropped (the link: in
// link_stats::dropped_unsent).
//
// Memory: nothing is preallocated for the messages. moodycamel allocates blocks of
// block_size slots as producers need them and keeps them for reuse until the queue is
// destroyed, so an idle queue costs its fixed part (about 1 KiB) plus what its busiest moment
// needed: roughly capacity / block_size blocks of block_size * 16 bytes, plus a small index
// per producing thread. That is why the default traits below use small blocks and indices.
//
// Thread safety: every member may be called from any thread, on distinct and shared objects,
// except that try_pop_bulk(), push_front() and async_wait_nonempty() are meant for the single
// consumer (the link's writer, or its reader on the same strand, see link.hpp); several
// consumers are safe but compete for messages (and one
// consumer's push_front() may then interleave with another's pops).
#pragma once

#include <concurrentqueue/concurrentqueue.h>
#include <algorithm>
#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "omnitak/pool/message.hpp"

namespace omnitak {

namespace detail {

// Small blocks and indices: a link's queue is usually nearly empty, and thousands of them
// exist at once, so moodycamel's defaults (32-slot blocks, 32-entry indices, 32-entry producer
// hash: several KiB per queue once touched) would dominate the memory of an idle link.
// Everything still grows on demand.
struct outbound_queue_traits : moodycamel::ConcurrentQueueDefaultTraits {
    static const std::size_t BLOCK_SIZE = 16;
    static const std::size_t EXPLICIT_BLOCK_EMPTY_COUNTER_THRESHOLD = 16;
    static const std::size_t EXPLICIT_INITIAL_INDEX_SIZE = 4;
    static const std::size_t IMPLICIT_INITIAL_INDEX_SIZE = 4;
    static const std::size_t INITIAL_IMPLICIT_PRODUCER_HASH_SIZE = 4;
};

}  // namespace detail

class outbound_queue {
public:
    /// Slots per moodycamel block (see "Memory" above).
    static constexpr std::size_t block_size = detail::outbound_queue_traits::BLOCK_SIZE;

    /// `executor` runs the wake-up channels (waiters resume on their own executors).
    /// Allocates only the fixed part: no message slots, and the channel that wakes waiting
    /// pushers is created the first time one has to wait. Throws std::invalid_argument when
    /// capacity is 0.
    outbound_queue(asio::any_io_executor executor, std::size_t capacity)
        : capacity_(capacity), executor_(executor), queue_(0), not_empty_(executor, 1)
    {
        if (capacity == 0) throw std::invalid_argument("outbound_queue: capacity must be > 0");
    }

    outbound_queue(const outbound_queue&) = delete;
    outbound_queue& operator=(const outbound_queue&) = delete;

    /// Enqueues without waiting. Returns false (and counts a rejection) when the queue is full
    /// or closed. Cost: one CAS on the size counter, one moodycamel enqueue (lock-free; it
    /// allocates only when this producer thread needs a new block or index, i.e. rarely once
    /// warm), and, only when the consumer is waiting, one try_send on the wake-up channel (a
    /// short mutex section). Never waits.
    bool try_push(message_ptr message)
    {
        if (closed_.load(std::memory_order_acquire) || !reserve_slot()) {
            rejected_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        queue_.enqueue(std::move(message));
        wake_if_waiting();
        return true;
    }

    /// Enqueues, waiting up to max_wait for space (duration::max() waits until space or
    /// close). Returns false, counting a rejection, when it timed out or the queue closed.
    /// Cancelling the awaiting coroutine ends the wait; the message is then not queued.
    /// Cost: as try_push when there is space; otherwise one coroutine frame and a timer for
    /// the wait, and a re-check after every pop by the consumer. Runs on the caller's
    /// executor.
    asio::awaitable<bool> async_push(
        message_ptr message,
        std::chrono::steady_clock::duration max_wait = std::chrono::steady_clock::duration::max())
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
                wake_if_waiting();
                // Space may remain for another waiter: pass the wake-up on.
                if (size() < capacity_) ring_not_full();
                co_return true;
            }
            if (std::chrono::steady_clock::now() >= deadline) break;

            // Pops ring the bell only once it exists, so after creating it look once more for
            // space that a pop may have freed in between.
            doorbell& bell = not_full_bell();
            if (size() < capacity_) continue;

            std::error_code timer_ec;
            auto woken =
                co_await (bell.async_receive(asio::experimental::as_tuple(asio::use_awaitable)) ||
                          timer.async_wait(asio::redirect_error(asio::use_awaitable, timer_ec)));
            if (woken.index() == 1) break;  // deadline passed
        }
        rejected_.fetch_add(1, std::memory_order_relaxed);
        co_return false;
    }

    /// Moves up to `max` messages into `out`; returns how many. Never waits, never allocates.
    /// Cost: one bulk dequeue (per-producer sub-queues are visited in turn), one atomic
    /// subtraction and, when it took something, one try_send to wake a waiting pusher.
    std::size_t try_pop_bulk(message_ptr* out, std::size_t max)
    {
        // Messages put back by push_front() come first; the mutex is taken only while there
        // are any.
        std::size_t taken = 0;
        if (front_size_.load(std::memory_order_acquire) > 0) {
            std::lock_guard lock(front_mutex_);
            while (taken < max && !front_.empty()) {
                out[taken++] = std::move(front_.back());
                front_.pop_back();
            }
            if (front_.empty()) std::vector<message_ptr>().swap(front_);
            front_size_.store(front_.size(), std::memory_order_release);
        }
        if (taken < max) taken += queue_.try_dequeue_bulk(out + taken, max - taken);
        if (taken > 0) {
            size_.fetch_sub(taken, std::memory_order_acq_rel);
            ring_not_full();
        }
        return taken;
    }

    /// Puts `messages[0 .. n)`, taken from this queue by the consumer, back at the head of the
    /// queue in that order, ahead of every queued message: the next try_pop_bulk() returns
    /// them first. Keeps as many as there is room for now, the first ones first, and returns
    /// how many; the caller still owns messages[kept .. n). Works on a closed queue too (so
    /// that drain() accounts for them). Never waits; allocates when the head list grows.
    /// Consumer only (see the thread-safety note above).
    std::size_t push_front(message_ptr* messages, std::size_t n)
    {
        std::size_t kept = 0;
        std::size_t current = size_.load(std::memory_order_relaxed);
        do {
            kept = current >= capacity_ ? 0 : std::min(n, capacity_ - current);
            if (kept == 0) return 0;
        } while (!size_.compare_exchange_weak(current, current + kept, std::memory_order_acq_rel,
                                              std::memory_order_relaxed));
        std::lock_guard lock(front_mutex_);
        for (std::size_t i = kept; i-- > 0;)
            front_.push_back(std::move(messages[i]));
        front_size_.store(front_.size(), std::memory_order_release);
        return kept;
    }

    /// Messages that push_front() put back and that are not popped yet (part of size()).
    std::size_t front_size() const noexcept { return front_size_.load(std::memory_order_acquire); }

    /// Completes when the queue may hold a message, has been closed, or wake_consumer() was
    /// called. Wake-ups can be spurious (the caller re-checks with try_pop_bulk), never lost.
    /// Cost: completes at once when a message is visible; otherwise one channel receive.
    asio::awaitable<void> async_wait_nonempty()
    {
        // size_approx() counts only completed enqueues; size() also counts a push that has
        // reserved its slot but not enqueued yet, and waking on that would make the consumer
        // spin until the push lands. That push rings the bell when it does.
        //
        // Pushers ring only when the consumer said it is about to wait (the bell is a mutex
        // section, too dear for every push). Flag, fence, check here and enqueue, fence, flag
        // there: with both fences one side always sees the other, so no wake-up is lost.
        consumer_waiting_.store(true, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (queue_.size_approx() > 0 || front_size_.load(std::memory_order_acquire) > 0 ||
            closed_.load(std::memory_order_acquire)) {
            consumer_waiting_.store(false, std::memory_order_relaxed);
            co_return;
        }
        co_await not_empty_.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
        consumer_waiting_.store(false, std::memory_order_relaxed);
    }

    /// Wakes the consumer's async_wait_nonempty() once (or makes its next wait return at
    /// once) without queueing anything. The link uses it to hand its writer control messages
    /// and to end a session. Thread-safe, never allocates.
    void wake_consumer() { ring(not_empty_); }

    /// Pops and destroys every queued message; returns how many. For the consumer, after
    /// close(), to release the messages' memory at once.
    std::size_t drain()
    {
        std::size_t total = 0;
        message_ptr batch[block_size];
        for (std::size_t n; (n = try_pop_bulk(batch, block_size)) > 0;) {
            total += n;
            for (std::size_t i = 0; i < n; ++i)
                batch[i].reset();
        }
        return total;
    }

    /// Refuses further pushes and wakes every waiter. Queued messages can still be popped.
    /// Idempotent. A push that had passed its closed check before close() may still land.
    void close()
    {
        closed_.store(true, std::memory_order_release);
        not_empty_.close();
        std::lock_guard lock(not_full_mutex_);
        if (not_full_owner_) not_full_owner_->close();
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

    void wake_if_waiting()
    {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (consumer_waiting_.load(std::memory_order_relaxed) &&
            consumer_waiting_.exchange(false, std::memory_order_relaxed)) {
            ring(not_empty_);
        }
    }

    void ring_not_full()
    {
        if (doorbell* bell = not_full_.load(std::memory_order_acquire)) ring(*bell);
    }

    // Most queues never see a pusher wait (try_push never does), so this channel, a few
    // hundred bytes, only exists once one has.
    doorbell& not_full_bell()
    {
        std::lock_guard lock(not_full_mutex_);
        if (!not_full_owner_) {
            not_full_owner_ = std::make_unique<doorbell>(executor_, 1);
            if (closed_.load(std::memory_order_acquire)) not_full_owner_->close();
            not_full_.store(not_full_owner_.get(), std::memory_order_release);
        }
        return *not_full_owner_;
    }

    const std::size_t capacity_;
    const asio::any_io_executor executor_;
    std::atomic<std::size_t> size_{0};
    std::atomic<bool> closed_{false};
    std::atomic<bool> consumer_waiting_{false};
    std::atomic<std::uint64_t> rejected_{0};
    moodycamel::ConcurrentQueue<message_ptr, detail::outbound_queue_traits> queue_;
    doorbell not_empty_;
    std::mutex not_full_mutex_;
    std::unique_ptr<doorbell> not_full_owner_;
    std::atomic<doorbell*> not_full_{nullptr};
    // Messages put back by push_front(), the head of the queue last (so that popping is
    // pop_back). Empty and unallocated unless a write failed: a std::deque would allocate even
    // when empty, in every link.
    std::mutex front_mutex_;
    std::vector<message_ptr> front_;
    std::atomic<std::size_t> front_size_{0};
};

}  // namespace omnitak
