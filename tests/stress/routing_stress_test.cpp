// Concurrency hammers for the aggregator and the distributor, meant for ThreadSanitizer.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "omnitak/pool/aggregator.hpp"
#include "omnitak/pool/distributor.hpp"

namespace omnitak {
namespace {

using namespace std::chrono_literals;

const cot_time t0 = cot_time{std::chrono::seconds(1'767'225'600)};

message_ptr report(const std::string& uid, int seq, link_id origin, const char* type, double lat,
                   double lon)
{
    cot_summary s;
    s.uid = uid;
    s.type = type;
    s.time = t0 + std::chrono::seconds(seq);
    s.point = cot_point{lat, lon};
    return std::make_shared<cot_message>("<event/>", std::move(s), origin);
}

TEST(RoutingStress, OneMillionDistinctUidsKeepTheCacheAtItsBound)
{
    aggregator agg({.max_entries = 100'000});
    constexpr int total = 1'000'000;
    constexpr int threads = 4;

    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&agg, t] {
            cot_summary s;
            s.type = "a-f-G";
            s.time = t0;
            for (int i = t; i < total; i += threads) {
                s.uid = "ANDROID-" + std::to_string(i);
                const cot_message m("<event/>", s);
                EXPECT_EQ(agg.check(m).verdict, dedup_verdict::unique);
            }
        });
    }
    for (auto& w : workers)
        w.join();

    const auto st = agg.stats();
    EXPECT_EQ(st.entries, 100'000u);
    EXPECT_EQ(st.unique, static_cast<std::uint64_t>(total));
    EXPECT_EQ(st.evictions, static_cast<std::uint64_t>(total) - 100'000u);
    EXPECT_EQ(st.duplicates, 0u);
}

TEST(RoutingStress, FourThreadsHammerDedupAndRouting)
{
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    aggregator agg({.max_entries = 5'000});
    distributor d(io.get_executor(), {.workers = 2, .intake_capacity = 4096, .batch_size = 32});

    // Links with type, geo and catch-all filters; each queue is drained by a consumer.
    constexpr int links = 16;
    std::vector<std::shared_ptr<outbound_queue>> queues;
    std::atomic<std::uint64_t> consumed{0};
    std::atomic<bool> done{false};
    for (int i = 0; i < links; ++i) {
        auto q = std::make_shared<outbound_queue>(io.get_executor(), 256);
        queues.push_back(q);
        filter f = i % 4 == 0   ? filter::always()
                   : i % 4 == 1 ? filter::by_type({"a-h"})
                   : i % 4 == 2
                       ? filter::within_radius(10.0 * (i % 8), 0.0, 500.0)
                       : filter::by_type({"a-.-G"}) && filter::within_box(-40, -20, 40, 20);
        ASSERT_FALSE(d.add_route(static_cast<link_id>(i + 1), f, q));
        asio::co_spawn(
            io,
            [q, &consumed]() -> asio::awaitable<void> {
                std::vector<message_ptr> buf(64);
                while (!q->closed() || q->size() > 0) {
                    const auto n = q->try_pop_bulk(buf.data(), buf.size());
                    consumed.fetch_add(n, std::memory_order_relaxed);
                    if (n == 0) co_await q->async_wait_nonempty();
                }
            },
            asio::detached);
    }
    d.start();

    std::vector<std::thread> runners;
    for (int i = 0; i < 2; ++i)
        runners.emplace_back([&io] { io.run(); });

    // Four producers; each uid/seq pair is produced by two of them (as two servers relaying
    // one event), so half the traffic is duplicate. Some go through route_now, some through
    // the intake.
    constexpr int per_thread = 20'000;
    std::atomic<std::uint64_t> passed{0};
    std::vector<std::thread> producers;
    for (int t = 0; t < 4; ++t) {
        producers.emplace_back([&, t] {
            const char* types[] = {"a-h-G-U-C", "a-f-G", "a-n-A", "b-m-p-s-p-i"};
            for (int i = 0; i < per_thread; ++i) {
                const int pair = t / 2;
                const auto m = report("uid-" + std::to_string(pair) + "-" + std::to_string(i % 997),
                                      i, static_cast<link_id>(t % links + 1), types[i % 4],
                                      (i % 160) - 80.0, (i % 360) - 180.0);
                if (!agg.accept(m)) continue;
                passed.fetch_add(1, std::memory_order_relaxed);
                if (i % 2) {
                    d.route_now(m);
                } else {
                    while (!d.submit(m))
                        std::this_thread::yield();
                }
            }
        });
    }

    // Meanwhile routes change: one link flips its filter, another comes and goes.
    std::thread churn([&] {
        auto spare = std::make_shared<outbound_queue>(io.get_executor(), 64);
        int round = 0;
        while (!done.load()) {
            d.set_filter(2, round % 2 ? filter::by_type({"a-h"}) : filter::by_type({"a-f"}));
            if (round % 2) {
                d.add_route(100, filter::always(), spare);
            } else {
                d.remove_route(100);
                std::vector<message_ptr> buf(64);
                while (spare->try_pop_bulk(buf.data(), buf.size()) > 0) {
                }
            }
            ++round;
            std::this_thread::sleep_for(1ms);
        }
    });

    for (auto& p : producers)
        p.join();
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (d.stats().routed < passed.load() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    done = true;
    churn.join();
    d.stop();
    for (auto& q : queues)
        q->close();
    guard.reset();
    for (auto& r : runners)
        r.join();

    const auto a = agg.stats();
    const auto s = d.stats();
    EXPECT_EQ(a.unique + a.duplicates, 4u * per_thread);
    EXPECT_GT(a.duplicates, 0u);
    EXPECT_EQ(s.routed, passed.load());
    EXPECT_EQ(s.latency_count, s.routed);
    EXPECT_EQ(s.intake_dropped + s.routed, s.submitted);
    std::uint64_t per_link_total = 0;
    for (const auto& rs : d.all_route_stats())
        per_link_total += rs.delivered + rs.dropped;
    EXPECT_LE(per_link_total, s.deliveries + s.dropped);  // link 100's counters are gone
    EXPECT_LE(consumed.load(), s.deliveries);
    EXPECT_EQ(d.running_workers(), 0u);
}

}  // namespace
}  // namespace omnitak
