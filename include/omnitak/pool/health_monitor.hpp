// Per-link liveness tracking: a sans-I/O state machine fed by the link.
//
// Health is measured on the wire. The link sends a t-x-c-t ping every ping_interval and
// expects a t-x-c-t-r pong, or any other inbound traffic, within pong_timeout. Independently
// of pings, a link that has been silent for degraded_after is degraded and one silent for
// unhealthy_after is unhealthy. A missed pong deadline makes it unhealthy at once.
//
// The tracker does no I/O and reads no clock. The link drives it:
//
//     tracker.on_connected(now);                  // every new session
//     ...                                         // reader: tracker.on_inbound(now) per event
//     for (;;) {                                  // health coroutine on the link's strand
//         timer.expires_at(tracker.next_wakeup());
//         co_await timer.async_wait(...);         // also woken early: harmless
//         if (tracker.ping_due(now)) { send make_ping(...); tracker.on_ping_sent(now); }
//         if (tracker.evaluate(now) == health_status::unhealthy && params.auto_reconnect)
//             close the session, feed breaker.record_failure(now) (errc::pong_timeout)
//     }
//
// Inbound traffic only moves deadlines later, so a wake-up computed before it arrived is at
// worst early, never late: evaluate() then finds nothing to change.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace omnitak {

/// Liveness of one link.
enum class health_status : std::uint8_t {
    healthy,    ///< traffic or a pong arrived recently
    degraded,   ///< silent longer than degraded_after
    unhealthy,  ///< silent longer than unhealthy_after, or a pong deadline was missed
};

/// Short lower-case name ("healthy", "degraded", "unhealthy") for logs and metric labels.
constexpr std::string_view to_string(health_status status) noexcept
{
    switch (status) {
        case health_status::healthy:
            return "healthy";
        case health_status::degraded:
            return "degraded";
        case health_status::unhealthy:
            return "unhealthy";
    }
    return "unknown";
}

/// Parameters of liveness tracking. Validated by the tracker's constructor, which throws
/// std::invalid_argument naming the field. Durations must be >= 0.
struct health_params {
    /// false: no pings are due and the status is always healthy. Default true.
    bool enabled = true;

    /// Send a t-x-c-t ping this long after the previous one (or after connecting).
    /// Default 15 s. 0 disables pings (silence thresholds still apply).
    std::chrono::milliseconds ping_interval{15'000};

    /// After a ping, a pong or any other inbound traffic must arrive within this long, else
    /// the link is unhealthy. Measured from the oldest unanswered ping. Default 10 s.
    /// 0 disables the pong deadline.
    std::chrono::milliseconds pong_timeout{10'000};

    /// No inbound traffic for this long -> degraded. Default 20 s. 0 disables the degraded
    /// stage.
    std::chrono::milliseconds degraded_after{20'000};

    /// No inbound traffic for this long -> unhealthy. Default 45 s. 0 disables the silence
    /// rule (the pong deadline still applies). When both are non-zero it must be
    /// >= degraded_after.
    std::chrono::milliseconds unhealthy_after{45'000};

    /// Close unhealthy links and reconnect them through the circuit breaker. Default true.
    /// Read by the link, not by the tracker.
    bool auto_reconnect = true;
};

/// Liveness tracker of one link. `Clock` only supplies the time_point type; the tracker never
/// calls Clock::now().
///
/// Thread safety: distinct objects: safe. Shared objects: status() and last_change() may be
/// called from any thread at any time (atomics); every other member must be serialised by the
/// caller (in the pool: the link's strand, where both its reader and its health coroutine run).
///
/// Before the first on_connected() (and after on_disconnected()) the tracker is idle: no ping
/// is due, next_wakeup() is time_point::max() and evaluate() returns the status unchanged.
///
/// Exceptions: only the constructor throws (std::invalid_argument for bad params).
template <class Clock = std::chrono::steady_clock>
class basic_health_tracker {
public:
    using clock_type = Clock;
    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;

    explicit basic_health_tracker(health_params params = {})
        : enabled_(params.enabled),
          ping_interval_(to_duration(params.ping_interval, "ping_interval")),
          pong_timeout_(to_duration(params.pong_timeout, "pong_timeout")),
          degraded_after_(to_duration(params.degraded_after, "degraded_after")),
          unhealthy_after_(to_duration(params.unhealthy_after, "unhealthy_after"))
    {
        if (params.degraded_after.count() > 0 && params.unhealthy_after.count() > 0 &&
            params.unhealthy_after < params.degraded_after) {
            throw std::invalid_argument(
                "health_params::unhealthy_after must be >= health_params::degraded_after");
        }
    }

    basic_health_tracker(const basic_health_tracker&) = delete;
    basic_health_tracker& operator=(const basic_health_tracker&) = delete;

    /// A new session is up: the silence clock and the ping schedule restart, any outstanding
    /// ping is forgotten, the status becomes healthy.
    void on_connected(time_point now)
    {
        connected_ = true;
        last_inbound_ = now;
        last_ping_ = now;
        ping_outstanding_ = false;
        set_status(health_status::healthy, now);
    }

    /// The session ended: the tracker goes idle until the next on_connected(). The status is
    /// left as it was (the link's own state says it is disconnected).
    void on_disconnected() noexcept
    {
        connected_ = false;
        ping_outstanding_ = false;
    }

    /// Any inbound event (a pong included) proves the peer alive: answers outstanding pings
    /// and, if the link was degraded or unhealthy, makes it healthy again. Cheap: called once
    /// per inbound event.
    void on_inbound(time_point now)
    {
        last_inbound_ = now;
        ping_outstanding_ = false;
        if (status_.load(std::memory_order_relaxed) != health_status::healthy) {
            set_status(health_status::healthy, now);
        }
    }

    /// A ping was written. Starts the pong deadline unless an older ping is still unanswered
    /// (the deadline counts from the oldest one).
    void on_ping_sent(time_point now)
    {
        last_ping_ = now;
        if (!ping_outstanding_) {
            ping_outstanding_ = true;
            pong_deadline_ = now + pong_timeout_;
        }
    }

    /// True when the link should send a ping now.
    bool ping_due(time_point now) const { return pinging() && now >= last_ping_ + ping_interval_; }

    /// The earliest time at which ping_due() or evaluate() may give a different answer;
    /// time_point::max() when nothing is scheduled (idle, or disabled).
    time_point next_wakeup() const
    {
        time_point next = time_point::max();
        if (!active()) return next;

        const auto current = status();
        if (pinging()) next = std::min(next, last_ping_ + ping_interval_);
        if (current != health_status::unhealthy) {
            if (pong_deadline_armed()) next = std::min(next, pong_deadline_);
            if (unhealthy_after_.count() > 0) {
                next = std::min(next, last_inbound_ + unhealthy_after_);
            }
        }
        if (current == health_status::healthy && degraded_after_.count() > 0) {
            next = std::min(next, last_inbound_ + degraded_after_);
        }
        return next;
    }

    /// Recomputes the status from the time elapsed since the last inbound traffic and the
    /// pong deadline, records a change (last_change() = now) and returns it.
    health_status evaluate(time_point now)
    {
        if (!enabled_) return health_status::healthy;
        if (!connected_) return status();

        const auto silence = now - last_inbound_;
        health_status next = health_status::healthy;
        if (pong_deadline_armed() && now >= pong_deadline_) {
            next = health_status::unhealthy;
            pong_missed_ = true;
        } else if (unhealthy_after_.count() > 0 && silence >= unhealthy_after_) {
            next = health_status::unhealthy;
        } else if (degraded_after_.count() > 0 && silence >= degraded_after_) {
            next = health_status::degraded;
        }
        set_status(next, now);
        return next;
    }

    /// The status computed last. Safe from any thread.
    health_status status() const noexcept { return status_.load(std::memory_order_acquire); }

    /// When the status last changed (time_point{} if it never did). Safe from any thread.
    time_point last_change() const noexcept
    {
        return time_point{duration{last_change_.load(std::memory_order_acquire)}};
    }

    /// True when the current unhealthy status was caused by a missed pong deadline (rather
    /// than by plain silence). Reset by on_connected() and on_inbound().
    bool pong_missed() const noexcept
    {
        return pong_missed_ && status() == health_status::unhealthy;
    }

    /// When the last inbound traffic (or the connect) happened.
    time_point last_inbound() const noexcept { return last_inbound_; }

    /// True while a ping is waiting for an answer.
    bool ping_outstanding() const noexcept { return ping_outstanding_; }

private:
    static duration to_duration(std::chrono::milliseconds d, const char* field)
    {
        if (d.count() < 0) {
            throw std::invalid_argument(std::string("health_params::") + field + " must be >= 0");
        }
        return std::chrono::duration_cast<duration>(d);
    }

    bool active() const noexcept { return enabled_ && connected_; }
    bool pinging() const noexcept { return active() && ping_interval_.count() > 0; }
    bool pong_deadline_armed() const noexcept
    {
        return ping_outstanding_ && pong_timeout_.count() > 0;
    }

    void set_status(health_status s, time_point now)
    {
        if (s != health_status::unhealthy) pong_missed_ = false;
        if (status_.load(std::memory_order_relaxed) == s) return;
        last_change_.store(now.time_since_epoch().count(), std::memory_order_release);
        status_.store(s, std::memory_order_release);
    }

    const bool enabled_;
    const duration ping_interval_;
    const duration pong_timeout_;
    const duration degraded_after_;
    const duration unhealthy_after_;

    bool connected_ = false;
    bool ping_outstanding_ = false;
    bool pong_missed_ = false;
    time_point last_inbound_{};
    time_point last_ping_{};
    time_point pong_deadline_{};

    // Read by stats and metrics from other threads.
    std::atomic<health_status> status_{health_status::healthy};
    std::atomic<typename duration::rep> last_change_{0};
};

/// The tracker the pool uses: steady clock.
using health_tracker = basic_health_tracker<>;

}  // namespace omnitak
