#include "omnitak/pool/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <asio/error.hpp>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "omnitak/pool/error.hpp"
#include "omnitak/pool/testing/manual_clock.hpp"

namespace {

using namespace std::chrono_literals;
using omnitak::breaker_state;
using omnitak::circuit_breaker_params;
using clock_type = omnitak::testing::manual_clock;
using breaker = omnitak::basic_circuit_breaker<clock_type>;

class CircuitBreaker : public ::testing::Test {
protected:
    void SetUp() override { clock_type::reset(); }

    static clock_type::time_point now() { return clock_type::now(); }

    static void fail_times(breaker& b, int n)
    {
        for (int i = 0; i < n; ++i) {
            ASSERT_TRUE(b.allow_attempt(now()));
            b.record_failure(now());
        }
    }

    // Drives a default breaker into the open state.
    static void open_it(breaker& b) { fail_times(b, 5); }
};

TEST_F(CircuitBreaker, StartsClosedAndAllowsAttempts)
{
    breaker b;
    EXPECT_EQ(b.state(), breaker_state::closed);
    EXPECT_TRUE(b.allow_attempt(now()));
    EXPECT_TRUE(b.allow_attempt(now()));
    EXPECT_EQ(b.consecutive_failures(), 0u);
    EXPECT_EQ(b.times_opened(), 0u);
}

TEST_F(CircuitBreaker, OpensAfterFiveConsecutiveFailures)
{
    breaker b;
    fail_times(b, 4);
    EXPECT_EQ(b.state(), breaker_state::closed);
    EXPECT_EQ(b.consecutive_failures(), 4u);

    ASSERT_TRUE(b.allow_attempt(now()));
    b.record_failure(now());
    EXPECT_EQ(b.state(), breaker_state::open);
    EXPECT_EQ(b.retry_at(), now() + 60s);
    EXPECT_EQ(b.times_opened(), 1u);
}

TEST_F(CircuitBreaker, SuccessInClosedResetsTheFailureCount)
{
    breaker b;
    fail_times(b, 4);
    b.record_success(now());
    EXPECT_EQ(b.consecutive_failures(), 0u);

    fail_times(b, 4);
    EXPECT_EQ(b.state(), breaker_state::closed);
}

TEST_F(CircuitBreaker, OpenRefusesAttemptsUntilResetTimeoutPasses)
{
    breaker b;
    open_it(b);

    EXPECT_FALSE(b.allow_attempt(now()));
    clock_type::advance(59'999ms);
    EXPECT_FALSE(b.allow_attempt(now()));
    EXPECT_EQ(b.state(), breaker_state::open);

    clock_type::advance(1ms);
    EXPECT_TRUE(b.allow_attempt(now()));
    EXPECT_EQ(b.state(), breaker_state::half_open);
}

TEST_F(CircuitBreaker, HalfOpenAllowsOnlyOneTrialAtATime)
{
    breaker b;
    open_it(b);
    clock_type::advance(60s);

    ASSERT_TRUE(b.allow_attempt(now()));
    EXPECT_TRUE(b.trial_in_flight());
    EXPECT_FALSE(b.allow_attempt(now()));
    EXPECT_FALSE(b.allow_attempt(now() + 1h));

    b.record_success(now());
    EXPECT_EQ(b.state(), breaker_state::half_open);
    EXPECT_FALSE(b.trial_in_flight());
    EXPECT_TRUE(b.allow_attempt(now()));
    EXPECT_FALSE(b.allow_attempt(now()));
}

TEST_F(CircuitBreaker, HalfOpenClosesAfterTwoSuccesses)
{
    breaker b;
    open_it(b);
    clock_type::advance(60s);

    ASSERT_TRUE(b.allow_attempt(now()));
    b.record_success(now());
    EXPECT_EQ(b.state(), breaker_state::half_open);

    ASSERT_TRUE(b.allow_attempt(now()));
    b.record_success(now());
    EXPECT_EQ(b.state(), breaker_state::closed);
    EXPECT_EQ(b.consecutive_failures(), 0u);
    EXPECT_TRUE(b.allow_attempt(now()));
}

TEST_F(CircuitBreaker, HalfOpenFailureReopensForAnotherFullTimeout)
{
    breaker b;
    open_it(b);
    clock_type::advance(60s);

    ASSERT_TRUE(b.allow_attempt(now()));
    clock_type::advance(3s);
    b.record_failure(now());
    EXPECT_EQ(b.state(), breaker_state::open);
    EXPECT_EQ(b.retry_at(), now() + 60s);
    EXPECT_EQ(b.times_opened(), 2u);
    EXPECT_FALSE(b.allow_attempt(now()));

    clock_type::advance(60s);
    EXPECT_TRUE(b.allow_attempt(now()));
    EXPECT_EQ(b.state(), breaker_state::half_open);
}

TEST_F(CircuitBreaker, HalfOpenFailureAfterOneSuccessReopens)
{
    breaker b;
    open_it(b);
    clock_type::advance(60s);

    ASSERT_TRUE(b.allow_attempt(now()));
    b.record_success(now());
    b.record_failure(now());  // e.g. the session died or missed a pong
    EXPECT_EQ(b.state(), breaker_state::open);

    // The next half-open period needs two fresh successes again.
    clock_type::advance(60s);
    ASSERT_TRUE(b.allow_attempt(now()));
    b.record_success(now());
    EXPECT_EQ(b.state(), breaker_state::half_open);
}

TEST_F(CircuitBreaker, LateReportsWhileOpenDoNotMoveTheRetryTime)
{
    breaker b;
    open_it(b);
    const auto retry = b.retry_at();

    clock_type::advance(30s);
    b.record_failure(now());
    b.record_success(now());
    EXPECT_EQ(b.state(), breaker_state::open);
    EXPECT_EQ(b.retry_at(), retry);
}

TEST_F(CircuitBreaker, CustomThresholdsAreHonoured)
{
    breaker b(circuit_breaker_params{
        .failure_threshold = 1, .reset_timeout = 100ms, .success_threshold = 1});
    ASSERT_TRUE(b.allow_attempt(now()));
    b.record_failure(now());
    EXPECT_EQ(b.state(), breaker_state::open);

    clock_type::advance(100ms);
    ASSERT_TRUE(b.allow_attempt(now()));
    b.record_success(now());
    EXPECT_EQ(b.state(), breaker_state::closed);
}

TEST_F(CircuitBreaker, ZeroResetTimeoutStartsATrialAtOnce)
{
    breaker b(circuit_breaker_params{.failure_threshold = 1, .reset_timeout = 0ms});
    b.record_failure(now());
    EXPECT_EQ(b.state(), breaker_state::open);
    EXPECT_TRUE(b.allow_attempt(now()));
    EXPECT_EQ(b.state(), breaker_state::half_open);
}

TEST_F(CircuitBreaker, RecordResultClassifiesErrors)
{
    breaker b(circuit_breaker_params{.failure_threshold = 2});

    // Cancellation and per-message errors are not the server's fault.
    b.record_result(now(), asio::error::operation_aborted);
    b.record_result(now(), omnitak::errc::queue_full);
    b.record_result(now(), omnitak::errc::cancelled);
    EXPECT_EQ(b.consecutive_failures(), 0u);

    b.record_result(now(), asio::error::connection_refused);
    EXPECT_EQ(b.consecutive_failures(), 1u);
    b.record_result(now(), {});
    EXPECT_EQ(b.consecutive_failures(), 0u);

    b.record_result(now(), omnitak::errc::connect_timeout);
    b.record_result(now(), omnitak::errc::pong_timeout);
    EXPECT_EQ(b.state(), breaker_state::open);
}

TEST_F(CircuitBreaker, ResetClosesAndForgetsHistory)
{
    breaker b;
    open_it(b);
    b.reset();
    EXPECT_EQ(b.state(), breaker_state::closed);
    EXPECT_EQ(b.consecutive_failures(), 0u);
    EXPECT_TRUE(b.allow_attempt(now()));
}

TEST_F(CircuitBreaker, RejectsZeroThresholdsNamingTheField)
{
    try {
        breaker b(circuit_breaker_params{.failure_threshold = 0});
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("failure_threshold"), std::string::npos);
    }
    try {
        breaker b(circuit_breaker_params{.success_threshold = 0});
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("success_threshold"), std::string::npos);
    }
    EXPECT_THROW(breaker(circuit_breaker_params{.reset_timeout = -1ms}), std::invalid_argument);
}

TEST_F(CircuitBreaker, StateIsReadableFromAnotherThread)
{
    breaker b(circuit_breaker_params{.failure_threshold = 1});
    b.record_failure(now());
    breaker_state seen = breaker_state::closed;
    std::thread reader([&] { seen = b.state(); });
    reader.join();
    EXPECT_EQ(seen, breaker_state::open);
}

TEST(CircuitBreakerNames, StatesHaveStableNames)
{
    EXPECT_EQ(omnitak::to_string(breaker_state::closed), "closed");
    EXPECT_EQ(omnitak::to_string(breaker_state::open), "open");
    EXPECT_EQ(omnitak::to_string(breaker_state::half_open), "half_open");
}

TEST(CircuitBreakerDefaultClock, WorksWithTheSteadyClock)
{
    omnitak::circuit_breaker b;
    EXPECT_TRUE(b.allow_attempt(std::chrono::steady_clock::now()));
}

}  // namespace
