// Routing and deduplication benchmarks.
//
// Method: run from a Release build on an otherwise idle machine, e.g.
//   routing_bench --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
// and read the medians. Every fixture is built once per benchmark, outside the timed loop,
// from a fixed random seed, so runs are comparable.
//
//  - Dedup/Miss: every check is a uid never seen in the window; the cache is full (100,000
//    entries, the default), so each miss also evicts (the steady state of a busy gateway).
//  - Dedup/Hit: every check is a duplicate of an event in the cache.
//  - RouteDecision/N: the links one message goes to, among N links with the filter mix of
//    make_links() (see there), through the distributor's route index. RouteBruteForce/N
//    evaluates every filter for the same links and messages: the baseline the index beats.
//  - Pipeline: aggregator + distributor (2 workers, io_context on 2 threads) into 68 links
//    whose queues are drained and discarded by consumer coroutines; the benchmark thread
//    dedups and submits 4,000 messages per iteration and waits until every link queue is
//    empty again. Reports messages/s and deliveries/s (the producer thread, the two io
//    threads and the consumers share the machine's cores).
#include <benchmark/benchmark.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "omnitak/pool/aggregator.hpp"
#include "omnitak/pool/distributor.hpp"

namespace {

using namespace omnitak;
using namespace std::chrono_literals;

const cot_time t0 = cot_time{std::chrono::seconds(1'767'225'600)};

// A vocabulary of CoT types shaped like MITRE's CoTtypes.xml (about 2,000 entries): atoms
// by affiliation, battle dimension and two levels of function, plus a few other roots.
std::vector<std::string> type_vocabulary()
{
    std::vector<std::string> out;
    const char* affiliations[] = {"f", "h", "n", "u", "a", "s"};
    const char* dimensions[] = {"G", "A", "S", "U", "F"};
    const char* function1[] = {"U", "E", "I", "C", "M", "X"};
    const char* function2[] = {"C", "V", "S", "I", "F", "R", "M", "H"};
    for (const char* a : affiliations) {
        for (const char* d : dimensions) {
            for (const char* f1 : function1) {
                for (const char* f2 : function2) {
                    out.push_back(std::string("a-") + a + "-" + d + "-" + f1 + "-" + f2);
                }
            }
        }
    }
    for (const char* other : {"b-m-p-s-p-i", "b-m-p-w", "b-t-f", "t-x-c-t", "u-d-f", "b-a-o-tbl"})
        out.emplace_back(other);
    return out;
}

struct fixture_rng {
    std::mt19937_64 rng{42};
    double uniform(double lo, double hi) { return std::uniform_real_distribution(lo, hi)(rng); }
    std::size_t index(std::size_t n)
    {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
    }
};

// The filter mix: per link, 35 % type filters (1-2 patterns from the vocabulary, 1 in 10 with
// "." for the affiliation), 30 %
// radius 5-100 km, 10 % boxes of 0.5-2 degrees, 10 % callsign or uid, 10 % all_of(broad type,
// radius), 5 % any_of(type, callsign); plus, whatever N, 4 links without a filter and 4 custom
// filters (evaluated for every message).
std::vector<filter> make_links(std::size_t n, fixture_rng& r, const std::vector<std::string>& types)
{
    std::vector<filter> out;
    auto point_lat = [&] { return r.uniform(-60, 70); };
    auto point_lon = [&] { return r.uniform(-180, 180); };
    auto pattern = [&] {
        std::string t = types[r.index(types.size())];
        if (r.index(10) == 0 && t.size() > 3 && t[0] == 'a') t[2] = '.';  // a-.-...
        return t;
    };
    for (std::size_t i = 0; i < n; ++i) {
        const auto roll = r.index(100);
        if (roll < 35) {
            out.push_back(r.index(2) ? filter::by_type({pattern()})
                                     : filter::by_type({pattern(), pattern()}));
        } else if (roll < 65) {
            out.push_back(filter::within_radius(point_lat(), point_lon(), r.uniform(5, 100)));
        } else if (roll < 75) {
            const double s = point_lat(), w = point_lon();
            out.push_back(filter::within_box(s, w, s + r.uniform(0.5, 2),
                                             std::min(180.0, w + r.uniform(0.5, 2))));
        } else if (roll < 85) {
            out.push_back(r.index(2)
                              ? filter::by_callsign({"CS-" + std::to_string(r.index(100'000))})
                              : filter::by_uid({"UID-" + std::to_string(r.index(100'000))}));
        } else if (roll < 95) {
            out.push_back(filter::by_type({r.index(2) ? "a-f" : "a-h"}) &&
                          filter::within_radius(point_lat(), point_lon(), r.uniform(5, 100)));
        } else {
            out.push_back(filter::by_type({pattern()}) ||
                          filter::by_callsign({"CS-" + std::to_string(r.index(100'000))}));
        }
    }
    for (int i = 0; i < 4; ++i)
        out.push_back(filter::always());
    for (int i = 0; i < 4; ++i) {
        out.push_back(
            filter::custom("north-of-" + std::to_string(60 + i), [i](const cot_message& m) {
                return m.summary().point && m.summary().point->lat > 60 + i;
            }));
    }
    return out;
}

std::vector<message_ptr> make_messages(std::size_t n, fixture_rng& r,
                                       const std::vector<std::string>& types)
{
    std::vector<message_ptr> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        cot_summary s;
        s.uid = "UID-" + std::to_string(r.index(100'000));
        s.type = types[r.index(types.size())];
        s.time = t0 + std::chrono::milliseconds(i);
        s.point = cot_point{r.uniform(-60, 70), r.uniform(-180, 180)};
        s.callsign = "CS-" + std::to_string(r.index(100'000));
        out.push_back(std::make_shared<cot_message>("<event/>", std::move(s)));
    }
    return out;
}

// --- dedup ------------------------------------------------------------------------------------

void Dedup_Miss(benchmark::State& state)
{
    // More distinct events than the cache holds, cycled: by the time one comes round again
    // its entry has been evicted, so every check is a miss that evicts.
    constexpr std::size_t pool = 1u << 18;
    std::vector<message_ptr> messages;
    messages.reserve(pool);
    for (std::size_t i = 0; i < pool; ++i) {
        cot_summary s;
        s.uid = "ANDROID-" + std::to_string(0x9e3779b97f4a7c15ULL * (i + 1));
        s.type = "a-f-G-U-C";
        s.time = t0 + std::chrono::seconds(i);
        messages.push_back(std::make_shared<cot_message>("<event/>", std::move(s)));
    }
    aggregator agg;  // defaults: (uid, time), 60 s, 100,000 entries
    for (const auto& m : messages)
        agg.accept(m);

    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(agg.accept(messages[i]));
        i = (i + 1) & (pool - 1);
    }
    if (agg.stats().duplicates != 0) state.SkipWithError("a miss was a hit");
}
BENCHMARK(Dedup_Miss);

// Baseline for Dedup_Miss: reads the same cold messages and hashes their keys, with no cache.
void Dedup_KeyOnly(benchmark::State& state)
{
    constexpr std::size_t pool = 1u << 18;
    std::vector<message_ptr> messages;
    messages.reserve(pool);
    for (std::size_t i = 0; i < pool; ++i) {
        cot_summary s;
        s.uid = "ANDROID-" + std::to_string(0x9e3779b97f4a7c15ULL * (i + 1));
        s.type = "a-f-G-U-C";
        s.time = t0 + std::chrono::seconds(i);
        messages.push_back(std::make_shared<cot_message>("<event/>", std::move(s)));
    }
    std::size_t i = 0;
    for (auto _ : state) {
        const auto& s = messages[i]->summary();
        benchmark::DoNotOptimize(std::hash<std::string_view>{}(s.uid) ^
                                 static_cast<std::size_t>(s.time.time_since_epoch().count()));
        i = (i + 1) & (pool - 1);
    }
}
BENCHMARK(Dedup_KeyOnly);

void Dedup_Hit(benchmark::State& state)
{
    constexpr std::size_t pool = 1u << 14;
    std::vector<message_ptr> messages;
    for (std::size_t i = 0; i < pool; ++i) {
        cot_summary s;
        s.uid = "ANDROID-" + std::to_string(0x9e3779b97f4a7c15ULL * (i + 1));
        s.type = "a-f-G-U-C";
        s.time = t0;
        messages.push_back(std::make_shared<cot_message>("<event/>", std::move(s)));
    }
    const auto start = std::chrono::steady_clock::now();
    aggregator agg({.clock = [start] { return start; }});  // time stands still: always a hit
    for (const auto& m : messages)
        agg.accept(m);

    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(agg.accept(messages[i]));
        i = (i + 1) & (pool - 1);
    }
    if (agg.stats().unique != pool) state.SkipWithError("a hit was a miss");
}
BENCHMARK(Dedup_Hit);

// --- routing decision -------------------------------------------------------------------------

void RouteDecision(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    fixture_rng r;
    const auto types = type_vocabulary();
    const auto filters = make_links(n, r, types);
    const auto messages = make_messages(1024, r, types);

    asio::io_context io;
    distributor d(io.get_executor());
    for (std::size_t i = 0; i < filters.size(); ++i) {
        d.add_route(i + 1, filters[i], std::make_shared<outbound_queue>(io.get_executor(), 1));
    }

    std::vector<link_id> out;
    d.matching_links(*messages[0], out);  // builds the index outside the timed loop
    std::size_t i = 0, matched = 0;
    for (auto _ : state) {
        d.matching_links(*messages[i], out);
        matched += out.size();
        benchmark::DoNotOptimize(out.data());
        i = (i + 1) & 1023;
    }
    state.counters["links"] = static_cast<double>(filters.size());
    state.counters["matches_per_msg"] =
        static_cast<double>(matched) / static_cast<double>(state.iterations());
}
BENCHMARK(RouteDecision)->Arg(1'000)->Arg(10'000);

void RouteBruteForce(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    fixture_rng r;
    const auto types = type_vocabulary();
    const auto filters = make_links(n, r, types);
    const auto messages = make_messages(1024, r, types);

    std::vector<link_id> out;
    std::size_t i = 0, matched = 0;
    for (auto _ : state) {
        out.clear();
        for (std::size_t k = 0; k < filters.size(); ++k) {
            if (filters[k].matches(*messages[i])) out.push_back(k + 1);
        }
        matched += out.size();
        benchmark::DoNotOptimize(out.data());
        i = (i + 1) & 1023;
    }
    state.counters["matches_per_msg"] =
        static_cast<double>(matched) / static_cast<double>(state.iterations());
}
BENCHMARK(RouteBruteForce)->Arg(1'000)->Arg(10'000);

// --- pipeline ---------------------------------------------------------------------------------

void Pipeline(benchmark::State& state)
{
    fixture_rng r;
    const auto types = type_vocabulary();

    // Distinct events (fresh uids) so the aggregator passes them; cycled through a pool
    // larger than the cache.
    constexpr std::size_t pool = 1u << 18;
    std::vector<message_ptr> messages;
    messages.reserve(pool);
    for (std::size_t i = 0; i < pool; ++i) {
        cot_summary s;
        s.uid = "UID-" + std::to_string(i);
        s.type = types[r.index(types.size())];
        s.time = t0;
        s.point = cot_point{r.uniform(-60, 70), r.uniform(-180, 180)};
        messages.push_back(std::make_shared<cot_message>("<event/>", std::move(s)));
    }

    asio::io_context io(2);
    auto guard = asio::make_work_guard(io);
    aggregator agg;
    distributor d(io.get_executor(), {.workers = 2, .intake_capacity = 16'384, .batch_size = 128});

    // 64 links with a type filter each plus 4 taking all.
    std::vector<std::shared_ptr<outbound_queue>> queues;
    for (int i = 0; i < 68; ++i) {
        auto q = std::make_shared<outbound_queue>(io.get_executor(), 8192);
        queues.push_back(q);
        const filter f = i < 4 ? filter::always() : filter::by_type({types[r.index(types.size())]});
        d.add_route(static_cast<link_id>(i + 1), f, q);
        asio::co_spawn(
            io,
            [q]() -> asio::awaitable<void> {
                std::vector<message_ptr> buf(256);
                while (!q->closed() || q->size() > 0) {
                    if (q->try_pop_bulk(buf.data(), buf.size()) == 0)
                        co_await q->async_wait_nonempty();
                }
            },
            asio::detached);
    }
    d.start();
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
        threads.emplace_back([&io] { io.run(); });

    constexpr std::size_t per_iteration = 4'000;
    std::size_t next = 0;
    std::uint64_t passed = 0;
    for (auto _ : state) {
        for (std::size_t k = 0; k < per_iteration; ++k) {
            const auto& m = messages[next];
            next = (next + 1) & (pool - 1);
            if (!agg.accept(m)) continue;
            ++passed;
            while (!d.submit(m))
                std::this_thread::yield();
        }
        while (d.stats().routed < passed)
            std::this_thread::yield();
    }

    const auto st = d.stats();
    d.stop();
    for (auto& q : queues)
        q->close();
    guard.reset();
    for (auto& t : threads)
        t.join();

    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_iteration));
    state.counters["deliveries_per_s"] =
        benchmark::Counter(static_cast<double>(st.deliveries), benchmark::Counter::kIsRate);
    state.counters["dropped"] = static_cast<double>(st.dropped);
    state.counters["deliveries_per_msg"] =
        static_cast<double>(st.deliveries) / static_cast<double>(st.routed);
}
BENCHMARK(Pipeline)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
