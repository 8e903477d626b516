// Per-link circuit breaker: a sans-I/O state machine that decides whether a link may try to
// connect.
//
// The breaker does no I/O and reads no clock: every call that depends on time takes `now`
// from the caller, so the link passes its clock's reading and tests pass a fake one. The link
// asks allow_attempt() before each connect attempt and reports how the attempt (and the
// session that followed) went with record_success() / record_failure().
//
//            failure_threshold consecutive failures
//   closed ───────────────────────────────────────► open
//     ▲                                              │  ▲
//     │ success_threshold successes                  │  │ any failure
//     │                                reset_timeout │  │
//     └──────────────────── half_open ◄──────────────┘  │
//                               └───────────────────────┘
//
// In half_open exactly one trial attempt is allowed at a time: allow_attempt() returns true
// once and then false until that trial ends with record_success() or record_failure().
#pragma once

// Standard headers first: Asio 1.22 decides how it allocates (aligned_alloc or operator new)
// from macros that only exist once a standard header has been included.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include <asio/error.hpp>

#include "omnitak/pool/error.hpp"

namespace omnitak {

/// State of a circuit breaker.
enum class breaker_state : std::uint8_t {
    closed,     ///< normal: attempts are allowed; failures are being counted
    open,       ///< failing fast: no attempts until retry_at()
    half_open,  ///< testing: one trial attempt at a time decides between closed and open
};

/// Short lower-case name of a state ("closed", "open", "half_open") for logs and metric labels.
constexpr std::string_view to_string(breaker_state state) noexcept
{
    switch (state) {
        case breaker_state::closed:
            return "closed";
        case breaker_state::open:
            return "open";
        case breaker_state::half_open:
            return "half_open";
    }
    return "unknown";
}

/// Parameters of a circuit breaker. Validated by the breaker's constructor, which throws
/// std::invalid_argument naming the field.
struct circuit_breaker_params {
    /// Consecutive failures (no success in between) that open a closed breaker.
    /// Default 5. Range 1 .. 2^32-1; 0 is rejected (a breaker that is always open is useless).
    std::uint32_t failure_threshold = 5;

    /// How long an opened breaker refuses attempts before it lets one trial through
    /// (half_open). Default 60 s. Must be >= 0; 0 means the next allow_attempt() after the
    /// breaker opens already starts a trial (the breaker then only serialises retries).
    std::chrono::milliseconds reset_timeout{60'000};

    /// Successes in half_open needed to close the breaker again. Default 2. Range 1 ..
    /// 2^32-1; 0 is rejected. A success is whatever the link reports with record_success():
    /// typically a completed connect, then a first answered ping on that session.
    std::uint32_t success_threshold = 2;
};

/// Whether an error reported by a link counts as a breaker failure: errors that mean the link
/// (not one message) failed, see is_fatal_link_error(). Cancellation (operation_aborted, which
/// the link sees when it is being stopped) is not the server's fault and does not count.
inline bool counts_as_breaker_failure(const std::error_code& ec) noexcept
{
    if (ec == asio::error::operation_aborted || ec == errc::cancelled || ec == errc::shut_down) {
        return false;
    }
    // Standalone Asio reports socket errors in its own "asio.system" category, which is not
    // std::system_category(); a refused or reset connect is a link failure all the same.
    if (ec.category() == asio::error::get_system_category()) return true;
    return is_fatal_link_error(ec);
}

/// Circuit breaker of one link. `Clock` only supplies the time_point type (any
/// std::chrono-style clock, e.g. std::chrono::steady_clock or omnitak::testing::manual_clock);
/// the breaker never calls Clock::now().
///
/// Thread safety: distinct objects: safe. Shared objects: state(), retry_at(),
/// consecutive_failures() and times_opened() may be called from any thread at any time
/// (atomics); every other member must be serialised by the caller (in the pool, all calls
/// happen on the link's strand).
///
/// Preconditions: every attempt that allow_attempt() allowed while half_open is eventually
/// reported with record_success() or record_failure(); until then no other trial is allowed.
///
/// Exceptions: only the constructor throws (std::invalid_argument for bad params).
template <class Clock = std::chrono::steady_clock>
class basic_circuit_breaker {
public:
    using clock_type = Clock;
    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;

    explicit basic_circuit_breaker(circuit_breaker_params params = {})
        : failure_threshold_(params.failure_threshold),
          success_threshold_(params.success_threshold),
          reset_timeout_(std::chrono::duration_cast<duration>(params.reset_timeout))
    {
        if (params.failure_threshold == 0) {
            throw std::invalid_argument("circuit_breaker_params::failure_threshold must be > 0");
        }
        if (params.success_threshold == 0) {
            throw std::invalid_argument("circuit_breaker_params::success_threshold must be > 0");
        }
        if (params.reset_timeout.count() < 0) {
            throw std::invalid_argument("circuit_breaker_params::reset_timeout must be >= 0");
        }
    }

    basic_circuit_breaker(const basic_circuit_breaker&) = delete;
    basic_circuit_breaker& operator=(const basic_circuit_breaker&) = delete;

    /// Asks whether the link may start a connect attempt now.
    /// closed: true. open: false until retry_at(); from then on the breaker moves to half_open
    /// and returns true for that one trial. half_open: true only when no trial is in flight
    /// (the trial is in flight from this call until record_success/record_failure).
    bool allow_attempt(time_point now)
    {
        switch (state()) {
            case breaker_state::closed:
                return true;

            case breaker_state::open:
                if (now < retry_at()) return false;
                half_open_successes_ = 0;
                set_state(breaker_state::half_open);
                trial_in_flight_ = true;
                return true;

            case breaker_state::half_open:
                if (trial_in_flight_) return false;
                trial_in_flight_ = true;
                return true;
        }
        return false;
    }

    /// Reports a success: a completed connect, an answered ping, a stable session.
    /// closed: clears the consecutive-failure count. half_open: ends the trial and counts
    /// towards success_threshold; reaching it closes the breaker. open: ignored (a late report
    /// from before the breaker opened says nothing about the server now).
    void record_success(time_point now)
    {
        (void)now;
        switch (state()) {
            case breaker_state::closed:
                consecutive_failures_.store(0, std::memory_order_relaxed);
                return;

            case breaker_state::open:
                return;

            case breaker_state::half_open:
                trial_in_flight_ = false;
                if (++half_open_successes_ >= success_threshold_) {
                    consecutive_failures_.store(0, std::memory_order_relaxed);
                    set_state(breaker_state::closed);
                }
                return;
        }
    }

    /// Reports a failure: a connect error or timeout, a session that died right after
    /// connecting, a missed pong. closed: counts; reaching failure_threshold opens the breaker
    /// until now + reset_timeout. half_open: opens it again at once (for another full
    /// reset_timeout). open: counted, the retry time is not moved (a late report must not
    /// keep a breaker open for ever).
    void record_failure(time_point now)
    {
        const auto failures = consecutive_failures_.load(std::memory_order_relaxed) + 1;
        consecutive_failures_.store(failures, std::memory_order_relaxed);

        switch (state()) {
            case breaker_state::closed:
                if (failures >= failure_threshold_) trip(now);
                return;

            case breaker_state::open:
                return;

            case breaker_state::half_open:
                trip(now);
                return;
        }
    }

    /// Feeds the outcome of an operation: {} is a success, an error for which
    /// counts_as_breaker_failure() holds is a failure, anything else is ignored.
    void record_result(time_point now, const std::error_code& ec)
    {
        if (!ec) {
            record_success(now);
        } else if (counts_as_breaker_failure(ec)) {
            record_failure(now);
        }
    }

    /// Forgets all history and closes the breaker (e.g. after the link's endpoint changed).
    void reset() noexcept
    {
        consecutive_failures_.store(0, std::memory_order_relaxed);
        half_open_successes_ = 0;
        trial_in_flight_ = false;
        retry_at_.store(time_point{}.time_since_epoch().count(), std::memory_order_relaxed);
        set_state(breaker_state::closed);
    }

    /// Current state. Safe from any thread.
    breaker_state state() const noexcept { return state_.load(std::memory_order_acquire); }

    /// While open: when allow_attempt() will next return true. Otherwise the value from the
    /// last time the breaker opened (time_point{} if it never did). Safe from any thread.
    time_point retry_at() const noexcept
    {
        return time_point{duration{retry_at_.load(std::memory_order_relaxed)}};
    }

    /// Failures since the last success (or reset). Safe from any thread.
    std::uint32_t consecutive_failures() const noexcept
    {
        return consecutive_failures_.load(std::memory_order_relaxed);
    }

    /// How many times the breaker has opened since construction (for metrics). Safe from
    /// any thread.
    std::uint64_t times_opened() const noexcept
    {
        return times_opened_.load(std::memory_order_relaxed);
    }

    /// True while a half-open trial is in flight. Not thread-safe (caller's strand only).
    bool trial_in_flight() const noexcept { return trial_in_flight_; }

private:
    void trip(time_point now)
    {
        trial_in_flight_ = false;
        half_open_successes_ = 0;
        retry_at_.store((now + reset_timeout_).time_since_epoch().count(),
                        std::memory_order_relaxed);
        times_opened_.fetch_add(1, std::memory_order_relaxed);
        set_state(breaker_state::open);
    }

    void set_state(breaker_state s) noexcept { state_.store(s, std::memory_order_release); }

    const std::uint32_t failure_threshold_;
    const std::uint32_t success_threshold_;
    const duration reset_timeout_;

    // Written only by the owning strand; atomics so that metrics and the pool's stats can read
    // them from other threads without a lock.
    std::atomic<breaker_state> state_{breaker_state::closed};
    std::atomic<typename duration::rep> retry_at_{0};
    std::atomic<std::uint32_t> consecutive_failures_{0};
    std::atomic<std::uint64_t> times_opened_{0};

    std::uint32_t half_open_successes_ = 0;
    bool trial_in_flight_ = false;
};

/// The breaker the pool uses: steady clock.
using circuit_breaker = basic_circuit_breaker<>;

}  // namespace omnitak
