#include "omnitak/pool/distributor.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "omnitak/pool/aggregator.hpp"
#include "omnitak/pool/error.hpp"

namespace omnitak {
namespace {

using namespace std::chrono_literals;

const cot_time t0 = cot_time{std::chrono::seconds(1'767'225'600)};

message_ptr make(std::string type, std::optional<cot_point> point = std::nullopt,
                 link_id origin = no_link, std::string uid = "u-1", std::string callsign = {})
{
    cot_summary s;
    s.uid = std::move(uid);
    s.type = std::move(type);
    s.time = t0;
    s.point = point;
    s.callsign = std::move(callsign);
    return std::make_shared<cot_message>("<event/>", std::move(s), origin);
}

message_ptr numbered(int i, link_id origin = no_link)
{
    cot_summary s;
    s.uid = "u-" + std::to_string(i);
    s.type = "a-f-G";
    s.time = t0 + std::chrono::seconds(i);
    return std::make_shared<cot_message>("<event/>", std::move(s), origin);
}

std::vector<message_ptr> drain(outbound_queue& q)
{
    std::vector<message_ptr> out(q.size() + 16);
    out.resize(q.try_pop_bulk(out.data(), out.size()));
    return out;
}

// Runs the io_context in small slices until `done` holds; fails the test after `limit`.
bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = 5s)
{
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        io.restart();
        io.run_for(2ms);
    }
    return true;
}

class DistributorTest : public ::testing::Test {
protected:
    asio::io_context io;
    std::shared_ptr<outbound_queue> queue(std::size_t capacity = 1000)
    {
        return std::make_shared<outbound_queue>(io.get_executor(), capacity);
    }
};

// --- routes and filters -----------------------------------------------------------------------

TEST_F(DistributorTest, DeliversOnlyToLinksWhoseFiltersMatch)
{
    distributor d(io.get_executor());
    auto hostile = queue(), friendly = queue(), near = queue(), everything = queue();
    ASSERT_FALSE(d.add_route(1, filter::by_type({"a-h"}), hostile));
    ASSERT_FALSE(d.add_route(2, filter::by_type({"a-f-G"}), friendly));
    ASSERT_FALSE(d.add_route(3, filter::within_radius(45.0, 7.0, 10.0), near));
    ASSERT_FALSE(d.add_route(4, everything));  // no filter: receives everything

    EXPECT_EQ(d.route_now(make("a-h-A-M-F", cot_point{0.0, 0.0})), 2u);
    EXPECT_EQ(d.route_now(make("a-f-G-U-C", cot_point{45.01, 7.0})), 3u);
    EXPECT_EQ(d.route_now(make("a-f-GX")), 1u);

    EXPECT_EQ(hostile->size(), 1u);
    EXPECT_EQ(friendly->size(), 1u);
    EXPECT_EQ(near->size(), 1u);
    EXPECT_EQ(everything->size(), 3u);

    const auto st = d.stats();
    EXPECT_EQ(st.routed, 3u);
    EXPECT_EQ(st.deliveries, 6u);
    EXPECT_EQ(st.dropped, 0u);
    EXPECT_EQ(st.latency_count, 3u);
}

TEST_F(DistributorTest, NeverSendsAMessageBackToItsOrigin)
{
    distributor d(io.get_executor());
    auto a = queue(), b = queue();
    ASSERT_FALSE(d.add_route(1, a));
    ASSERT_FALSE(d.add_route(2, b));
    EXPECT_EQ(d.route_now(make("a-f-G", {}, 1)), 1u);
    EXPECT_EQ(a->size(), 0u);
    EXPECT_EQ(b->size(), 1u);

    std::vector<link_id> links;
    d.matching_links(*make("a-f-G", {}, 2), links);
    EXPECT_EQ(links, std::vector<link_id>{1});
}

TEST_F(DistributorTest, RouteManagementReportsErrors)
{
    distributor d(io.get_executor());
    auto q = queue();
    EXPECT_FALSE(d.add_route(1, q));
    EXPECT_EQ(d.add_route(1, q), make_error_code(errc::link_exists));
    EXPECT_EQ(d.remove_route(2), make_error_code(errc::link_not_found));
    EXPECT_EQ(d.set_filter(2, filter::never()), make_error_code(errc::link_not_found));
    EXPECT_THROW(d.add_route(no_link, q), std::invalid_argument);
    EXPECT_THROW(d.add_route(3, nullptr), std::invalid_argument);
    EXPECT_TRUE(d.has_route(1));
    EXPECT_EQ(d.route_count(), 1u);
    EXPECT_FALSE(d.remove_route(1));
    EXPECT_FALSE(d.has_route(1));
    EXPECT_EQ(d.route_now(make("a")), 0u);
    EXPECT_EQ(d.stats().unrouted, 1u);
}

TEST_F(DistributorTest, SetFilterTakesEffectAndKeepsCounters)
{
    distributor d(io.get_executor());
    auto q = queue();
    ASSERT_FALSE(d.add_route(1, filter::by_type({"a-f"}), q));
    EXPECT_EQ(d.route_now(make("a-f-G")), 1u);
    ASSERT_FALSE(d.set_filter(1, filter::by_type({"a-h"})));
    EXPECT_EQ(d.route_now(make("a-f-G")), 0u);
    EXPECT_EQ(d.route_now(make("a-h-G")), 1u);
    const auto rs = d.stats_of(1);
    ASSERT_TRUE(rs.has_value());
    EXPECT_EQ(rs->delivered, 2u);
    EXPECT_EQ(rs->filter, "type(a-h)");
}

TEST_F(DistributorTest, RejectsBadParams)
{
    EXPECT_THROW(distributor(io.get_executor(), {.workers = 0}), std::invalid_argument);
    EXPECT_THROW(distributor(io.get_executor(), {.intake_capacity = 0}), std::invalid_argument);
    EXPECT_THROW(distributor(io.get_executor(), {.batch_size = 0}), std::invalid_argument);
    EXPECT_THROW(distributor(io.get_executor(), {.flush_interval = -1ms}), std::invalid_argument);
    EXPECT_THROW(
        distributor(io.get_executor(), {.strategy = backpressure::timeout, .send_timeout = 0ms}),
        std::invalid_argument);
    EXPECT_THROW(distributor(io.get_executor(), {.geo_cell_degrees = 0.0}), std::invalid_argument);
    EXPECT_THROW(distributor(io.get_executor(), {.geo_cell_degrees = 91.0}), std::invalid_argument);
}

// The index must find exactly what evaluating every filter finds.
TEST_F(DistributorTest, IndexAgreesWithEvaluatingEveryFilter)
{
    std::mt19937 rng(12345);
    auto uniform = [&](double lo, double hi) {
        return std::uniform_real_distribution(lo, hi)(rng);
    };
    auto pick = [&](const std::vector<std::string>& v) {
        return v[std::uniform_int_distribution<std::size_t>(0, v.size() - 1)(rng)];
    };
    const std::vector<std::string> types = {
        "a",         "a-f",         "a-h-G", "a-.-A",        "a-f-G-U-C", "a-h-G-U-i-m-etf",
        "a-.-A-C-F", "b-m-p-s-p-i", "xyz",   "t-x-c-t",      ".",         "a-f-GX",
        "a-n-S",     "a-u-.-U",     "b",     "a-h-A-M-F-Q-r"};
    const std::vector<std::string> callsigns = {"ALPHA", "BRAVO", "CHARLIE", ""};

    auto random_point = [&]() -> std::optional<cot_point> {
        switch (rng() % 5) {
            case 0:
                return std::nullopt;
            case 1:  // near a pole
                return cot_point{uniform(-90, 90) > 0 ? uniform(88, 90) : uniform(-90, -88),
                                 uniform(-180, 180)};
            case 2:  // near the antimeridian
                return cot_point{uniform(-60, 60),
                                 rng() % 2 ? uniform(178, 180) : uniform(-180, -178)};
            default:
                return cot_point{uniform(-90, 90), uniform(-180, 180)};
        }
    };
    std::function<filter(int)> random_filter = [&](int depth) -> filter {
        switch (rng() % (depth > 1 ? 8 : 11)) {
            case 0:
                return filter::by_type({pick(types)});
            case 1:
                return filter::by_type({pick(types), pick(types)});
            case 2: {
                const auto p = random_point();
                const auto c = p.value_or(cot_point{10, 10});
                return filter::within_radius(c.lat, c.lon, uniform(1, 3000));
            }
            case 3: {
                const double s = uniform(-90, 80);
                return filter::within_box(s, uniform(-180, 180), std::min(90.0, s + uniform(0, 30)),
                                          uniform(-180, 180));
            }
            case 4:
                return filter::by_callsign({"ALPHA"});
            case 5:
                return rng() % 4 ? filter::by_uid({"u-1"}) : filter::always();
            case 6:
                return filter::never();
            case 7:
                return filter::custom("lat>0", [](const cot_message& m) {
                    return m.summary().point && m.summary().point->lat > 0;
                });
            case 8:
                return filter::all_of({random_filter(depth + 1), random_filter(depth + 1)});
            case 9:
                return filter::any_of({random_filter(depth + 1), random_filter(depth + 1)});
            default:
                return !random_filter(depth + 1);
        }
    };

    distributor d(io.get_executor(), {.geo_cell_degrees = 2.5, .geo_max_cells_per_filter = 500});
    std::vector<filter> filters;
    for (link_id link = 1; link <= 400; ++link) {
        filters.push_back(random_filter(0));
        ASSERT_FALSE(d.add_route(link, filters.back(), queue()));
    }

    std::vector<link_id> got;
    for (int i = 0; i < 3000; ++i) {
        const auto m = make(pick(types), random_point(), rng() % 10 == 0 ? 7 : no_link,
                            rng() % 3 ? "u-1" : "u-2", pick(callsigns));
        std::set<link_id> want;
        for (link_id link = 1; link <= filters.size(); ++link) {
            if (link != m->origin() && filters[link - 1].matches(*m)) want.insert(link);
        }
        d.matching_links(*m, got);
        const std::set<link_id> got_set(got.begin(), got.end());
        ASSERT_EQ(got_set.size(), got.size()) << "a link was listed twice";
        ASSERT_EQ(got_set, want) << "message " << i << " type " << m->summary().type;
    }
}

// --- loop suppression with the aggregator -----------------------------------------------------

TEST_F(DistributorTest, EchoingServersDoNotMultiplySends)
{
    aggregator agg;
    distributor d(io.get_executor());
    auto q1 = queue(), q2 = queue();
    ASSERT_FALSE(d.add_route(1, q1));
    ASSERT_FALSE(d.add_route(2, q2));

    // The application submits one event.
    const auto event = make("a-f-G-U-C", cot_point{45, 7}, no_link, "ANDROID-1");
    ASSERT_TRUE(agg.accept(event));
    d.route_now(event);

    // Each server echoes what it was sent back to us, on its own link.
    for (auto [link, q] : {std::pair{link_id{1}, q1}, std::pair{link_id{2}, q2}}) {
        for (const auto& sent : drain(*q)) {
            const auto echo =
                std::make_shared<cot_message>(std::string(sent->bytes()), sent->summary(), link);
            if (agg.accept(echo)) d.route_now(echo);
        }
    }

    EXPECT_EQ(d.stats().deliveries, 2u);
    EXPECT_EQ(agg.stats().duplicates, 2u);
    EXPECT_EQ(q1->size() + q2->size(), 0u);
}

// --- workers, batching, backpressure ------------------------------------------------------------

TEST_F(DistributorTest, WorkersRouteSubmittedMessagesInBatches)
{
    distributor d(io.get_executor(), {.workers = 2, .batch_size = 8});
    auto q = queue();
    ASSERT_FALSE(d.add_route(1, q));
    d.start();
    for (int i = 0; i < 100; ++i)
        ASSERT_TRUE(d.submit(numbered(i)));
    ASSERT_TRUE(run_until(io, [&] { return q->size() == 100; }));

    const auto st = d.stats();
    EXPECT_EQ(st.submitted, 100u);
    EXPECT_EQ(st.routed, 100u);
    EXPECT_EQ(st.deliveries, 100u);
    EXPECT_GE(st.batches, 100u / 8);
    std::uint64_t bucketed = 0;
    for (auto b : st.latency_buckets)
        bucketed += b;
    EXPECT_EQ(bucketed, 100u);

    d.stop();
    ASSERT_TRUE(run_until(io, [&] { return d.running_workers() == 0; }));
    EXPECT_FALSE(d.submit(numbered(0)));
    EXPECT_EQ(d.stats().intake_dropped, 1u);
}

TEST_F(DistributorTest, EveryBatchIsObservedInItsSizeBucket)
{
    // Queued before the worker starts, 100 messages make 12 full batches of 8 and one of 4.
    distributor d(io.get_executor(), {.workers = 1, .batch_size = 8});
    auto q = queue();
    ASSERT_FALSE(d.add_route(1, q));
    for (int i = 0; i < 100; ++i)
        ASSERT_TRUE(d.submit(numbered(i)));
    d.start();
    ASSERT_TRUE(run_until(io, [&] { return q->size() == 100; }));

    const auto st = d.stats();
    EXPECT_EQ(st.batches, 13u);
    EXPECT_EQ(st.batched_messages, 100u);
    const auto bucket_of = [](std::uint64_t size) {
        return static_cast<std::size_t>(std::lower_bound(distributor_batch_size_bounds.begin(),
                                                         distributor_batch_size_bounds.end(),
                                                         size) -
                                        distributor_batch_size_bounds.begin());
    };
    ASSERT_EQ(distributor_batch_size_bounds[bucket_of(8)], 10u);
    ASSERT_EQ(distributor_batch_size_bounds[bucket_of(4)], 5u);
    for (std::size_t i = 0; i < st.batch_size_buckets.size(); ++i) {
        const std::uint64_t want = i == bucket_of(8) ? 12u : i == bucket_of(4) ? 1u : 0u;
        EXPECT_EQ(st.batch_size_buckets[i], want) << "bucket " << i;
    }

    // route_now() bypasses the intake: not a batch.
    d.route_now(numbered(1000));
    EXPECT_EQ(d.stats().batches, 13u);
}

TEST_F(DistributorTest, StopRoutesWhatIsAlreadyQueued)
{
    distributor d(io.get_executor(), {.workers = 1, .batch_size = 4});
    auto q = queue();
    ASSERT_FALSE(d.add_route(1, q));
    d.start();
    for (int i = 0; i < 10; ++i)
        ASSERT_TRUE(d.submit(numbered(i)));
    d.stop();
    ASSERT_TRUE(run_until(io, [&] { return d.running_workers() == 0; }));
    EXPECT_EQ(q->size(), 10u);
}

TEST_F(DistributorTest, FullIntakeDropsAndCounts)
{
    distributor d(io.get_executor(), {.intake_capacity = 3});
    for (int i = 0; i < 5; ++i)
        d.submit(numbered(i));
    EXPECT_EQ(d.intake_size(), 3u);
    EXPECT_EQ(d.stats().intake_dropped, 2u);
}

TEST_F(DistributorTest, PartialBatchWaitsForTheFlushInterval)
{
    distributor d(io.get_executor(), {.workers = 1, .batch_size = 10, .flush_interval = 200ms});
    auto q = queue();
    ASSERT_FALSE(d.add_route(1, q));
    d.start();
    const auto begin = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i)
        ASSERT_TRUE(d.submit(numbered(i)));
    ASSERT_TRUE(run_until(io, [&] { return q->size() == 3; }));
    EXPECT_GE(std::chrono::steady_clock::now() - begin, 200ms);
    EXPECT_EQ(d.stats().batches, 1u);

    // A full batch goes at once.
    const auto again = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i)
        ASSERT_TRUE(d.submit(numbered(i)));
    ASSERT_TRUE(run_until(io, [&] { return q->size() == 13; }));
    EXPECT_LT(std::chrono::steady_clock::now() - again, 150ms);
}

TEST_F(DistributorTest, DropStrategyCountsEveryDropExactly)
{
    distributor d(io.get_executor(), {.strategy = backpressure::drop});
    auto full = queue(2), open = queue();
    ASSERT_TRUE(full->try_push(numbered(-1)));
    ASSERT_TRUE(full->try_push(numbered(-2)));
    ASSERT_FALSE(d.add_route(1, full));
    ASSERT_FALSE(d.add_route(2, open));
    d.start();
    for (int i = 0; i < 5; ++i)
        ASSERT_TRUE(d.submit(numbered(i)));
    ASSERT_TRUE(run_until(io, [&] { return d.stats().routed == 5; }));

    EXPECT_EQ(d.stats().dropped, 5u);
    EXPECT_EQ(d.stats_of(1)->dropped, 5u);
    EXPECT_EQ(d.stats_of(1)->delivered, 0u);
    EXPECT_EQ(d.stats_of(2)->delivered, 5u);
    EXPECT_EQ(d.stats_of(2)->dropped, 0u);
}

TEST_F(DistributorTest, BlockStrategyWaitsThenDeliversEverything)
{
    distributor d(io.get_executor(), {.workers = 1, .strategy = backpressure::block});
    auto full = queue(2);
    ASSERT_TRUE(full->try_push(numbered(-1)));
    ASSERT_TRUE(full->try_push(numbered(-2)));
    ASSERT_FALSE(d.add_route(1, full));
    d.start();
    for (int i = 0; i < 5; ++i)
        ASSERT_TRUE(d.submit(numbered(i)));

    // Nothing moves while the link's queue stays full.
    io.run_for(50ms);
    EXPECT_EQ(d.stats().deliveries, 0u);
    EXPECT_EQ(d.stats().dropped, 0u);

    // The link drains its queue slowly; every message gets through, in order.
    std::vector<std::string> received;
    ASSERT_TRUE(run_until(io, [&] {
        for (const auto& m : drain(*full))
            received.push_back(m->summary().uid);
        return received.size() == 7;
    }));
    EXPECT_EQ(received,
              (std::vector<std::string>{"u--1", "u--2", "u-0", "u-1", "u-2", "u-3", "u-4"}));
    EXPECT_EQ(d.stats().deliveries, 5u);
    EXPECT_EQ(d.stats().dropped, 0u);
}

TEST_F(DistributorTest, TimeoutStrategyDropsOnlyAfterTheTimeout)
{
    distributor d(io.get_executor(),
                  {.workers = 1, .strategy = backpressure::timeout, .send_timeout = 300ms});
    auto full = queue(1);
    ASSERT_TRUE(full->try_push(numbered(-1)));
    ASSERT_FALSE(d.add_route(1, full));
    d.start();
    const auto begin = std::chrono::steady_clock::now();
    ASSERT_TRUE(d.submit(numbered(0)));

    io.run_for(100ms);
    EXPECT_EQ(d.stats().dropped, 0u);
    ASSERT_TRUE(run_until(io, [&] { return d.stats().dropped == 1; }));
    EXPECT_GE(std::chrono::steady_clock::now() - begin, 300ms);
    EXPECT_EQ(d.stats_of(1)->dropped, 1u);

    // With space, the next message is delivered without waiting.
    drain(*full);
    ASSERT_TRUE(d.submit(numbered(1)));
    ASSERT_TRUE(run_until(io, [&] { return d.stats().deliveries == 1; }));
}

TEST_F(DistributorTest, AsyncSubmitWaitsForIntakeSpaceAsTheStrategySays)
{
    distributor d(io.get_executor(), {.workers = 1,
                                      .intake_capacity = 1,
                                      .strategy = backpressure::timeout,
                                      .send_timeout = 100ms});
    auto q = queue();
    ASSERT_FALSE(d.add_route(1, q));
    std::vector<bool> results;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            results.push_back(co_await d.async_submit(numbered(0)));  // fits
            results.push_back(co_await d.async_submit(numbered(1)));  // full: times out
        },
        asio::detached);
    ASSERT_TRUE(run_until(io, [&] { return results.size() == 2; }));
    EXPECT_EQ(results, (std::vector<bool>{true, false}));
    EXPECT_EQ(d.stats().intake_dropped, 1u);

    // Once workers drain the intake, a waiting submit gets through.
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> { results.push_back(co_await d.async_submit(numbered(2))); },
        asio::detached);
    d.start();
    ASSERT_TRUE(run_until(io, [&] { return q->size() == 2; }));
    EXPECT_EQ(results.back(), true);
}

TEST_F(DistributorTest, RouteNowNeverWaits)
{
    distributor d(io.get_executor(), {.strategy = backpressure::block});
    auto full = queue(1);
    ASSERT_TRUE(full->try_push(numbered(-1)));
    ASSERT_FALSE(d.add_route(1, full));
    EXPECT_EQ(d.route_now(numbered(0)), 0u);
    EXPECT_EQ(d.stats().dropped, 1u);
}

}  // namespace
}  // namespace omnitak
