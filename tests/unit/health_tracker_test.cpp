#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "omnitak/pool/health_monitor.hpp"
#include "omnitak/pool/testing/manual_clock.hpp"

namespace {

using namespace std::chrono_literals;
using omnitak::health_params;
using omnitak::health_status;
using clock_type = omnitak::testing::manual_clock;
using tracker = omnitak::basic_health_tracker<clock_type>;

class HealthTracker : public ::testing::Test {
protected:
    void SetUp() override { clock_type::reset(); }
    static clock_type::time_point now() { return clock_type::now(); }
};

TEST_F(HealthTracker, IsIdleBeforeConnecting)
{
    tracker t;
    EXPECT_EQ(t.status(), health_status::healthy);
    EXPECT_FALSE(t.ping_due(now() + 1h));
    EXPECT_EQ(t.next_wakeup(), clock_type::time_point::max());
    EXPECT_EQ(t.evaluate(now() + 1h), health_status::healthy);
}

TEST_F(HealthTracker, SilenceMakesItDegradedThenUnhealthy)
{
    tracker t(health_params{.ping_interval = 0ms});
    t.on_connected(now());

    clock_type::advance(19'999ms);
    EXPECT_EQ(t.evaluate(now()), health_status::healthy);

    clock_type::advance(1ms);
    EXPECT_EQ(t.evaluate(now()), health_status::degraded);
    EXPECT_EQ(t.last_change(), now());
    const auto degraded_at = now();

    clock_type::advance(24'999ms);
    EXPECT_EQ(t.evaluate(now()), health_status::degraded);
    EXPECT_EQ(t.last_change(), degraded_at);

    clock_type::advance(1ms);
    EXPECT_EQ(t.evaluate(now()), health_status::unhealthy);
    EXPECT_EQ(t.status(), health_status::unhealthy);
    EXPECT_EQ(t.last_change(), now());
    EXPECT_FALSE(t.pong_missed());
}

TEST_F(HealthTracker, TrafficWithoutPongsKeepsItHealthy)
{
    tracker t;
    t.on_connected(now());

    // Pings go out but are never answered with a pong; ordinary events keep arriving.
    for (int second = 1; second <= 300; ++second) {
        clock_type::advance(1s);
        if (t.ping_due(now())) t.on_ping_sent(now());
        t.on_inbound(now());
        ASSERT_EQ(t.evaluate(now()), health_status::healthy) << "at " << second << " s";
    }
}

TEST_F(HealthTracker, MissedPongDeadlineMakesItUnhealthyAtOnce)
{
    tracker t;
    t.on_connected(now());

    clock_type::advance(15s);
    ASSERT_TRUE(t.ping_due(now()));
    t.on_ping_sent(now());
    EXPECT_FALSE(t.ping_due(now()));
    EXPECT_TRUE(t.ping_outstanding());

    // The pong deadline (15 s + 10 s) comes before the silence rule would fire (45 s).
    clock_type::advance(9'999ms);
    EXPECT_EQ(t.evaluate(now()), health_status::degraded);  // silent for 24.999 s
    clock_type::advance(1ms);
    EXPECT_EQ(t.evaluate(now()), health_status::unhealthy);
    EXPECT_TRUE(t.pong_missed());
}

TEST_F(HealthTracker, PongBeforeTheDeadlineKeepsItHealthy)
{
    tracker t(health_params{.degraded_after = 0ms, .unhealthy_after = 0ms});
    t.on_connected(now());
    for (int i = 0; i < 20; ++i) {
        clock_type::advance(15s);
        ASSERT_TRUE(t.ping_due(now()));
        t.on_ping_sent(now());
        clock_type::advance(2s);
        t.on_inbound(now());  // the pong
        ASSERT_EQ(t.evaluate(now()), health_status::healthy);
    }
}

TEST_F(HealthTracker, PongDeadlineCountsFromTheOldestUnansweredPing)
{
    tracker t(health_params{.ping_interval = 4s, .pong_timeout = 10s, .unhealthy_after = 0ms});
    t.on_connected(now());

    clock_type::advance(4s);
    t.on_ping_sent(now());  // deadline 14 s
    clock_type::advance(4s);
    t.on_ping_sent(now());  // must not push the deadline to 18 s
    clock_type::advance(6s);
    EXPECT_EQ(t.evaluate(now()), health_status::unhealthy);
}

TEST_F(HealthTracker, InboundTrafficRestoresHealth)
{
    tracker t(health_params{.ping_interval = 0ms});
    t.on_connected(now());
    clock_type::advance(30s);
    ASSERT_EQ(t.evaluate(now()), health_status::degraded);

    t.on_inbound(now());
    EXPECT_EQ(t.status(), health_status::healthy);
    EXPECT_EQ(t.last_change(), now());
}

TEST_F(HealthTracker, OnConnectedResetsAfterUnhealthy)
{
    tracker t;
    t.on_connected(now());
    clock_type::advance(15s);
    t.on_ping_sent(now());
    clock_type::advance(10s);
    ASSERT_EQ(t.evaluate(now()), health_status::unhealthy);

    // The link closed the session and reconnected.
    t.on_disconnected();
    EXPECT_EQ(t.next_wakeup(), clock_type::time_point::max());
    clock_type::advance(5s);
    t.on_connected(now());
    EXPECT_EQ(t.status(), health_status::healthy);
    EXPECT_EQ(t.last_change(), now());
    EXPECT_FALSE(t.ping_outstanding());
    EXPECT_FALSE(t.pong_missed());
    EXPECT_FALSE(t.ping_due(now()));
    EXPECT_EQ(t.next_wakeup(), now() + 15s);

    clock_type::advance(14s);
    EXPECT_EQ(t.evaluate(now()), health_status::healthy);
}

TEST_F(HealthTracker, NextWakeupIsTheEarliestPendingDeadline)
{
    tracker t;
    const auto start = now();
    t.on_connected(start);
    EXPECT_EQ(t.next_wakeup(), start + 15s);  // first ping

    clock_type::advance(15s);
    t.on_ping_sent(now());
    EXPECT_EQ(t.next_wakeup(), start + 20s);  // degraded_after beats pong deadline (25 s)

    clock_type::advance(5s);
    ASSERT_EQ(t.evaluate(now()), health_status::degraded);
    EXPECT_EQ(t.next_wakeup(), start + 25s);  // pong deadline

    clock_type::advance(5s);
    ASSERT_EQ(t.evaluate(now()), health_status::unhealthy);
    EXPECT_EQ(t.next_wakeup(), start + 30s);  // only the ping schedule remains
}

TEST_F(HealthTracker, WakingAtNextWakeupFollowsTheSchedule)
{
    // Drive the tracker the way the link's health coroutine does: sleep until next_wakeup().
    tracker t;
    t.on_connected(now());
    int pings = 0;
    while (t.status() != health_status::unhealthy) {
        clock_type::set(t.next_wakeup());
        if (t.ping_due(now())) {
            t.on_ping_sent(now());
            ++pings;
        }
        t.evaluate(now());
        ASSERT_LT(now().time_since_epoch(), std::chrono::hours(1));
    }
    EXPECT_EQ(pings, 1);
    EXPECT_EQ(now().time_since_epoch(), std::chrono::nanoseconds(25s));
}

TEST_F(HealthTracker, DisabledIsAlwaysHealthyAndNeverPings)
{
    tracker t(health_params{.enabled = false});
    t.on_connected(now());
    clock_type::advance(1h);
    EXPECT_FALSE(t.ping_due(now()));
    EXPECT_EQ(t.evaluate(now()), health_status::healthy);
    EXPECT_EQ(t.next_wakeup(), clock_type::time_point::max());
}

TEST_F(HealthTracker, RejectsBadParamsNamingTheField)
{
    try {
        tracker t(health_params{.degraded_after = 50s, .unhealthy_after = 40s});
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("unhealthy_after"), std::string::npos);
    }
    try {
        tracker t(health_params{.pong_timeout = -1ms});
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("pong_timeout"), std::string::npos);
    }
}

TEST(HealthStatusNames, StatusesHaveStableNames)
{
    EXPECT_EQ(omnitak::to_string(health_status::healthy), "healthy");
    EXPECT_EQ(omnitak::to_string(health_status::degraded), "degraded");
    EXPECT_EQ(omnitak::to_string(health_status::unhealthy), "unhealthy");
}

}  // namespace
