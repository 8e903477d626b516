// Concurrency hammers for the admission controller and the rate limiter, meant for
// ThreadSanitizer. They run a multi-threaded io_context with every worker coroutine on its
// own strand (as links are), and use short real timers. Every run is bounded by a watchdog
// that stops the io_context and fails the test.
#include <gtest/gtest.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>
#include <variant>
#include <vector>

#include "omnitak/pool/admission.hpp"
#include "omnitak/pool/error.hpp"
#include "omnitak/pool/rate_limiter.hpp"

namespace {

using namespace std::chrono_literals;
using omnitak::admission_controller;
using omnitak::admission_params;
using omnitak::errc;

// Runs `io` on `threads` threads until it runs out of work or `limit` passes. Returns false
// (after stopping the io_context) when the limit was hit.
bool run_bounded(asio::io_context& io, int threads, std::chrono::seconds limit)
{
    std::mutex m;
    std::condition_variable cv;
    bool finished = false;
    bool timed_out = false;
    std::thread watchdog([&] {
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, limit, [&] { return finished; })) {
            timed_out = true;
            io.stop();
        }
    });

    std::vector<std::thread> runners;
    for (int i = 0; i < threads; ++i)
        runners.emplace_back([&] { io.run(); });
    for (auto& t : runners)
        t.join();
    {
        std::lock_guard lock(m);
        finished = true;
    }
    cv.notify_all();
    watchdog.join();
    return !timed_out;
}

// Short random pause on the coroutine's own executor.
asio::awaitable<void> pause(std::chrono::microseconds d)
{
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    std::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

struct tallies {
    std::atomic<int> holders{0};
    std::atomic<int> max_holders{0};
    std::atomic<int> over_limit{0};
    std::atomic<int> granted{0};
    std::atomic<int> lost_race{0};
    std::atomic<int> timed_out{0};
    std::atomic<int> evicted{0};
    std::atomic<int> queue_full{0};
    std::atomic<int> unexpected{0};
    std::atomic<int> workers_done{0};

    void hold(std::size_t limit)
    {
        const int now_holding = holders.fetch_add(1) + 1;
        int seen = max_holders.load();
        while (now_holding > seen && !max_holders.compare_exchange_weak(seen, now_holding)) {
        }
        if (now_holding > static_cast<int>(limit)) over_limit.fetch_add(1);
        granted.fetch_add(1);
    }

    void count_failure(const std::error_code& ec)
    {
        if (ec == errc::admission_timeout) {
            timed_out.fetch_add(1);
        } else if (ec == errc::admission_evicted) {
            evicted.fetch_add(1);
        } else if (ec == errc::admission_queue_full) {
            queue_full.fetch_add(1);
        } else {
            unexpected.fetch_add(1);
        }
    }
};

// One worker: random mix of waiting acquires, acquires raced against a timer (cancellation),
// and try_acquire/release pairs.
asio::awaitable<void> worker(admission_controller& ctrl, tallies& t, unsigned seed, int cycles)
{
    using namespace asio::experimental::awaitable_operators;
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> action(0, 9);
    std::uniform_int_distribution<int> priority(0, 255);
    std::uniform_int_distribution<int> micros(0, 300);
    const auto executor = co_await asio::this_coro::executor;

    for (int i = 0; i < cycles; ++i) {
        const int what = action(rng);
        const auto prio = static_cast<std::uint8_t>(priority(rng));

        if (what < 5) {
            // Plain wait.
            auto permit = co_await ctrl.async_acquire(prio);
            if (!permit) {
                t.count_failure(permit.error());
                continue;
            }
            t.hold(ctrl.max_permits());
            co_await pause(std::chrono::microseconds(micros(rng)));
            t.holders.fetch_sub(1);
        } else if (what < 9) {
            // Race against a timer: the loser is cancelled, possibly just as it is granted.
            asio::steady_timer timer(executor, std::chrono::microseconds(micros(rng)));
            std::error_code timer_ec;
            auto result =
                co_await (ctrl.async_acquire(prio) ||
                          timer.async_wait(asio::redirect_error(asio::use_awaitable, timer_ec)));
            if (result.index() == 1) {
                t.lost_race.fetch_add(1);
                continue;
            }
            auto& permit = std::get<0>(result);
            if (!permit) {
                t.count_failure(permit.error());
                continue;
            }
            t.hold(ctrl.max_permits());
            co_await pause(std::chrono::microseconds(micros(rng) / 4));
            t.holders.fetch_sub(1);
        } else {
            if (!ctrl.try_acquire()) continue;
            t.hold(ctrl.max_permits());
            t.holders.fetch_sub(1);
            ctrl.release();
        }
    }
    t.workers_done.fetch_add(1);
}

TEST(AdmissionStress, RandomAcquireCancelReleaseCyclesLeakNoPermits)
{
    constexpr std::size_t permits = 8;
    constexpr int workers = 48;
    constexpr int cycles = 250;
    admission_controller ctrl(
        admission_params{.max_permits = permits, .max_queue = 24, .queue_timeout = 20ms});
    tallies t;
    {
        asio::io_context io(4);
        for (int w = 0; w < workers; ++w) {
            asio::co_spawn(asio::make_strand(io), worker(ctrl, t, 1000u + w, cycles),
                           asio::detached);
        }
        ASSERT_TRUE(run_bounded(io, 4, 120s)) << "workers did not finish in time";
    }

    EXPECT_EQ(t.workers_done.load(), workers);
    EXPECT_EQ(t.over_limit.load(), 0) << "more holders than permits";
    EXPECT_LE(t.max_holders.load(), static_cast<int>(permits));
    EXPECT_EQ(t.unexpected.load(), 0);
    EXPECT_GT(t.granted.load(), 0);
    EXPECT_EQ(ctrl.in_use(), 0u) << "leaked permits";
    EXPECT_EQ(ctrl.waiting(), 0u);

    // Every permit is free again.
    for (std::size_t i = 0; i < permits; ++i)
        ASSERT_TRUE(ctrl.try_acquire());
    EXPECT_FALSE(ctrl.try_acquire());
    for (std::size_t i = 0; i < permits; ++i)
        ctrl.release();

    std::printf("granted %d, lost race %d, timed out %d, evicted %d, queue full %d\n",
                t.granted.load(), t.lost_race.load(), t.timed_out.load(), t.evicted.load(),
                t.queue_full.load());
}

TEST(AdmissionStress, QueueTimeoutFailsTheWaiter)
{
    admission_controller ctrl(
        admission_params{.max_permits = 1, .max_queue = 10, .queue_timeout = 50ms});
    ASSERT_TRUE(ctrl.try_acquire());

    std::error_code result;
    std::chrono::steady_clock::duration waited{};
    asio::io_context io;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            const auto start = std::chrono::steady_clock::now();
            auto permit = co_await ctrl.async_acquire(1);
            waited = std::chrono::steady_clock::now() - start;
            result = permit.error();
        },
        asio::detached);
    ASSERT_TRUE(run_bounded(io, 1, 5s));

    EXPECT_EQ(result, errc::admission_timeout);
    EXPECT_GE(waited, 50ms);
    EXPECT_EQ(ctrl.waiting(), 0u);
    EXPECT_EQ(ctrl.timed_out(), 1u);
    ctrl.release();
    EXPECT_EQ(ctrl.in_use(), 0u);
}

TEST(AdmissionStress, CloseWakesEveryWaiterAcrossThreads)
{
    constexpr int waiters = 200;
    admission_controller ctrl(
        admission_params{.max_permits = 2, .max_queue = 1000, .queue_timeout = 0ms});
    ASSERT_TRUE(ctrl.try_acquire());
    ASSERT_TRUE(ctrl.try_acquire());

    std::atomic<int> shut_down{0};
    std::atomic<int> other{0};
    asio::io_context io(4);
    for (int i = 0; i < waiters; ++i) {
        asio::co_spawn(
            asio::make_strand(io),
            [&, i]() -> asio::awaitable<void> {
                auto permit = co_await ctrl.async_acquire(static_cast<std::uint8_t>(i));
                (permit.error() == errc::shut_down ? shut_down : other).fetch_add(1);
            },
            asio::detached);
    }
    std::thread closer([&] {
        // Bounded: if the waiters never all queue, close anyway and let the checks fail.
        const auto give_up = std::chrono::steady_clock::now() + 20s;
        while (ctrl.waiting() < waiters && std::chrono::steady_clock::now() < give_up) {
            std::this_thread::yield();
        }
        ctrl.close();
    });
    const bool finished = run_bounded(io, 4, 30s);
    closer.join();
    ASSERT_TRUE(finished);

    EXPECT_EQ(shut_down.load(), waiters);
    EXPECT_EQ(other.load(), 0);
    EXPECT_EQ(ctrl.waiting(), 0u);
    ctrl.release();
    ctrl.release();
    EXPECT_EQ(ctrl.in_use(), 0u);
}

TEST(RateLimiterStress, AsyncAcquireWaitsForTokensAcrossThreads)
{
    // 4 strands x 30 tokens at 1,000/s with a burst of 10: the last token cannot be taken
    // before (120 - 10) ms.
    omnitak::rate_limiter limiter(omnitak::token_bucket_params{.rate = 1000, .burst = 10});
    std::atomic<int> taken{0};
    std::atomic<int> failed{0};
    asio::io_context io(4);
    const auto start = std::chrono::steady_clock::now();
    for (int s = 0; s < 4; ++s) {
        asio::co_spawn(
            asio::make_strand(io),
            [&]() -> asio::awaitable<void> {
                for (int i = 0; i < 30; ++i) {
                    const auto ec = co_await limiter.async_acquire(1, 5s);
                    (ec ? failed : taken).fetch_add(1);
                }
            },
            asio::detached);
    }
    ASSERT_TRUE(run_bounded(io, 4, 30s));
    const auto elapsed = std::chrono::steady_clock::now() - start;

    EXPECT_EQ(taken.load(), 120);
    EXPECT_EQ(failed.load(), 0);
    EXPECT_GE(elapsed, 109ms);
}

}  // namespace
