#include "omnitak/pool/backoff.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>

using namespace std::chrono_literals;
using omnitak::backoff_params;
using omnitak::backoff_schedule;

TEST(Backoff, DefaultsDoubleFromOneSecondUpToSixtySeconds)
{
    backoff_schedule s;
    const std::chrono::milliseconds expected[] = {1s, 2s, 4s, 8s, 16s, 32s, 60s, 60s, 60s};
    for (const auto e : expected)
        EXPECT_EQ(s.next_delay(0.5), e);
}

TEST(Backoff, JitterStaysWithinTwentyPercent)
{
    backoff_schedule s;
    EXPECT_EQ(s.next_delay(0.0), 800ms);
    s.reset();
    EXPECT_EQ(s.next_delay(1.0), 1200ms);

    backoff_schedule random(backoff_params{}, 42);
    for (int i = 0; i < 1000; ++i) {
        random.reset();
        const auto d = random.next_delay();
        EXPECT_GE(d, 800ms);
        EXPECT_LE(d, 1200ms);
    }
}

TEST(Backoff, JitterSpreadsDelaysOfDifferentSeeds)
{
    backoff_schedule a(backoff_params{}, 1);
    backoff_schedule b(backoff_params{}, 2);
    int differing = 0;
    for (int i = 0; i < 20; ++i) {
        a.reset();
        b.reset();
        if (a.next_delay() != b.next_delay()) ++differing;
    }
    EXPECT_GT(differing, 15);
}

TEST(Backoff, ResetStartsAgainFromInitial)
{
    backoff_schedule s;
    s.next_delay(0.5);
    s.next_delay(0.5);
    EXPECT_EQ(s.consecutive_failures(), 2u);
    s.reset();
    EXPECT_EQ(s.next_delay(0.5), 1s);
}

TEST(Backoff, SessionEndResetsOnlyAfterAStablePeriod)
{
    backoff_schedule s;
    s.next_delay(0.5);
    s.next_delay(0.5);
    s.on_session_end(59s);
    EXPECT_EQ(s.next_delay(0.5), 4s);
    s.on_session_end(60s);
    EXPECT_EQ(s.next_delay(0.5), 1s);
}

TEST(Backoff, ShortTestScheduleFollowsParams)
{
    backoff_schedule s(backoff_params{.initial = 100ms, .max = 1s, .jitter = 0.0});
    const std::chrono::milliseconds expected[] = {100ms, 200ms, 400ms, 800ms, 1s, 1s};
    for (const auto e : expected)
        EXPECT_EQ(s.next_delay(), e);
}

TEST(Backoff, ManyFailuresNeverOverflowTheCap)
{
    backoff_schedule s(backoff_params{.multiplier = 10.0, .jitter = 0.0});
    for (int i = 0; i < 1000; ++i)
        EXPECT_LE(s.next_delay(), 60s);
    EXPECT_EQ(s.next_delay(), 60s);
}

TEST(Backoff, BadParamsAreRejectedNamingTheField)
{
    const auto message_of = [](backoff_params p) {
        try {
            backoff_schedule s(p);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_NE(message_of({.initial = 0ms}).find("initial"), std::string::npos);
    EXPECT_NE(message_of({.multiplier = 0.5}).find("multiplier"), std::string::npos);
    EXPECT_NE(message_of({.initial = 2s, .max = 1s}).find("max"), std::string::npos);
    EXPECT_NE(message_of({.jitter = 1.0}).find("jitter"), std::string::npos);
    EXPECT_NE(message_of({.reset_after = -1ms}).find("reset_after"), std::string::npos);
    EXPECT_EQ(message_of({}), "");
}
