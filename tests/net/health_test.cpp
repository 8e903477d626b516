// Link liveness and the circuit breaker on real loopback sockets: a server that stops
// answering, a server that talks but never pongs, and a server that drops every connection.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "net_test_helpers.hpp"
#include "omnitak/pool/circuit_breaker.hpp"
#include "omnitak/pool/error.hpp"
#include "omnitak/pool/health_monitor.hpp"
#include "omnitak/pool/link.hpp"
#include "omnitak/pool/link_stats.hpp"
#include "omnitak/pool/pool.hpp"
#include "omnitak/pool/testing/mock_tak_server.hpp"

using namespace std::chrono_literals;
using namespace omnitak;
using omnitak::test::endpoint;
using omnitak::test::eventually;
using omnitak::testing::mock_tak_server;
using omnitak::testing::mock_tak_server_params;

namespace {

using steady = std::chrono::steady_clock;
using wall = std::chrono::system_clock;

// A pool whose links all use `settings`.
struct fixture {
    explicit fixture(const link_settings& settings)
    {
        pool_params p;
        p.threads = 1;
        p.link_defaults = settings;
        p.on_inbound = [this](message_ptr m) { inbox(m); };
        pool = std::make_unique<connection_pool>(std::move(p));
    }

    link_stats stats(link_id id) const { return *pool->stats_of(id); }

    test::inbox inbox;
    std::unique_ptr<connection_pool> pool;
};

// A server that neither relays nor answers pings: it only sends what the test tells it to.
mock_tak_server_params mute_server()
{
    mock_tak_server_params p;
    p.relay = false;
    p.answer_pings = false;
    return p;
}

double seconds_since(steady::time_point start)
{
    return std::chrono::duration<double>(steady::now() - start).count();
}

}  // namespace

TEST(Health, SilentServerMakesTheLinkDegradedThenUnhealthyThenReconnects)
{
    mock_tak_server server(mute_server());

    auto settings = test::quick_settings();
    // The server sends nothing at all, so the first-byte rule must not end the session first:
    // the silence rules alone are under test.
    settings.first_byte_timeout = 0ms;
    settings.health.ping_interval = 200ms;
    settings.health.pong_timeout = 0ms;
    settings.health.degraded_after = 400ms;
    settings.health.unhealthy_after = 1000ms;
    // Long enough that the unhealthy status is still visible while the link backs off.
    settings.backoff.initial = 300ms;
    settings.backoff.max = 600ms;
    fixture f(settings);

    ASSERT_FALSE(f.pool->add_link(endpoint(1, server.port())));
    const auto wall_start = wall::now();
    ASSERT_TRUE(eventually([&] { return f.stats(1).state == link_state::connected; }, 5s));
    const auto connected_at = steady::now();
    EXPECT_EQ(f.stats(1).health, health_status::healthy);
    EXPECT_EQ(f.stats(1).health_changed_at, wall::time_point{});  // healthy all along
    // The link may see its connect complete before the server has counted the session.
    ASSERT_TRUE(eventually([&] { return server.sessions_accepted() == 1; }, 2s));

    ASSERT_TRUE(eventually([&] { return f.stats(1).health == health_status::degraded; }, 3s));
    const double degraded_after = seconds_since(connected_at);
    const auto degraded_seen = wall::now();
    wall::time_point degraded_at;
    {
        // Degraded is a warning only: the first session is still up.
        const auto s = f.stats(1);
        EXPECT_EQ(s.sessions, 1u);
        EXPECT_EQ(s.reconnects, 0u);
        EXPECT_EQ(server.sessions_accepted(), 1u);
        // Stamped when it changed: after the degraded threshold, before we saw it.
        degraded_at = s.health_changed_at;
        EXPECT_GE(degraded_at, wall_start + 390ms);
        EXPECT_LE(degraded_at, degraded_seen);
    }

    ASSERT_TRUE(eventually([&] { return f.stats(1).health == health_status::unhealthy; }, 3s));
    const double unhealthy_after = seconds_since(connected_at);
    const auto unhealthy_at = f.stats(1).health_changed_at;
    EXPECT_GE(unhealthy_at, degraded_at + 500ms);  // unhealthy_after - degraded_after, less slack
    EXPECT_LE(unhealthy_at, wall::now());

    ASSERT_TRUE(eventually(
        [&] {
            const auto s = f.stats(1);
            return s.sessions >= 2 && s.state == link_state::connected;
        },
        5s));
    ASSERT_TRUE(eventually([&] { return server.sessions_accepted() >= 2; }, 2s));
    const double reconnected_after = seconds_since(connected_at);

    const auto s = f.stats(1);
    EXPECT_GE(s.reconnects, 1u);
    EXPECT_EQ(s.reconnects, s.sessions - 1);
    // The new session made it healthy again: another change, stamped at the reconnect (or
    // later, if the silence rules have moved it on since).
    EXPECT_GT(s.health_changed_at, unhealthy_at);
    EXPECT_LE(s.health_changed_at, wall::now());
    EXPECT_EQ(s.last_error, make_error_code(errc::pong_timeout));
    EXPECT_GE(s.pings_sent, 1u);
    EXPECT_EQ(s.pongs_received, 0u);
    EXPECT_EQ(s.messages_received, 0u);
    EXPECT_EQ(s.max_attempts_in_flight, 1u);
    EXPECT_EQ(server.pings_answered(), 0u);

    // The stages come in order and near their thresholds (generous upper bounds for a loaded
    // machine; the lower bounds are the thresholds themselves).
    EXPECT_GE(degraded_after, 0.39);
    EXPECT_LT(degraded_after, 1.0);
    EXPECT_GE(unhealthy_after, 0.99);
    EXPECT_LT(unhealthy_after, 2.0);
    EXPECT_GT(reconnected_after, unhealthy_after);
    EXPECT_LT(reconnected_after, 3.5);
}

TEST(Health, ServerThatSendsTrafficButNeverPongsStaysHealthy)
{
    mock_tak_server server(mute_server());

    auto settings = test::quick_settings();
    settings.health.ping_interval = 200ms;
    settings.health.pong_timeout = 500ms;
    settings.health.degraded_after = 500ms;
    settings.health.unhealthy_after = 1000ms;
    fixture f(settings);

    ASSERT_FALSE(f.pool->add_link(endpoint(1, server.port())));
    ASSERT_TRUE(eventually([&] { return f.stats(1).state == link_state::connected; }, 5s));
    // The link may see its connect complete before the server has registered the session.
    ASSERT_TRUE(eventually([&] { return server.connected_clients() == 1; }, 2s));

    std::atomic<bool> stop{false};
    std::atomic<int> sent{0};
    std::thread talker([&] {
        while (!stop.load()) {
            server.send_to_all(test::event_xml("talker-" + std::to_string(sent.load())));
            sent.fetch_add(1);
            std::this_thread::sleep_for(100ms);
        }
    });

    // Three times the unhealthy threshold, sampling the link all along.
    const auto start = steady::now();
    int samples = 0;
    int not_healthy = 0;
    int unhealthy = 0;
    while (steady::now() - start < 3s) {
        const auto s = f.stats(1);
        ++samples;
        if (s.health != health_status::healthy) ++not_healthy;
        if (s.health == health_status::unhealthy) ++unhealthy;
        std::this_thread::sleep_for(5ms);
    }
    stop.store(true);
    talker.join();

    EXPECT_GT(samples, 100);
    EXPECT_EQ(unhealthy, 0);
    EXPECT_EQ(not_healthy, 0);

    const auto s = f.stats(1);
    EXPECT_EQ(s.health, health_status::healthy);
    EXPECT_EQ(s.health_changed_at, std::chrono::system_clock::time_point{});  // never changed
    EXPECT_EQ(s.state, link_state::connected);
    EXPECT_EQ(s.sessions, 1u);
    EXPECT_EQ(s.reconnects, 0u);
    EXPECT_EQ(s.connect_attempts, 1u);
    EXPECT_EQ(server.sessions_accepted(), 1u);
    EXPECT_EQ(s.pongs_received, 0u);
    EXPECT_EQ(server.pings_answered(), 0u);
    // Pings went out (ping_interval 200 ms over 3 s) and were never answered.
    EXPECT_GE(s.pings_sent, 5u);
    // Every event the talker sent arrives (allow the last one or two to be in flight).
    const auto sent_total = static_cast<std::size_t>(sent.load());
    EXPECT_GE(sent_total, 20u);
    EXPECT_TRUE(eventually([&] { return f.inbox.from(1) == sent_total; }, 2s))
        << f.inbox.from(1) << " of " << sent_total;
}

TEST(Health, ServerThatClosesEveryConnectionOpensTheBreakerAndGetsOneTrialPerResetTimeout)
{
    mock_tak_server server(mute_server());
    server.set_refuse(true);

    auto settings = test::quick_settings();
    settings.backoff.initial = 50ms;
    settings.backoff.max = 200ms;
    settings.breaker.failure_threshold = 3;
    settings.breaker.reset_timeout = 1500ms;
    fixture f(settings);

    const auto start = steady::now();
    ASSERT_FALSE(f.pool->add_link(endpoint(1, server.port())));
    ASSERT_TRUE(eventually([&] { return f.stats(1).breaker == breaker_state::open; }, 5s));
    const auto opened_at = steady::now();

    // Three sessions that ended at once opened it, no more, no fewer.
    const auto attempts_at_open = f.stats(1).connect_attempts;
    const auto accepted_at_open = server.sessions_accepted();
    EXPECT_EQ(attempts_at_open, 3u);
    EXPECT_EQ(accepted_at_open, 3u);
    EXPECT_EQ(server.connections_refused(), accepted_at_open);
    EXPECT_LT(seconds_since(start), 1.5);
    EXPECT_EQ(f.stats(1).sessions, 3u);

    // While open: no attempt at all. The window ends well before reset_timeout.
    int samples = 0;
    while (steady::now() - opened_at < 1000ms) {
        const auto s = f.stats(1);
        ++samples;
        ASSERT_EQ(s.connect_attempts, attempts_at_open)
            << "attempt while the breaker is open, " << seconds_since(opened_at)
            << " s after it opened";
        ASSERT_EQ(s.breaker, breaker_state::open);
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_GT(samples, 50);
    EXPECT_EQ(server.sessions_accepted(), accepted_at_open);

    // After reset_timeout: exactly one trial, which fails and opens the breaker again.
    ASSERT_TRUE(eventually([&] { return f.stats(1).connect_attempts > attempts_at_open; }, 3s));
    const double trial_after = seconds_since(opened_at);
    // opened_at was observed at most a poll after the breaker opened, so the trial cannot come
    // much before 1.5 s from it.
    EXPECT_GE(trial_after, 1.4);
    EXPECT_LT(trial_after, 2.5);
    {
        const auto s = f.stats(1);
        EXPECT_EQ(s.connect_attempts, attempts_at_open + 1);
        EXPECT_TRUE(s.breaker == breaker_state::half_open || s.breaker == breaker_state::open)
            << to_string(s.breaker);
    }

    ASSERT_TRUE(eventually([&] { return f.stats(1).breaker == breaker_state::open; }, 2s));
    // Open again for a full reset_timeout: no second trial for a while.
    const auto reopened_at = steady::now();
    while (steady::now() - reopened_at < 800ms) {
        const auto s = f.stats(1);
        ASSERT_EQ(s.connect_attempts, attempts_at_open + 1)
            << "second attempt " << seconds_since(reopened_at) << " s after the failed trial";
        ASSERT_EQ(s.breaker, breaker_state::open);
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_EQ(server.sessions_accepted(), accepted_at_open + 1);
    EXPECT_EQ(f.stats(1).max_attempts_in_flight, 1u);
}
