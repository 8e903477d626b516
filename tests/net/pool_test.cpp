// The connection pool against real mock TAK servers on loopback.
#include "omnitak/pool/pool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "net_test_helpers.hpp"
#include "omnitak/pool/testing/mock_tak_server.hpp"

using namespace std::chrono_literals;
using namespace omnitak;
using omnitak::test::endpoint;
using omnitak::test::eventually;
using omnitak::test::make_event;
using omnitak::testing::mock_tak_server;
using omnitak::testing::mock_tak_server_params;

namespace {

struct pool_fixture {
    explicit pool_fixture(std::size_t threads = 2, std::size_t max_links = 10'000)
    {
        pool_params p;
        p.threads = threads;
        p.max_links = max_links;
        p.link_defaults = test::quick_settings();
        p.on_inbound = [this](message_ptr m) { inbox(m); };
        pool = std::make_unique<connection_pool>(std::move(p));
    }
    test::inbox inbox;
    std::unique_ptr<connection_pool> pool;
};

std::size_t count_uid(const mock_tak_server& server, const std::string& uid)
{
    std::size_t n = 0;
    for (const auto& e : server.received())
        n += e.summary.uid == uid;
    return n;
}

}  // namespace

TEST(ConnectionPool, MessagesFlowBothWaysThroughAMockServer)
{
    mock_tak_server server;
    pool_fixture f;
    ASSERT_FALSE(f.pool->add_link(endpoint(1, server.port())));
    ASSERT_FALSE(f.pool->add_link(endpoint(2, server.port())));
    ASSERT_TRUE(eventually([&] { return f.pool->stats().links_connected == 2; }));
    ASSERT_TRUE(eventually([&] { return server.connected_clients() == 2; }));

    // Out through link 1; the server relays it to link 2, which hands it in tagged with its id.
    ASSERT_FALSE(f.pool->send_to(1, make_event("out-1", 600)));
    ASSERT_TRUE(eventually([&] { return count_uid(server, "out-1") == 1; }));
    ASSERT_TRUE(eventually([&] { return f.inbox.from(2) == 1; }));
    EXPECT_EQ(f.inbox.from(1), 0u);
    EXPECT_EQ(f.inbox.messages().front()->summary().uid, "out-1");

    // In from the server to both links.
    server.send_to_all(test::event_xml("in-1"));
    ASSERT_TRUE(eventually([&] { return f.inbox.from(1) == 1 && f.inbox.from(2) == 2; }));

    const auto s1 = *f.pool->stats_of(1);
    EXPECT_EQ(s1.messages_sent, 1u);
    EXPECT_EQ(s1.messages_received, 1u);
    EXPECT_GE(s1.pings_sent, 1u);
    EXPECT_GT(s1.bytes_sent, 600u);
    EXPECT_EQ(s1.state, link_state::connected);
    EXPECT_NE(s1.connected_since, std::chrono::system_clock::time_point{});
    EXPECT_EQ(f.pool->shutdown(2s), std::error_code{});
}

// A reply queued by the inbound handler on the same link is written by the reader at once
// (write_now); when the socket takes only part of it, the writer must finish that part before
// anything else, so every event still arrives whole and in order.
namespace {

struct replying_pool {
    explicit replying_pool(std::size_t reply_bytes)
    {
        for (int i = 0; i < 16; ++i)
            replies.push_back(make_event("reply-" + std::to_string(i), reply_bytes));
        pool_params p;
        p.threads = 1;
        p.link_defaults = test::quick_settings();
        p.on_inbound = [this](message_ptr m) {
            if (m->summary().uid != "ask") return;
            for (const auto& r : replies)
                pool->send_to(m->origin(), r);
        };
        pool = std::make_unique<connection_pool>(std::move(p));
    }
    // Connects link 1 to `server`, stops the server reading and asks: the link is left in
    // the middle of writing its replies.
    void stall_replying_to(mock_tak_server& server)
    {
        ASSERT_FALSE(pool->add_link(endpoint(1, server.port())));
        ASSERT_TRUE(eventually([&] { return server.connected_clients() == 1; }));
        server.set_reading(false);
        server.send_to_all(test::event_xml("ask"));
        ASSERT_TRUE(eventually([&] { return pool->stats_of(1)->messages_writing > 0; }));
    }

    std::vector<message_ptr> replies;
    std::unique_ptr<connection_pool> pool;
};

// The uids of the replies the server parsed, in arrival order.
std::vector<std::string> replies_received(const mock_tak_server& server)
{
    std::vector<std::string> uids;
    for (const auto& e : server.received()) {
        if (e.summary.uid.rfind("reply-", 0) == 0) uids.push_back(e.summary.uid);
    }
    return uids;
}

std::vector<std::string> replies_in_order(int rounds)
{
    std::vector<std::string> uids;
    for (int r = 0; r < rounds; ++r) {
        for (int i = 0; i < 16; ++i)
            uids.push_back("reply-" + std::to_string(i));
    }
    return uids;
}

}  // namespace

TEST(ConnectionPool, RepliesFromTheInboundHandlerArriveWholeAndInOrder)
{
    mock_tak_server server;
    replying_pool small(600);
    ASSERT_FALSE(small.pool->add_link(endpoint(1, server.port())));
    ASSERT_TRUE(eventually([&] { return server.connected_clients() == 1; }));
    server.send_to_all(test::event_xml("ask"));
    server.send_to_all(test::event_xml("ask"));
    ASSERT_TRUE(eventually([&] { return replies_received(server).size() == 32; }));
    EXPECT_EQ(replies_received(server), replies_in_order(2));
    EXPECT_TRUE(eventually([&] { return small.pool->stats_of(1)->messages_sent == 32; }));
    EXPECT_EQ(small.pool->shutdown(2s), std::error_code{});

    // 16 x 2 MiB while the server does not read: more than loopback's socket buffers hold,
    // so the first write takes only part of the replies and the writer finishes them.
    server.clear_received();
    replying_pool big(2 * 1024 * 1024);
    ASSERT_NO_FATAL_FAILURE(big.stall_replying_to(server));
    const auto while_stuck = *big.pool->stats_of(1);
    EXPECT_LT(while_stuck.bytes_sent, 16u * 2u * 1024u * 1024u);
    EXPECT_EQ(while_stuck.messages_sent, 0u);
    server.set_reading(true);
    ASSERT_TRUE(eventually([&] { return replies_received(server).size() == 16; }, 30s));
    EXPECT_EQ(replies_received(server), replies_in_order(1));
    EXPECT_EQ(server.parse_failures(), 0u);
    EXPECT_EQ(server.framer_problems(), 0u);
    EXPECT_TRUE(eventually([&] { return big.pool->stats_of(1)->messages_sent == 16; }));
    EXPECT_EQ(big.pool->stats_of(1)->dropped_unsent, 0u);
    EXPECT_EQ(big.pool->shutdown(2s), std::error_code{});
}

TEST(ConnectionPool, AReplyCutShortByTheSessionEndIsSentAgainOnTheNext)
{
    mock_tak_server server;
    replying_pool big(2 * 1024 * 1024);
    ASSERT_NO_FATAL_FAILURE(big.stall_replying_to(server));

    // The session ends with the replies part-written; they go back to the queue (none is
    // lost) and the next session sends them, whole and in order.
    server.clear_received();
    server.close_all_clients();
    server.set_reading(true);
    ASSERT_TRUE(eventually([&] { return big.pool->stats_of(1)->reconnects >= 1; }));
    ASSERT_TRUE(eventually([&] { return replies_received(server).size() >= 16; }, 30s));
    EXPECT_EQ(replies_received(server), replies_in_order(1));
    EXPECT_EQ(server.parse_failures(), 0u);
    const auto s = *big.pool->stats_of(1);
    EXPECT_EQ(s.messages_requeued, 16u);
    EXPECT_EQ(s.dropped_unsent, 0u);
    EXPECT_TRUE(eventually([&] { return big.pool->stats_of(1)->messages_sent == 16; }));
    EXPECT_EQ(big.pool->shutdown(2s), std::error_code{});
}

TEST(ConnectionPool, BroadcastToFiftyLinksReachesAllFifty)
{
    mock_tak_server_params sp;
    sp.relay = false;
    mock_tak_server server(sp);
    pool_fixture f;
    for (link_id id = 1; id <= 50; ++id)
        ASSERT_FALSE(f.pool->add_link(endpoint(id, server.port())));
    ASSERT_TRUE(eventually([&] { return f.pool->stats().links_connected == 50; }));

    EXPECT_EQ(f.pool->broadcast(make_event("everyone")), 50u);
    ASSERT_TRUE(eventually([&] { return count_uid(server, "everyone") == 50; }));
    std::set<std::uint64_t> sessions;
    for (const auto& e : server.received()) {
        if (e.summary.uid == "everyone") sessions.insert(e.session);
    }
    EXPECT_EQ(sessions.size(), 50u);

    // Never back to where a message came from.
    EXPECT_EQ(f.pool->broadcast(make_event("from-7", 0, 7)), 49u);
    ASSERT_TRUE(eventually([&] { return count_uid(server, "from-7") == 49; }));
    EXPECT_TRUE(eventually([&] { return f.pool->stats().messages_sent == 99; }));
}

TEST(ConnectionPool, AddRemoveAndSendReportErrorCodes)
{
    mock_tak_server server;
    pool_fixture f(1, 2);
    EXPECT_FALSE(f.pool->add_link(endpoint(1, server.port())));
    EXPECT_EQ(f.pool->add_link(endpoint(1, server.port())), errc::link_exists);
    EXPECT_FALSE(f.pool->add_link(endpoint(2, server.port())));
    EXPECT_EQ(f.pool->add_link(endpoint(3, server.port())), errc::pool_full);
    EXPECT_EQ(f.pool->size(), 2u);
    EXPECT_TRUE(f.pool->contains(2));

    EXPECT_EQ(f.pool->send_to(9, make_event("x")), errc::link_not_found);
    EXPECT_EQ(f.pool->remove_link(9), errc::link_not_found);
    EXPECT_EQ(f.pool->outbound_queue_of(9), nullptr);
    ASSERT_NE(f.pool->outbound_queue_of(1), nullptr);

    EXPECT_FALSE(f.pool->remove_link(2));
    EXPECT_FALSE(f.pool->contains(2));
    EXPECT_EQ(f.pool->send_to(2, make_event("x")), errc::link_not_found);
    EXPECT_FALSE(f.pool->add_link(endpoint(3, server.port())));
    ASSERT_TRUE(eventually([&] {
        const auto s = f.pool->stats();
        return s.links_connected == 2 && s.links_stopping == 0;
    }));

    // The distributor's path: push straight into the link's queue.
    ASSERT_TRUE(f.pool->outbound_queue_of(3)->try_push(make_event("direct")));
    ASSERT_TRUE(eventually([&] { return count_uid(server, "direct") == 1; }));

    EXPECT_FALSE(f.pool->shutdown(2s));
    EXPECT_TRUE(f.pool->is_shut_down());
    EXPECT_EQ(f.pool->add_link(endpoint(4, server.port())), errc::shut_down);
    EXPECT_EQ(f.pool->send_to(1, make_event("late")), errc::shut_down);
    EXPECT_EQ(f.pool->broadcast(make_event("late")), 0u);
    EXPECT_FALSE(f.pool->outbound_queue_of(1)->try_push(make_event("late")));
}

TEST(ConnectionPool, RemoveLinkFlushesQueuedMessagesFirst)
{
    mock_tak_server server;
    pool_fixture f;
    ASSERT_FALSE(f.pool->add_link(endpoint(1, server.port())));
    ASSERT_TRUE(eventually([&] { return f.pool->stats().links_connected == 1; }));
    for (int i = 0; i < 200; ++i)
        ASSERT_FALSE(f.pool->send_to(1, make_event("flush", 600)));
    ASSERT_FALSE(f.pool->remove_link(1, 5s));
    ASSERT_TRUE(eventually([&] { return f.pool->stats().links_stopping == 0; }));
    EXPECT_TRUE(eventually([&] { return count_uid(server, "flush") == 200; }, 5s));
}

TEST(ConnectionPool, RemoveLinkWhileItHandlesItsOwnEof)
{
    mock_tak_server server;
    pool_params p;
    p.threads = 2;
    p.link_defaults = test::quick_settings();
    std::atomic<connection_pool*> self{nullptr};
    std::atomic<int> removed_inside{0};
    // Link 100 removes itself from inside its own state change after the EOF.
    p.on_state_change = [&](link_id id, link_state s) {
        if (id == 100 && s == link_state::backing_off && self.load()) {
            if (!self.load()->remove_link(id)) removed_inside.fetch_add(1);
        }
    };
    connection_pool pool(std::move(p));
    self = &pool;

    constexpr link_id n = 20;
    for (link_id id = 1; id <= n; ++id)
        ASSERT_FALSE(pool.add_link(endpoint(id, server.port())));
    ASSERT_FALSE(pool.add_link(endpoint(100, server.port())));
    ASSERT_TRUE(eventually([&] { return pool.stats().links_connected == n + 1; }));
    ASSERT_TRUE(eventually([&] { return server.connected_clients() == n + 1; }));

    // The server drops everyone; the links are removed while they read that EOF.
    server.close_all_clients();
    for (link_id id = 1; id <= n; ++id)
        EXPECT_FALSE(pool.remove_link(id, 0ms));

    ASSERT_TRUE(eventually([&] { return removed_inside.load() == 1; }));
    ASSERT_TRUE(eventually([&] {
        const auto s = pool.stats();
        return s.links_total == 0 && s.links_stopping == 0;
    }));

    // The pool goes on working.
    ASSERT_FALSE(pool.add_link(endpoint(200, server.port())));
    ASSERT_TRUE(eventually([&] { return pool.stats().links_connected == 1; }));
    self = nullptr;
    EXPECT_FALSE(pool.shutdown(2s));
}

TEST(ConnectionPool, ShutdownWhileTwoHundredLinksAreBusy)
{
    mock_tak_server_params sp;
    sp.record = false;
    sp.relay = false;
    mock_tak_server a(sp), b(sp);
    pool_fixture f;
    constexpr link_id n = 200;
    for (link_id id = 1; id <= n; ++id) {
        ASSERT_FALSE(f.pool->add_link(endpoint(id, id % 2 ? a.port() : b.port())));
    }
    ASSERT_TRUE(eventually([&] { return f.pool->stats().links_connected == n; }, 20s));

    std::atomic<bool> stop{false};
    std::vector<std::thread> producers;
    for (int t = 0; t < 2; ++t) {
        producers.emplace_back([&] {
            const auto m = make_event("busy", 600);
            while (!stop.load())
                f.pool->broadcast(m);
        });
    }
    ASSERT_TRUE(eventually([&] { return f.pool->stats().messages_sent > 2000; }, 20s));

    // Two threads shut down at once; both get the same answer, in bounded time.
    const auto started = std::chrono::steady_clock::now();
    std::error_code r1, r2;
    std::thread other([&] { r2 = f.pool->shutdown(2s); });
    r1 = f.pool->shutdown(2s);
    other.join();
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    EXPECT_EQ(r1, r2);
    EXPECT_FALSE(r1);
    stop = true;
    for (auto& t : producers)
        t.join();

    const auto s = f.pool->stats();
    EXPECT_EQ(s.links_closed, n);
    EXPECT_EQ(s.links_stopping, 0u);
    EXPECT_EQ(s.queue_depth, 0u);
    EXPECT_EQ(f.pool->shutdown(1s), r1);  // idempotent
}

TEST(ConnectionPool, ThousandLinksAcrossFourServersConnectAndExchange)
{
    // ThreadSanitizer slows everything about tenfold; a fifth of the links keeps the test
    // within its time budget there while still exercising four servers.
    const link_id n = test::under_tsan ? 200 : 1000;
    mock_tak_server_params sp;
    sp.relay = false;
    std::vector<std::unique_ptr<mock_tak_server>> servers;
    for (int i = 0; i < 4; ++i)
        servers.push_back(std::make_unique<mock_tak_server>(sp));

    pool_fixture f;
    for (link_id id = 1; id <= n; ++id) {
        ASSERT_FALSE(f.pool->add_link(endpoint(id, servers[id % 4]->port())));
    }
    ASSERT_TRUE(eventually([&] { return f.pool->stats().links_connected == n; }, 40s));

    for (link_id id = 1; id <= n; ++id) {
        ASSERT_FALSE(f.pool->send_to(id, make_event("uid-" + std::to_string(id))));
    }
    ASSERT_TRUE(eventually(
        [&] {
            std::size_t total = 0;
            for (const auto& s : servers)
                total += s->received().size();
            // every link: its ping plus its one event
            return total >= 2 * n;
        },
        30s));
    ASSERT_TRUE(eventually(
        [&] {
            std::size_t clients = 0;
            for (const auto& s : servers)
                clients += s->connected_clients();
            return clients == n;
        },
        30s));
    for (auto& s : servers)
        s->send_to_all(test::event_xml("hello-all"));
    ASSERT_TRUE(eventually([&] { return f.inbox.links_heard() == n; }, 30s));

    EXPECT_TRUE(eventually([&] { return f.pool->stats().messages_sent == n; }));
    const auto s = f.pool->stats();
    EXPECT_EQ(s.messages_received, n);
    EXPECT_EQ(s.errors, 0u);
    EXPECT_FALSE(f.pool->shutdown(5s));
}

TEST(ConnectionPool, RunsOnAnExecutorTheCallerOwns)
{
    mock_tak_server server;
    asio::io_context io;
    // Joins the threads however the test ends (an ASSERT returns early).
    struct io_runner {
        asio::io_context& io;
        asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
        std::vector<std::thread> threads;
        explicit io_runner(asio::io_context& context) : io(context)
        {
            for (int i = 0; i < 2; ++i)
                threads.emplace_back([this] { io.run(); });
        }
        ~io_runner()
        {
            guard.reset();
            for (auto& t : threads)
                t.join();
        }
    } runner(io);

    test::inbox inbox;
    {
        pool_params p;
        p.executor = io.get_executor();
        p.link_defaults = test::quick_settings();
        p.on_inbound = [&](message_ptr m) { inbox(m); };
        connection_pool pool(std::move(p));
        EXPECT_EQ(pool.get_executor(), asio::any_io_executor(io.get_executor()));
        ASSERT_FALSE(pool.add_link(endpoint(1, server.port())));
        ASSERT_TRUE(eventually([&] { return pool.stats().links_connected == 1; }));
        // The client sees its connect complete before the server has registered the session.
        ASSERT_TRUE(eventually([&] { return server.connected_clients() == 1; }));
        server.send_to_all(test::event_xml("ext"));
        ASSERT_TRUE(eventually([&] { return inbox.total() == 1; }));
        EXPECT_FALSE(pool.shutdown(2s));
    }
}

namespace {

std::uint64_t total_attempts(const connection_pool& pool)
{
    std::uint64_t n = 0;
    for (const auto& s : pool.link_stats_all())
        n += s.connect_attempts;
    return n;
}

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b)
{
    return std::chrono::duration<double>(b - a).count();
}

}  // namespace

TEST(ConnectionPool, ConnectRateHoldsTwoHundredLinksBackThroughAnOutageAndTheRecovery)
{
    constexpr double rate = 50;
    constexpr double burst = 50;
    constexpr link_id n = 200;
    mock_tak_server_params sp;
    sp.relay = false;
    sp.record = false;
    mock_tak_server server(sp);
    server.stop_listening();  // down: every connect is refused

    pool_params p;
    p.threads = 2;
    p.link_defaults = test::quick_settings();  // backoff 100 ms .. 2 s: far above 50/s
    p.connect_rate = rate;
    p.connect_burst = burst;
    connection_pool pool(std::move(p));

    const auto start = std::chrono::steady_clock::now();
    for (link_id id = 1; id <= n; ++id)
        ASSERT_FALSE(pool.add_link(endpoint(id, server.port())));

    // Down for 3 s: the attempts never run ahead of burst + rate * elapsed (sampled all along;
    // +5 for the counters being read one link at a time) and do not fall far behind it.
    std::size_t most_waiting = 0;
    std::uint64_t attempts = 0;
    while (std::chrono::steady_clock::now() - start < 3s) {
        attempts = total_attempts(pool);
        const double elapsed = seconds_between(start, std::chrono::steady_clock::now());
        ASSERT_LE(static_cast<double>(attempts), burst + rate * elapsed + 5)
            << "after " << elapsed << " s";
        most_waiting = std::max(most_waiting, pool.stats().links_waiting_to_connect);
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_GE(static_cast<double>(attempts), 0.6 * (burst + rate * 3.0));
    EXPECT_GT(most_waiting, 50u);  // the links wait in line rather than all connecting

    // Up again: the 200 links come back at the rate, not in one storm.
    server.resume_listening();
    const auto up = std::chrono::steady_clock::now();
    const auto accepted_before = server.sessions_accepted();
    EXPECT_EQ(accepted_before, 0u);
    while (pool.stats().links_connected < n) {
        const double elapsed = seconds_between(up, std::chrono::steady_clock::now());
        ASSERT_LT(elapsed, 30.0) << pool.stats().links_connected << " of " << n << " connected";
        // The bucket was empty at the resume (the outage used every token), but allow a full
        // burst anyway.
        ASSERT_LE(static_cast<double>(server.sessions_accepted()), burst + rate * elapsed + 5)
            << "after " << elapsed << " s";
        std::this_thread::sleep_for(20ms);
    }
    const double took = seconds_between(up, std::chrono::steady_clock::now());
    // 200 links at 50/s from an empty bucket need about 4 s; with a full burst 3 s.
    EXPECT_GE(took, (static_cast<double>(n) - burst) / rate * 0.8);

    ASSERT_TRUE(eventually([&] { return server.connected_clients() == n; }));
    EXPECT_EQ(server.sessions_accepted(), static_cast<std::uint64_t>(n));  // one session each
    for (const auto& s : pool.link_stats_all()) {
        EXPECT_EQ(s.max_attempts_in_flight, 1u) << s.id;
        EXPECT_EQ(s.sessions, 1u) << s.id;
    }
    EXPECT_EQ(pool.stats().links_waiting_to_connect, 0u);
    EXPECT_FALSE(pool.shutdown(2s));
}

TEST(ConnectionPool, RemovingOrShuttingDownEndsTheWaitForAConnectTokenAtOnce)
{
    std::uint16_t port;
    {
        mock_tak_server gone;
        port = gone.port();
    }
    pool_params p;
    p.threads = 1;  // the links start, and so join the line, in the order they were added
    p.link_defaults = test::quick_settings();
    p.connect_rate = 0.2;  // one attempt every 5 s
    p.connect_burst = 1;
    connection_pool pool(std::move(p));
    for (link_id id = 1; id <= 20; ++id)
        ASSERT_FALSE(pool.add_link(endpoint(id, port)));
    // Link 1 took the only token, failed and waits again, at the end of the line; link 2 is
    // its head.
    ASSERT_TRUE(eventually([&] { return pool.stats().links_waiting_to_connect == 20; }));
    EXPECT_EQ(total_attempts(pool), 1u);
    EXPECT_EQ(pool.stats_of(1)->connect_attempts, 1u);
    EXPECT_EQ(pool.stats_of(2)->state, link_state::backing_off);

    // One from the middle of the line, and the head of the line.
    const auto removing = std::chrono::steady_clock::now();
    ASSERT_FALSE(pool.remove_link(10, 0ms));
    ASSERT_FALSE(pool.remove_link(2, 0ms));
    ASSERT_TRUE(eventually([&] {
        const auto s = pool.stats();
        return s.links_stopping == 0 && s.links_waiting_to_connect == 18;
    }));
    EXPECT_LT(std::chrono::steady_clock::now() - removing, 1s);
    EXPECT_EQ(total_attempts(pool), 1u);  // leaving the line gave nobody an early token

    const auto shutting = std::chrono::steady_clock::now();
    EXPECT_FALSE(pool.shutdown(2s));
    EXPECT_LT(std::chrono::steady_clock::now() - shutting, 1s);
    const auto s = pool.stats();
    EXPECT_EQ(s.links_closed, 18u);
    EXPECT_EQ(s.links_waiting_to_connect, 0u);
}

TEST(ConnectionPool, ConnectRateParamsAreValidated)
{
    pool_params p;
    p.threads = 1;
    p.connect_rate = -1;
    EXPECT_THROW(connection_pool{p}, std::invalid_argument);
    p.connect_rate = 10;
    p.connect_burst = 0.5;
    EXPECT_THROW(connection_pool{p}, std::invalid_argument);
    p.connect_rate = 0;  // unlimited: the burst does not matter
    EXPECT_NO_THROW(connection_pool{p});
}
