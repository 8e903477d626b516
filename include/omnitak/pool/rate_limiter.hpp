// Token-bucket rate limiting: a sans-I/O bucket and a thread-safe awaitable wrapper.
//
// basic_token_bucket holds up to `burst` tokens and gains `rate` tokens per second. Taking n
// tokens succeeds when n are available. Over any long run the bucket lets through at most
// rate * elapsed + burst tokens, and exactly that when it is asked often enough. The original
// summary's "start with N permits, refill to N every second" is the case burst = rate, except
// that tokens come back continuously instead of in one lump each second (which would let 2N
// through across a second boundary).
//
// The bucket is kept in the "theoretical arrival time" form (GCRA): one time point says when
// the bucket will be full again. Integer nanoseconds, no accumulated floating-point drift.
//
// rate_limiter wraps a steady-clock bucket in a mutex and adds async_acquire(), which waits
// with an asio::steady_timer on the caller's executor. The system uses it for the
// application's submit() rate.
//
// basic_fair_token_bucket serves many waiters first come, first served, without polling: only
// the waiter at the head of its line waits for a token (on a timer of its own); the others
// sleep until they are woken. The pool shares one between all its links for connect attempts
// (pool_params::connect_rate), where thousands of links may want a token at once.
#pragma once

// Standard headers first: Asio 1.22 decides how it allocates (aligned_alloc or operator new)
// from macros that only exist once a standard header has been included.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <asio/awaitable.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "omnitak/pool/error.hpp"

namespace omnitak {

/// Parameters of a token bucket. Validated at construction (std::invalid_argument naming the
/// field).
struct token_bucket_params {
    /// Tokens added per second, continuously. Default 100. Range (0, 1e9]; 0 and negative
    /// values are rejected (use no limiter at all to mean "unlimited").
    double rate = 100.0;

    /// Bucket size: the most tokens that can be taken at once after a quiet period. A fresh
    /// bucket starts full. Default 100 (= rate: the "N per second" behaviour). Range >= 1.
    double burst = 100.0;
};

/// A token bucket. `Clock` only supplies the time_point type; the bucket never calls
/// Clock::now(), every member takes `now`. Readings must not go backwards by much: a reading
/// earlier than a previous one is treated as that previous one.
///
/// Thread safety: distinct objects: safe. Shared objects: unsafe (use rate_limiter, or a
/// strand).
///
/// Complexity: O(1), no allocation. Exceptions: only the constructor throws.
template <class Clock = std::chrono::steady_clock>
class basic_token_bucket {
public:
    using clock_type = Clock;
    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;

    explicit basic_token_bucket(token_bucket_params params = {})
        : rate_(params.rate), burst_(params.burst)
    {
        if (!(params.rate > 0.0) || params.rate > 1e9) {
            throw std::invalid_argument("token_bucket_params::rate must be in (0, 1e9]");
        }
        if (!(params.burst >= 1.0) || !std::isfinite(params.burst)) {
            throw std::invalid_argument("token_bucket_params::burst must be >= 1");
        }
        // Nanoseconds per token, and the span a full bucket covers.
        interval_ns_ = 1e9 / rate_;
        capacity_ns_ = static_cast<std::int64_t>(std::llround(burst_ * interval_ns_));
    }

    /// Takes n tokens if they are all available at `now`; otherwise takes none.
    /// n = 0 always succeeds. n > burst() never does.
    bool try_acquire(time_point now, double n = 1.0)
    {
        if (n <= 0.0) return true;
        const std::int64_t t = to_ns(now);
        const std::int64_t base = std::max(full_at_ns(t), t);
        const std::int64_t next = base + cost_ns(n);
        if (next - t > capacity_ns_) return false;
        full_at_ns_ = next;
        started_ = true;
        return true;
    }

    /// How long until n tokens are available: zero when available now, duration::max() when
    /// n > burst() (never). Does not take anything.
    duration time_until_available(time_point now, double n = 1.0) const
    {
        if (n <= 0.0) return duration::zero();
        if (n > burst_) return duration::max();
        const std::int64_t t = to_ns(now);
        const std::int64_t base = std::max(full_at_ns(t), t);
        const std::int64_t wait_ns = base + cost_ns(n) - t - capacity_ns_;
        if (wait_ns <= 0) return duration::zero();
        // Round up so that waiting exactly this long is always enough.
        const auto wait = std::chrono::ceil<duration>(std::chrono::nanoseconds(wait_ns));
        return wait;
    }

    /// Tokens available at `now` (fractional).
    double available(time_point now) const
    {
        const std::int64_t t = to_ns(now);
        const std::int64_t used_ns = std::max<std::int64_t>(full_at_ns(t) - t, 0);
        return std::max(0.0, static_cast<double>(capacity_ns_ - used_ns) / interval_ns_);
    }

    double rate() const noexcept { return rate_; }
    double burst() const noexcept { return burst_; }

private:
    static std::int64_t to_ns(time_point t)
    {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    }

    // A fresh bucket is full whatever the clock's epoch: treat it as full since forever.
    std::int64_t full_at_ns(std::int64_t now_ns) const { return started_ ? full_at_ns_ : now_ns; }

    std::int64_t cost_ns(double n) const
    {
        return static_cast<std::int64_t>(std::llround(n * interval_ns_));
    }

    double rate_;
    double burst_;
    double interval_ns_ = 0;
    std::int64_t capacity_ns_ = 0;
    // When the bucket will be full again if nothing more is taken ("theoretical arrival time").
    std::int64_t full_at_ns_ = 0;
    bool started_ = false;
};

using token_bucket = basic_token_bucket<>;

/// A thread-safe token bucket on the steady clock with an awaitable acquire.
///
/// Thread safety: every member may be called from any thread on a shared object.
/// Waiters are not served in order: each one sleeps until the bucket should have its tokens
/// and then competes for them, so under contention a waiter may wait longer than needed (it
/// is never woken early for nothing more than one timer expiry per shortage).
class rate_limiter {
public:
    using clock_type = std::chrono::steady_clock;

    explicit rate_limiter(token_bucket_params params = {}) : bucket_(params) {}

    rate_limiter(const rate_limiter&) = delete;
    rate_limiter& operator=(const rate_limiter&) = delete;

    /// Takes n tokens now or returns false. Never waits.
    bool try_acquire(double n = 1.0)
    {
        std::lock_guard lock(mutex_);
        return bucket_.try_acquire(clock_type::now(), n);
    }

    /// Takes n tokens, waiting up to max_wait for them on the calling coroutine's executor.
    /// Returns {} when taken; errc::rate_limited when they would not be available in time
    /// (checked up front: the wait is not started when it could not succeed, and n > burst
    /// fails at once); asio::error::operation_aborted when the awaiting coroutine was
    /// cancelled (every type that passes the coroutine's cancellation filter; nothing is
    /// taken then).
    asio::awaitable<std::error_code> async_acquire(
        double n = 1.0, clock_type::duration max_wait = clock_type::duration::max())
    {
        const auto start = clock_type::now();
        const auto deadline = max_wait >= clock_type::time_point::max() - start
                                  ? clock_type::time_point::max()
                                  : start + max_wait;
        asio::steady_timer timer(co_await asio::this_coro::executor);

        for (;;) {
            // Take the tokens or learn how long until they could be there.
            const auto now = clock_type::now();
            clock_type::duration wait;
            {
                std::lock_guard lock(mutex_);
                if (bucket_.try_acquire(now, n)) co_return std::error_code{};
                wait = bucket_.time_until_available(now, n);
            }
            if (wait == clock_type::duration::max() || wait > deadline - now) {
                co_return make_error_code(errc::rate_limited);
            }

            std::error_code ec;
            timer.expires_after(wait);
            co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return ec;
        }
    }

    /// Tokens available now.
    double available() const
    {
        std::lock_guard lock(mutex_);
        return bucket_.available(clock_type::now());
    }

    double rate() const noexcept { return bucket_.rate(); }
    double burst() const noexcept { return bucket_.burst(); }

private:
    mutable std::mutex mutex_;
    basic_token_bucket<clock_type> bucket_;
};

/// A token bucket shared by many waiters and served in arrival order: a line (FIFO) in front
/// of a basic_token_bucket, one token per waiter.
///
/// Sans-I/O: it reads no clock (every member takes `now`; `Clock` supplies the time_point
/// type) and starts no timer. A waiter that does not get its token at once from join() is
/// given a ticket and drives the wait itself:
///
///     ticket t = line.join(now, wake);          // 0: token taken, go
///     while (t != 0) {
///         auto d = line.poll(t, now);           // zero: token taken, go
///         if (d == duration::zero()) break;
///         sleep for d (duration::max(): until woken), or until wake() is called
///     }                                         // on giving up: line.leave(t)
///
/// Only the waiter at the head of the line is ever told a finite wait; the others get
/// duration::max() and are woken (their `wake` called once) when they reach the head, so a
/// line of ten thousand waiters costs one timer expiry per token, not ten thousand. A waiter
/// that leaves passes the head on at once, and its place costs no token.
///
/// Thread safety: every member may be called from any thread on a shared object (one mutex,
/// held for O(log n) work). `wake` callbacks are called without the lock held, on the thread
/// that called poll(), leave() or join() and moved the line on; they must be cheap and must
/// not block (typically: post a wake-up to the waiter's executor). They may call back into the
/// line.
///
/// Exceptions: the constructor throws std::invalid_argument for bad params (as
/// basic_token_bucket); join() may throw std::bad_alloc.
template <class Clock = std::chrono::steady_clock>
class basic_fair_token_bucket {
public:
    using clock_type = Clock;
    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;
    /// A place in the line; 0 means "no ticket" (the token was taken at once).
    using ticket = std::uint64_t;

    explicit basic_fair_token_bucket(token_bucket_params params = {}) : bucket_(params) {}

    basic_fair_token_bucket(const basic_fair_token_bucket&) = delete;
    basic_fair_token_bucket& operator=(const basic_fair_token_bucket&) = delete;

    /// Takes a token at once when nobody is waiting and one is available (or after close()),
    /// returning 0. Otherwise joins the end of the line and returns the ticket to poll() with;
    /// `wake` is called once when the ticket becomes the head of the line behind others.
    ticket join(time_point now, std::function<void()> wake)
    {
        std::lock_guard lock(mutex_);
        if (closed_ || (line_.empty() && bucket_.try_acquire(now))) return 0;
        const ticket t = ++last_ticket_;
        line_.emplace(t, std::move(wake));
        return t;
    }

    /// For a ticket from join(): takes the token and returns duration::zero() when `t` is at
    /// the head of the line and a token is available (the ticket is then used up, and the next
    /// waiter is woken); else how long to wait before polling again: the time until the next
    /// token when `t` is at the head, duration::max() (wait to be woken) when it is not. A
    /// ticket that is not in the line (used up, left, or emptied by close()) returns zero.
    duration poll(ticket t, time_point now)
    {
        std::function<void()> wake_next;
        {
            std::lock_guard lock(mutex_);
            const auto it = line_.find(t);
            if (it == line_.end()) return duration::zero();
            if (it != line_.begin()) return duration::max();
            if (!bucket_.try_acquire(now)) return bucket_.time_until_available(now);
            line_.erase(it);
            if (!line_.empty()) wake_next = line_.begin()->second;
        }
        if (wake_next) wake_next();
        return duration::zero();
    }

    /// Gives up a ticket without a token. When it was the head of the line, the next waiter is
    /// woken. No-op for a ticket that is not in the line (and for 0).
    void leave(ticket t)
    {
        std::function<void()> wake_next;
        {
            std::lock_guard lock(mutex_);
            const auto it = line_.find(t);
            if (it == line_.end()) return;
            const bool was_head = it == line_.begin();
            line_.erase(it);
            if (was_head && !line_.empty()) wake_next = line_.begin()->second;
        }
        if (wake_next) wake_next();
    }

    /// Lets everyone through from now on: empties the line without waking anyone (poll()
    /// then returns zero for every ticket), and join() returns 0 at once. For shutdown, when
    /// the waiters are being stopped anyway and must not wake one another. Idempotent.
    void close()
    {
        std::map<ticket, std::function<void()>> dropped;
        {
            std::lock_guard lock(mutex_);
            closed_ = true;
            dropped.swap(line_);
        }
        // The callbacks (and what they hold) are destroyed here, outside the lock.
    }

    /// Waiters in the line now.
    std::size_t waiting() const
    {
        std::lock_guard lock(mutex_);
        return line_.size();
    }

    double rate() const noexcept { return bucket_.rate(); }
    double burst() const noexcept { return bucket_.burst(); }

private:
    mutable std::mutex mutex_;
    basic_token_bucket<Clock> bucket_;
    // Tickets grow monotonically, so the map's order is arrival order; begin() is the head.
    std::map<ticket, std::function<void()>> line_;
    ticket last_ticket_ = 0;
    bool closed_ = false;
};

/// The fair bucket the pool uses: steady clock.
using fair_token_bucket = basic_fair_token_bucket<>;

}  // namespace omnitak
