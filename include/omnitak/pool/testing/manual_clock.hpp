// A clock that only moves when a test moves it.
//
// The sans-I/O components (circuit breaker, health tracker, token bucket) take `now` as an
// argument and use their Clock template parameter only for its time_point type, so a test can
// instantiate them with manual_clock and feed readings it controls:
//
//     using clock = omnitak::testing::manual_clock;
//     clock::reset();                                   // start of every test: time 0
//     omnitak::basic_circuit_breaker<clock> breaker;
//     breaker.record_failure(clock::now());
//     clock::advance(std::chrono::seconds(60));         // no sleeping
//     EXPECT_TRUE(breaker.allow_attempt(clock::now()));
//
// The reading is static (one per Tag type), so code that calls Clock::now() itself sees the
// same time as the test. Tests that must not share a reading (e.g. two fixtures running in
// one process) give each its own tag: `basic_manual_clock<struct my_tag>`.
//
// It satisfies the standard Clock requirements (rep, period, duration, time_point, is_steady,
// now()). It is not meant for asio::basic_waitable_timer: Asio would poll a clock that never
// moves by itself.
//
// Thread safety: every member may be called from any thread (the reading is an atomic).
// Time never goes backwards through advance(); set() may move it anywhere.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace omnitak::testing {

template <class Tag = void>
struct basic_manual_clock {
    using rep = std::int64_t;
    using period = std::nano;
    using duration = std::chrono::duration<rep, period>;
    using time_point = std::chrono::time_point<basic_manual_clock, duration>;

    /// Steady: it only moves forward unless a test calls set() with an earlier time.
    static constexpr bool is_steady = true;

    /// The current reading. Starts at time_point{} (epoch 0).
    static time_point now() noexcept { return time_point{duration{ticks_.load(order)}}; }

    /// Moves the reading forward by `d` (negative values are ignored) and returns the new one.
    template <class Rep, class Period>
    static time_point advance(std::chrono::duration<Rep, Period> d) noexcept
    {
        const auto step = std::chrono::duration_cast<duration>(d).count();
        if (step <= 0) return now();
        return time_point{duration{ticks_.fetch_add(step, order) + step}};
    }

    /// Puts the reading at `t`.
    static void set(time_point t) noexcept { ticks_.store(t.time_since_epoch().count(), order); }

    /// Puts the reading back at time_point{}; call at the start of each test.
    static void reset() noexcept { ticks_.store(0, order); }

private:
    static constexpr std::memory_order order = std::memory_order_seq_cst;
    static inline std::atomic<rep> ticks_{0};
};

/// The default manual clock; see the file comment for how tests use it.
using manual_clock = basic_manual_clock<>;

}  // namespace omnitak::testing
