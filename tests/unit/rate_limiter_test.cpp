#include "omnitak/pool/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <cmath>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "omnitak/pool/error.hpp"
#include "omnitak/pool/testing/manual_clock.hpp"

namespace {

using namespace std::chrono_literals;
using omnitak::token_bucket_params;
using clock_type = omnitak::testing::manual_clock;
using bucket = omnitak::basic_token_bucket<clock_type>;

class TokenBucket : public ::testing::Test {
protected:
    void SetUp() override { clock_type::set(clock_type::time_point{123'456s}); }
    static clock_type::time_point now() { return clock_type::now(); }
};

TEST_F(TokenBucket, FreshBucketAllowsExactlyTheBurst)
{
    bucket b(token_bucket_params{.rate = 10, .burst = 25});
    EXPECT_DOUBLE_EQ(b.available(now()), 25.0);
    for (int i = 0; i < 25; ++i)
        ASSERT_TRUE(b.try_acquire(now())) << i;
    EXPECT_FALSE(b.try_acquire(now()));
    EXPECT_NEAR(b.available(now()), 0.0, 1e-9);
}

TEST_F(TokenBucket, RefillsContinuouslyAtTheRate)
{
    bucket b(token_bucket_params{.rate = 10, .burst = 1});
    ASSERT_TRUE(b.try_acquire(now()));
    EXPECT_FALSE(b.try_acquire(now()));

    clock_type::advance(99ms);
    EXPECT_FALSE(b.try_acquire(now()));
    clock_type::advance(1ms);
    EXPECT_TRUE(b.try_acquire(now()));
}

TEST_F(TokenBucket, TimeUntilAvailableIsExactlyEnough)
{
    bucket b(token_bucket_params{.rate = 4, .burst = 4});
    for (int i = 0; i < 4; ++i)
        ASSERT_TRUE(b.try_acquire(now()));

    EXPECT_EQ(b.time_until_available(now(), 1), 250ms);
    EXPECT_EQ(b.time_until_available(now(), 3), 750ms);
    EXPECT_EQ(b.time_until_available(now(), 0), clock_type::duration::zero());

    clock_type::advance(b.time_until_available(now(), 3));
    EXPECT_EQ(b.time_until_available(now(), 3), clock_type::duration::zero());
    EXPECT_TRUE(b.try_acquire(now(), 3));
    EXPECT_FALSE(b.try_acquire(now(), 1));
}

TEST_F(TokenBucket, RequestLargerThanTheBurstNeverSucceeds)
{
    bucket b(token_bucket_params{.rate = 100, .burst = 5});
    EXPECT_FALSE(b.try_acquire(now(), 6));
    EXPECT_EQ(b.time_until_available(now(), 6), clock_type::duration::max());
    clock_type::advance(1h);
    EXPECT_FALSE(b.try_acquire(now(), 6));
    EXPECT_TRUE(b.try_acquire(now(), 5));
}

TEST_F(TokenBucket, IdleTimeDoesNotOverfillTheBucket)
{
    bucket b(token_bucket_params{.rate = 1000, .burst = 50});
    for (int i = 0; i < 50; ++i)
        ASSERT_TRUE(b.try_acquire(now()));
    clock_type::advance(10min);
    EXPECT_DOUBLE_EQ(b.available(now()), 50.0);
    int taken = 0;
    while (b.try_acquire(now()))
        ++taken;
    EXPECT_EQ(taken, 50);
}

TEST_F(TokenBucket, LongRunRateHoldsWithinOnePercent)
{
    // A greedy client asking at random moments for random amounts, for ten simulated minutes.
    const double rate = 250.0;
    const double burst = 40.0;
    bucket b(token_bucket_params{.rate = rate, .burst = burst});
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int> step_us(1, 20'000);
    std::uniform_int_distribution<int> amount(1, 5);

    const auto start = now();
    double granted = 0;
    while (now() - start < 600s) {
        const int n = amount(rng);
        while (b.try_acquire(now(), n))
            granted += n;
        clock_type::advance(std::chrono::microseconds(step_us(rng)));
    }
    const double elapsed_s = std::chrono::duration<double>(now() - start).count();
    const double ceiling = rate * elapsed_s + burst;
    EXPECT_LE(granted, ceiling);
    EXPECT_GE(granted, 0.99 * ceiling) << "granted " << granted << " of " << ceiling;
}

TEST_F(TokenBucket, BurstAfterAQuietPeriodHoldsWithinOnePercent)
{
    const double rate = 1000.0;
    const double burst = 500.0;
    bucket b(token_bucket_params{.rate = rate, .burst = burst});

    // Drain, wait long enough to refill, then take as much as possible in one instant.
    while (b.try_acquire(now())) {
    }
    clock_type::advance(5s);
    int taken = 0;
    while (b.try_acquire(now()))
        ++taken;
    EXPECT_EQ(taken, 500);

    // Over one second at full demand: the refill adds `rate`, spread evenly.
    int in_second = 0;
    for (int ms = 0; ms < 1000; ++ms) {
        clock_type::advance(1ms);
        while (b.try_acquire(now()))
            ++in_second;
    }
    EXPECT_NEAR(in_second, rate, 0.01 * rate);
}

TEST_F(TokenBucket, RefillToNEverySecondIsBurstEqualRate)
{
    // The original "N permits, refilled every second" limiter: at most N in any one-second
    // window after a quiet period, and N per second in the long run.
    bucket b(token_bucket_params{.rate = 1000, .burst = 1000});
    int first_second = 0;
    for (int ms = 0; ms < 1000; ++ms) {
        while (b.try_acquire(now()))
            ++first_second;
        clock_type::advance(1ms);
    }
    EXPECT_NEAR(first_second, 2000, 0.01 * 2000);  // full bucket + one second of refill
    int second_second = 0;
    for (int ms = 0; ms < 1000; ++ms) {
        while (b.try_acquire(now()))
            ++second_second;
        clock_type::advance(1ms);
    }
    EXPECT_NEAR(second_second, 1000, 10);
}

TEST_F(TokenBucket, NonIntegerRateKeepsItsLongRunAverage)
{
    bucket b(token_bucket_params{.rate = 3.0, .burst = 1});
    ASSERT_TRUE(b.try_acquire(now()));
    int granted = 0;
    for (int i = 0; i < 1'000'000; ++i) {  // 1000 s in 1 ms steps
        clock_type::advance(1ms);
        if (b.try_acquire(now())) ++granted;
    }
    EXPECT_NEAR(granted, 3000, 30);
}

TEST_F(TokenBucket, RejectsBadParamsNamingTheField)
{
    try {
        bucket b(token_bucket_params{.rate = 0});
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("rate"), std::string::npos);
    }
    try {
        bucket b(token_bucket_params{.rate = 5, .burst = 0.5});
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("burst"), std::string::npos);
    }
    EXPECT_THROW(bucket(token_bucket_params{.rate = std::nan("")}), std::invalid_argument);
}

// The thread-safe wrapper. Only paths that complete without waiting on real time are checked
// here; the waiting path is in tests/stress/admission_stress_test.cpp.
TEST(RateLimiter, TakesTokensWithoutWaitingWhileAvailable)
{
    omnitak::rate_limiter limiter(token_bucket_params{.rate = 1, .burst = 3});
    EXPECT_TRUE(limiter.try_acquire());
    asio::io_context io;
    std::optional<std::error_code> result;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { result = co_await limiter.async_acquire(2); },
        asio::detached);
    io.run();
    ASSERT_TRUE(result.has_value());
    EXPECT_FALSE(*result);
    EXPECT_FALSE(limiter.try_acquire());
}

TEST(RateLimiter, FailsAtOnceWhenTheTokensCannotArriveInTime)
{
    omnitak::rate_limiter limiter(token_bucket_params{.rate = 1, .burst = 2});
    ASSERT_TRUE(limiter.try_acquire(2));
    asio::io_context io;
    std::optional<std::error_code> short_wait, too_many;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            short_wait = co_await limiter.async_acquire(1, 10ms);  // needs about 1 s
            too_many = co_await limiter.async_acquire(3);          // more than the burst
        },
        asio::detached);
    io.run();
    EXPECT_EQ(short_wait, omnitak::errc::rate_limited);
    EXPECT_EQ(too_many, omnitak::errc::rate_limited);
}

TEST(RateLimiter, CancellingAWaiterEndsTheWaitAndTakesNothing)
{
    omnitak::rate_limiter limiter(token_bucket_params{.rate = 0.001, .burst = 1});
    ASSERT_TRUE(limiter.try_acquire());
    asio::io_context io;
    asio::cancellation_signal signal;
    std::optional<std::error_code> result;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { result = co_await limiter.async_acquire(1); },
        asio::bind_cancellation_slot(signal.slot(), asio::detached));
    io.poll();
    ASSERT_FALSE(result.has_value());
    signal.emit(asio::cancellation_type::terminal);
    io.restart();
    io.run();
    EXPECT_EQ(result, asio::error::operation_aborted);
}

// The fair bucket: a line of waiters in front of a token bucket, driven by a fake clock.
class FairTokenBucket : public ::testing::Test {
protected:
    using fair = omnitak::basic_fair_token_bucket<clock_type>;
    void SetUp() override { clock_type::set(clock_type::time_point{1'000s}); }
    static clock_type::time_point now() { return clock_type::now(); }
    static constexpr auto never = clock_type::duration::max();
    static constexpr auto zero = clock_type::duration::zero();
};

TEST_F(FairTokenBucket, ServesWaitersInArrivalOrderAndWakesOnlyTheNextOne)
{
    fair line(token_bucket_params{.rate = 10, .burst = 2});
    EXPECT_EQ(line.join(now(), [] {}), 0u);  // the burst: taken at once, no ticket
    EXPECT_EQ(line.join(now(), [] {}), 0u);

    int woken_a = 0, woken_b = 0, woken_c = 0;
    const auto a = line.join(now(), [&] { ++woken_a; });
    const auto b = line.join(now(), [&] { ++woken_b; });
    const auto c = line.join(now(), [&] { ++woken_c; });
    ASSERT_NE(a, 0u);
    ASSERT_NE(b, 0u);
    ASSERT_NE(c, 0u);
    EXPECT_EQ(line.waiting(), 3u);

    // Only the head is told a finite wait: one token every 100 ms.
    EXPECT_EQ(line.poll(a, now()), 100ms);
    EXPECT_EQ(line.poll(b, now()), never);
    EXPECT_EQ(line.poll(c, now()), never);

    clock_type::advance(100ms);
    EXPECT_EQ(line.poll(b, now()), never);  // a token is there, but it is a's
    EXPECT_EQ(line.poll(a, now()), zero);
    EXPECT_EQ(woken_b, 1);
    EXPECT_EQ(woken_c, 0);
    EXPECT_EQ(line.poll(b, now()), 100ms);

    clock_type::advance(100ms);
    EXPECT_EQ(line.poll(b, now()), zero);
    EXPECT_EQ(woken_c, 1);
    clock_type::advance(100ms);
    EXPECT_EQ(line.poll(c, now()), zero);
    EXPECT_EQ(line.waiting(), 0u);
    EXPECT_EQ(woken_a, 0);  // it never waited behind anyone
    EXPECT_EQ(woken_b, 1);
    EXPECT_EQ(woken_c, 1);
}

TEST_F(FairTokenBucket, NewcomersQueueBehindWaitersEvenWhenATokenIsThere)
{
    fair line(token_bucket_params{.rate = 10, .burst = 1});
    ASSERT_EQ(line.join(now(), [] {}), 0u);
    const auto a = line.join(now(), [] {});
    ASSERT_NE(a, 0u);
    clock_type::advance(1s);  // the bucket is full again, but a was first
    int woken_x = 0;
    const auto x = line.join(now(), [&] { ++woken_x; });
    ASSERT_NE(x, 0u);
    EXPECT_EQ(line.poll(x, now()), never);
    EXPECT_EQ(line.poll(a, now()), zero);
    EXPECT_EQ(woken_x, 1);
    EXPECT_EQ(line.poll(x, now()), 100ms);
}

TEST_F(FairTokenBucket, LeavingTheHeadWakesTheNextAndCostsNoToken)
{
    fair line(token_bucket_params{.rate = 1, .burst = 1});
    ASSERT_EQ(line.join(now(), [] {}), 0u);
    int woken_b = 0, woken_c = 0;
    const auto a = line.join(now(), [] {});
    const auto b = line.join(now(), [&] { ++woken_b; });
    const auto c = line.join(now(), [&] { ++woken_c; });

    line.leave(c);  // not the head: nobody is woken
    EXPECT_EQ(woken_b, 0);
    EXPECT_EQ(line.poll(c, now()), zero);  // no longer in the line
    line.leave(a);
    EXPECT_EQ(woken_b, 1);
    EXPECT_EQ(line.waiting(), 1u);
    line.leave(a);  // twice: no-op
    line.leave(0);
    EXPECT_EQ(woken_b, 1);

    // a's departure left the token for b, on the bucket's schedule.
    EXPECT_EQ(line.poll(b, now()), 1s);
    clock_type::advance(1s);
    EXPECT_EQ(line.poll(b, now()), zero);
    EXPECT_EQ(woken_c, 0);
}

TEST_F(FairTokenBucket, CloseLetsEveryoneThroughWithoutWakingAnyone)
{
    fair line(token_bucket_params{.rate = 1, .burst = 1});
    ASSERT_EQ(line.join(now(), [] {}), 0u);
    int woken = 0;
    const auto a = line.join(now(), [&] { ++woken; });
    const auto b = line.join(now(), [&] { ++woken; });
    line.close();
    EXPECT_EQ(line.waiting(), 0u);
    EXPECT_EQ(line.poll(b, now()), zero);
    EXPECT_EQ(line.poll(a, now()), zero);
    EXPECT_EQ(line.join(now(), [&] { ++woken; }), 0u);
    EXPECT_EQ(woken, 0);
}

// A thousand waiters, each polling only when woken or when its wait is over, as the links do:
// the tokens come at the bucket's rate, in arrival order, and the line costs a bounded number
// of polls per token (no herd of waiters waking for every token).
TEST_F(FairTokenBucket, AThousandWaitersGetTheRateInOrderWithFewPolls)
{
    constexpr double rate = 50;
    constexpr double burst = 20;
    constexpr std::size_t waiters = 1000;
    fair line(token_bucket_params{.rate = rate, .burst = burst});
    const auto start = now();

    struct waiter {
        fair::ticket ticket = 0;
        clock_type::time_point poll_at = clock_type::time_point::max();
        clock_type::time_point granted{};
    };
    std::vector<waiter> w(waiters);
    std::size_t immediate = 0;
    for (std::size_t i = 0; i < waiters; ++i) {
        w[i].ticket = line.join(now(), [&w, i] { w[i].poll_at = now(); });
        if (w[i].ticket == 0) {
            w[i].granted = now();
            ++immediate;
        } else if (line.poll(w[i].ticket, now()) != never) {
            w[i].poll_at = now();  // the head polls on its own schedule
        }
    }
    EXPECT_EQ(immediate, static_cast<std::size_t>(burst));

    std::size_t polls = 0;
    std::size_t granted = immediate;
    std::vector<std::size_t> order;
    while (granted < waiters) {
        // The earliest due poll (at most one waiter is due at a time: the head).
        std::size_t next = waiters;
        for (std::size_t i = 0; i < waiters; ++i) {
            if (w[i].ticket != 0 && w[i].poll_at != clock_type::time_point::max() &&
                (next == waiters || w[i].poll_at < w[next].poll_at)) {
                next = i;
            }
        }
        ASSERT_LT(next, waiters) << "nobody is due to poll: the line stalled";
        if (w[next].poll_at > now()) clock_type::set(w[next].poll_at);
        ++polls;
        const auto d = line.poll(w[next].ticket, now());
        if (d == zero) {
            w[next].ticket = 0;
            w[next].granted = now();
            order.push_back(next);
            ++granted;
        } else {
            w[next].poll_at = d == never ? clock_type::time_point::max() : now() + d;
        }
    }

    // In order of arrival, at the rate: the k-th waited token comes k / rate after the start.
    for (std::size_t k = 0; k < order.size(); ++k) {
        ASSERT_EQ(order[k], static_cast<std::size_t>(burst) + k);
        const double at = std::chrono::duration<double>(w[order[k]].granted - start).count();
        EXPECT_NEAR(at, static_cast<double>(k + 1) / rate, 1e-6) << k;
    }
    // One poll when woken, one when the token is due.
    EXPECT_LE(polls, 2 * (waiters - immediate));
}

}  // namespace
