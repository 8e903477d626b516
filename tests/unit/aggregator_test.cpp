#include "omnitak/pool/aggregator.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

namespace omnitak {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// A clock the test moves by hand.
struct fake_clock {
    steady::time_point now{std::chrono::hours(1000)};
    std::function<steady::time_point()> fn()
    {
        return [this] { return now; };
    }
};

const cot_time t0 = cot_time{std::chrono::seconds(1'767'225'600)};  // 2026-01-01T00:00:00Z

message_ptr report(std::string uid, cot_time time, link_id origin = no_link, std::string bytes = {})
{
    cot_summary s;
    s.uid = std::move(uid);
    s.type = "a-f-G-U-C";
    s.time = time;
    s.start = time;
    s.stale = time + 60s;
    s.point = cot_point{45.0, 7.0};
    if (bytes.empty()) bytes = "<event uid='" + s.uid + "'/>";
    return std::make_shared<cot_message>(std::move(bytes), std::move(s), origin);
}

// prefix + number, built by appending (g++ 12 warns falsely about `"a" + std::to_string(i)`).
std::string name(const char* prefix, int i)
{
    std::string s = prefix;
    s += std::to_string(i);
    return s;
}

// The same event as it comes back on another link.
message_ptr relayed(const message_ptr& m, link_id origin)
{
    return std::make_shared<cot_message>(std::string(m->bytes()), m->summary(), origin);
}

class AggregatorTest : public ::testing::Test {
protected:
    fake_clock clock;
    aggregator make(aggregator_params p = {})
    {
        p.clock = clock.fn();
        return aggregator(std::move(p));
    }
};

TEST_F(AggregatorTest, PositionUpdatesOfOneUidAllPass)
{
    auto agg = make();
    for (int i = 0; i < 10; ++i) {
        EXPECT_TRUE(agg.accept(report("ANDROID-1", t0 + std::chrono::seconds(i)))) << i;
        clock.now += 1s;
    }
    const auto st = agg.stats();
    EXPECT_EQ(st.unique, 10u);
    EXPECT_EQ(st.duplicates, 0u);
    EXPECT_EQ(st.entries, 10u);
}

TEST_F(AggregatorTest, SameEventOnTwoLinksIsOneDuplicate)
{
    auto agg = make();
    const auto first = report("ANDROID-1", t0, 1);
    const auto second = relayed(first, 2);

    const auto a = agg.check(*first);
    const auto b = agg.check(*second);
    EXPECT_EQ(a.verdict, dedup_verdict::unique);
    EXPECT_EQ(b.verdict, dedup_verdict::duplicate);
    EXPECT_EQ(b.first_seen_on, 1u);  // the entry remembers where it was first seen

    const auto st = agg.stats();
    EXPECT_EQ(st.unique, 1u);
    EXPECT_EQ(st.duplicates, 1u);
    EXPECT_DOUBLE_EQ(st.dedup_ratio(), 0.5);
}

TEST_F(AggregatorTest, ResentAfterTheWindowPassesAgain)
{
    auto agg = make({.window = 60s});
    const auto m = report("ANDROID-1", t0, 1);
    EXPECT_TRUE(agg.accept(m));
    clock.now += 59s;
    EXPECT_FALSE(agg.accept(relayed(m, 2)));
    clock.now += 1s;  // exactly one window after it was first seen
    EXPECT_TRUE(agg.accept(relayed(m, 3)));

    const auto info = agg.lookup(*m);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->first_seen_on, 3u);
    EXPECT_EQ(info->first_seen, clock.now);
    EXPECT_EQ(agg.stats().expirations, 1u);
}

TEST_F(AggregatorTest, DuplicatesDoNotExtendTheWindow)
{
    auto agg = make({.window = 10s});
    const auto m = report("u", t0);
    EXPECT_TRUE(agg.accept(m));
    for (int i = 0; i < 9; ++i) {
        clock.now += 1s;
        EXPECT_FALSE(agg.accept(m));
    }
    clock.now += 1s;
    EXPECT_TRUE(agg.accept(m));
}

TEST_F(AggregatorTest, NewerTimeAndStalePassesAndIsTheNewerState)
{
    auto agg = make();
    const auto older = report("ANDROID-1", t0, 1);
    const auto newer = report("ANDROID-1", t0 + 5s, 2);  // time and stale move on
    EXPECT_TRUE(agg.accept(older));
    clock.now += 5s;
    EXPECT_TRUE(agg.accept(newer));

    const auto info = agg.lookup(*newer);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->event_time, t0 + 5s);
    EXPECT_EQ(info->first_seen_on, 2u);

    // Echoes of either are duplicates.
    EXPECT_FALSE(agg.accept(relayed(older, 3)));
    EXPECT_FALSE(agg.accept(relayed(newer, 3)));
}

TEST_F(AggregatorTest, UidKeyRefreshesToTheNewerStateAfterTheWindow)
{
    auto agg = make({.key = dedup_key::uid, .window = 30s});
    EXPECT_TRUE(agg.accept(report("u", t0, 1)));
    clock.now += 5s;
    EXPECT_FALSE(agg.accept(report("u", t0 + 5s, 1)));  // uid-only: an update is a repeat
    clock.now += 25s;
    const auto newer = report("u", t0 + 30s, 2);
    EXPECT_TRUE(agg.accept(newer));

    const auto info = agg.lookup(*newer);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->event_time, t0 + 30s);
    EXPECT_EQ(info->first_seen_on, 2u);
    EXPECT_EQ(agg.stats().entries, 1u);
}

TEST_F(AggregatorTest, ExpiredEntryNeverRemovesANewerEntryForTheSameKey)
{
    // One shard so the sweep sees every entry.
    auto agg = make({.key = dedup_key::uid, .window = 10s, .shards = 1});
    EXPECT_TRUE(agg.accept(report("k", t0)));
    clock.now += 11s;
    EXPECT_TRUE(agg.accept(report("k", t0 + 11s)));  // takes the expired entry over

    // Inserting other keys sweeps expired entries from the cold end; "k" is fresh again.
    clock.now += 5s;
    for (int i = 0; i < 20; ++i)
        EXPECT_TRUE(agg.accept(report(name("other-", i), t0)));
    EXPECT_FALSE(agg.accept(report("k", t0 + 16s)));
}

TEST_F(AggregatorTest, SweepRemovesExpiredEntries)
{
    auto agg = make({.window = 10s, .shards = 1});
    for (int i = 0; i < 8; ++i)
        EXPECT_TRUE(agg.accept(report(name("a", i), t0)));
    clock.now += 10s;
    for (int i = 0; i < 2; ++i)
        EXPECT_TRUE(agg.accept(report(name("b", i), t0)));
    const auto st = agg.stats();
    EXPECT_EQ(st.expirations, 8u);  // four per insert
    EXPECT_EQ(st.entries, 2u);
    EXPECT_EQ(st.evictions, 0u);
}

TEST_F(AggregatorTest, BoundedByMaxEntriesWithLruEviction)
{
    auto agg = make({.max_entries = 3, .shards = 1});
    EXPECT_TRUE(agg.accept(report("a", t0)));
    EXPECT_TRUE(agg.accept(report("b", t0)));
    EXPECT_TRUE(agg.accept(report("c", t0)));
    EXPECT_FALSE(agg.accept(report("a", t0)));  // touches a: b is now least recently used
    EXPECT_TRUE(agg.accept(report("d", t0)));   // evicts b
    EXPECT_FALSE(agg.accept(report("a", t0)));
    EXPECT_FALSE(agg.accept(report("c", t0)));
    EXPECT_TRUE(agg.accept(report("b", t0)));  // was evicted, so unique again

    const auto st = agg.stats();
    EXPECT_EQ(st.entries, 3u);
    EXPECT_EQ(st.evictions, 2u);
}

TEST_F(AggregatorTest, ShardedBoundIsExact)
{
    auto agg = make({.max_entries = 100, .shards = 16});
    for (int i = 0; i < 10'000; ++i)
        agg.accept(report(name("u", i), t0));
    const auto st = agg.stats();
    EXPECT_EQ(st.entries, 100u);
    EXPECT_EQ(st.unique, 10'000u);
    EXPECT_EQ(st.evictions, 9'900u);
}

TEST_F(AggregatorTest, MessagesWithoutUidPassAndAreCounted)
{
    auto agg = make();
    const auto m = report("", t0);
    EXPECT_TRUE(agg.accept(m));
    EXPECT_TRUE(agg.accept(m));
    EXPECT_EQ(agg.check(*m).verdict, dedup_verdict::no_uid);
    const auto st = agg.stats();
    EXPECT_EQ(st.no_uid, 3u);
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.unique, 0u);
}

TEST_F(AggregatorTest, ContentHashKeysOnTheBytes)
{
    auto agg = make({.key = dedup_key::content_hash});
    const auto a = report("u", t0, 1, "<event uid='u' how='m-g'/>");
    const auto same_bytes = report("u", t0, 2, "<event uid='u' how='m-g'/>");
    const auto other_bytes = report("u", t0, 2, "<event how='m-g' uid='u'/>");
    EXPECT_TRUE(agg.accept(a));
    EXPECT_FALSE(agg.accept(same_bytes));
    EXPECT_TRUE(agg.accept(other_bytes));
}

TEST_F(AggregatorTest, ClearForgetsEverything)
{
    auto agg = make();
    const auto m = report("u", t0);
    EXPECT_TRUE(agg.accept(m));
    agg.clear();
    EXPECT_EQ(agg.stats().entries, 0u);
    EXPECT_EQ(agg.stats().unique, 0u);
    EXPECT_TRUE(agg.accept(m));
}

TEST_F(AggregatorTest, LookupDoesNotRecord)
{
    auto agg = make();
    const auto m = report("u", t0);
    EXPECT_FALSE(agg.lookup(*m).has_value());
    EXPECT_TRUE(agg.accept(m));
    EXPECT_EQ(agg.lookup(*m)->duplicates, 0u);
    EXPECT_FALSE(agg.accept(m));
    EXPECT_EQ(agg.lookup(*m)->duplicates, 1u);
    EXPECT_EQ(agg.stats().duplicates, 1u);
}

TEST(Aggregator, RejectsBadParams)
{
    EXPECT_THROW(aggregator({.window = 0ms}), std::invalid_argument);
    EXPECT_THROW(aggregator({.max_entries = 0}), std::invalid_argument);
    EXPECT_THROW(aggregator({.shards = 0}), std::invalid_argument);
}

TEST(Aggregator, DefaultsFollowTheDesign)
{
    const aggregator agg;
    EXPECT_EQ(agg.params().key, dedup_key::uid_and_time);
    EXPECT_EQ(agg.params().window, 60s);
    EXPECT_EQ(agg.params().max_entries, 100'000u);
}

}  // namespace
}  // namespace omnitak
