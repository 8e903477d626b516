// Link behaviour on real loopback sockets: reconnects, timeouts, odd peers, backpressure.
#include "omnitak/pool/link.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "net_test_helpers.hpp"
#include "omnitak/pool/pool.hpp"
#include "omnitak/pool/testing/mock_tak_server.hpp"

using namespace std::chrono_literals;
using namespace omnitak;
using omnitak::test::endpoint;
using omnitak::test::eventually;
using omnitak::test::make_event;
using omnitak::testing::mock_tak_server;
using omnitak::testing::mock_tak_server_params;

namespace {

// A pool whose links all use `settings`, recording every state change.
struct fixture {
    explicit fixture(link_settings settings = test::quick_settings())
    {
        pool_params p;
        p.threads = 2;
        p.link_defaults = settings;
        p.on_inbound = [this](message_ptr m) { inbox(m); };
        p.on_state_change = [this](link_id id, link_state s) {
            std::lock_guard lock(mutex);
            changes.push_back({id, s, std::chrono::steady_clock::now()});
        };
        pool = std::make_unique<connection_pool>(std::move(p));
    }

    link_stats stats(link_id id) const { return *pool->stats_of(id); }

    struct change {
        link_id id;
        link_state state;
        std::chrono::steady_clock::time_point at;
    };
    std::vector<change> changes_of(link_id id) const
    {
        std::lock_guard lock(mutex);
        std::vector<change> out;
        for (const auto& c : changes) {
            if (c.id == id) out.push_back(c);
        }
        return out;
    }

    test::inbox inbox;
    mutable std::mutex mutex;
    std::vector<change> changes;
    std::unique_ptr<connection_pool> pool;
};

}  // namespace

TEST(Link, ServerOutageOfThreeSecondsEndsInExactlyOneNewSession)
{
    mock_tak_server server;
    auto settings = test::quick_settings();
    settings.backoff.initial = 100ms;
    settings.backoff.max = 60s;
    fixture f(settings);
    ASSERT_FALSE(f.pool->add_link(endpoint(1, server.port())));
    ASSERT_TRUE(eventually([&] { return f.stats(1).state == link_state::connected; }));
    // The client sees its connect complete before the server has registered the session.
    ASSERT_TRUE(eventually([&] { return server.connected_clients() == 1; }));
    const auto accepted_before = server.sessions_accepted();

    // The server goes away for 3 s and comes back on the same port.
    server.stop_listening();
    server.close_all_clients();
    const auto outage_start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(3s);
    const auto attempts_in_outage = f.stats(1).connect_attempts - 1;
    server.resume_listening();

    ASSERT_TRUE(eventually([&] { return f.stats(1).state == link_state::connected; }, 10s));
    std::this_thread::sleep_for(500ms);  // room for a duplicate session to show up
    EXPECT_EQ(server.sessions_accepted(), accepted_before + 1);
    EXPECT_EQ(server.connected_clients(), 1u);

    // Backoff 100 ms x2 ±20 %: attempts near 0.1, 0.3, 0.7, 1.5, 3.1 s into the outage, so
    // four or five fail before the server returns (a storm would show dozens).
    EXPECT_GE(attempts_in_outage, 4u);
    EXPECT_LE(attempts_in_outage, 6u);

    // The gaps between attempts grow: each "connecting" comes later than the previous gap.
    std::vector<std::chrono::steady_clock::time_point> attempts;
    for (const auto& c : f.changes_of(1)) {
        if (c.state == link_state::connecting && c.at > outage_start) attempts.push_back(c.at);
    }
    ASSERT_GE(attempts.size(), 4u);
    for (std::size_t i = 2; i < attempts.size(); ++i) {
        EXPECT_GT(attempts[i] - attempts[i - 1], (attempts[i - 1] - attempts[i - 2]) * 1.3);
    }

    const auto s = f.stats(1);
    EXPECT_EQ(s.max_attempts_in_flight, 1u);
    EXPECT_EQ(s.sessions, 2u);
    EXPECT_EQ(s.reconnects, 1u);
    EXPECT_GE(s.errors, attempts_in_outage);
}

TEST(Link, EofWriteFailureAndHealthTimeoutTogetherStartOneAttempt)
{
    mock_tak_server server;
    auto settings = test::quick_settings();
    settings.backoff.initial = 20ms;
    settings.backoff.max = 100ms;
    settings.health.ping_interval = 50ms;
    settings.health.pong_timeout = 50ms;
    fixture f(settings);
    ASSERT_FALSE(f.pool->add_link(endpoint(1, server.port())));
    ASSERT_TRUE(eventually([&] { return f.stats(1).state == link_state::connected; }));

    // A steady stream keeps writes in flight whenever the server drops us.
    std::jthread writer([&](std::stop_token stop) {
        const auto m = make_event("stream", 600);
        while (!stop.stop_requested()) {
            f.pool->send_to(1, m);
            std::this_thread::sleep_for(100us);
        }
    });

    for (int round = 0; round < 8; ++round) {
        ASSERT_TRUE(eventually([&] { return f.stats(1).state == link_state::connected; }, 20s));
        // Pongs stop, so the pong deadline runs out about when the server drops us (EOF, then
        // failing writes) and three threads ask for the session to end.
        server.set_answer_pings(false);
        std::this_thread::sleep_for(90ms);
        std::vector<std::jthread> droppers;
        for (int t = 0; t < 3; ++t)
            droppers.emplace_back([&] { f.pool->drop_session(1); });
        server.close_all_clients();
        droppers.clear();
        server.set_answer_pings(true);
    }
    writer.request_stop();
    writer.join();

    // Once the stream stops the link settles on one session. The server may still be parsing
    // the backlog of a closed session for a moment (it sees the close only after the data
    // before it), so the steady state is awaited rather than sampled.
    EXPECT_TRUE(eventually(
        [&] {
            const auto s = f.stats(1);
            return s.state == link_state::connected && server.connected_clients() == 1 &&
                   server.sessions_accepted() == s.sessions;
        },
        20s));
    const auto s = f.stats(1);
    EXPECT_EQ(s.max_attempts_in_flight, 1u);
    EXPECT_GE(s.sessions, 5u);  // most rounds end a session; a round may find it already ending
    EXPECT_LE(s.sessions, s.connect_attempts);
}

TEST(Link, ServerThatNeverReadsStopsTheQueueAtCapacityAndCountsDrops)
{
    mock_tak_server_params sp;
    sp.relay = false;
    sp.record = false;
    mock_tak_server stuck(sp), fine(sp);
    auto settings = test::quick_settings();
    settings.queue_capacity = 100;
    settings.first_byte_timeout = 0ms;
    settings.health.enabled = false;
    fixture f(settings);
    ASSERT_FALSE(f.pool->add_link(endpoint(1, stuck.port())));
    ASSERT_FALSE(f.pool->add_link(endpoint(2, fine.port())));
    ASSERT_TRUE(eventually([&] { return f.pool->stats().links_connected == 2; }));
    stuck.set_reading(false);

    // Push far more than the kernel buffers hold.
    const auto m = make_event("flood", 600);
    std::uint64_t refused = 0, queued = 0;
    std::size_t deepest = 0;
    for (int i = 0; i < 200'000; ++i) {
        const auto ec = f.pool->send_to(1, m);
        if (ec) {
            ASSERT_EQ(ec, errc::queue_full);
            ++refused;
        } else {
            ++queued;
        }
        if (i % 1000 == 0) deepest = std::max<std::size_t>(deepest, f.stats(1).queue_depth);
    }
    const auto s1 = f.stats(1);
    EXPECT_GT(refused, 0u);
    EXPECT_EQ(s1.queue_rejected, refused);
    EXPECT_EQ(s1.drops, refused);
    EXPECT_LE(deepest, 100u);
    EXPECT_LE(s1.queue_depth, 100u);
    EXPECT_EQ(s1.queue_capacity, 100u);
    // Every message is accounted for: written, being written, still queued, or dropped.
    EXPECT_EQ(s1.messages_sent + s1.messages_writing + s1.queue_depth + s1.dropped_unsent, queued);
    EXPECT_EQ(s1.state, link_state::connected);

    // The other link is not affected.
    for (int i = 0; i < 100; ++i)
        ASSERT_FALSE(f.pool->send_to(2, make_event("ok")));
    ASSERT_TRUE(eventually([&] { return f.stats(2).messages_sent == 100; }));
    ASSERT_TRUE(eventually([&] { return fine.events_received() >= 100; }));

    // Once the server reads again, the backlog drains.
    stuck.set_reading(true);
    ASSERT_TRUE(eventually([&] { return f.stats(1).queue_depth == 0; }, 20s));
}

TEST(Link, SilentServerTriggersTheFirstByteTimeoutAndBacksOff)
{
    mock_tak_server_params sp;
    sp.answer_pings = false;
    mock_tak_server server(sp);
    auto settings = test::quick_settings();
    settings.first_byte_timeout = 300ms;
    fixture f(settings);
    const auto started = std::chrono::steady_clock::now();
    ASSERT_FALSE(f.pool->add_link(endpoint(1, server.port())));

    ASSERT_TRUE(eventually([&] { return f.stats(1).sessions >= 2; }, 5s));
    const auto s = f.stats(1);
    EXPECT_EQ(s.last_error, errc::first_byte_timeout);
    EXPECT_GE(s.errors, 1u);
    EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms);

    bool backed_off = false;
    for (const auto& c : f.changes_of(1))
        backed_off |= c.state == link_state::backing_off;
    EXPECT_TRUE(backed_off);
}

TEST(Link, FirstByteTimeoutsOpenTheBreakerAndSendReportsUnavailable)
{
    mock_tak_server_params sp;
    sp.answer_pings = false;
    mock_tak_server server(sp);
    auto settings = test::quick_settings();
    settings.first_byte_timeout = 100ms;
    settings.backoff.initial = 10ms;
    settings.breaker.failure_threshold = 2;
    settings.breaker.reset_timeout = 60s;
    fixture f(settings);
    ASSERT_FALSE(f.pool->add_link(endpoint(1, server.port())));

    ASSERT_TRUE(eventually([&] { return f.stats(1).breaker == breaker_state::open; }, 5s));
    EXPECT_EQ(f.pool->send_to(1, make_event("x")), errc::link_unavailable);
    const auto attempts = f.stats(1).connect_attempts;
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(f.stats(1).connect_attempts, attempts);  // no attempts while open
    EXPECT_EQ(f.stats(1).state, link_state::backing_off);
}

TEST(Link, PeersThatCloseAtOnceOrMidEventLeaveThePoolRunning)
{
    mock_tak_server good;
    mock_tak_server odd;
    fixture f;
    ASSERT_FALSE(f.pool->add_link(endpoint(1, good.port())));
    ASSERT_TRUE(eventually([&] { return f.stats(1).state == link_state::connected; }));

    // A peer that accepts and closes at once.
    odd.set_refuse(true);
    ASSERT_FALSE(f.pool->add_link(endpoint(2, odd.port())));
    ASSERT_TRUE(eventually([&] { return f.stats(2).errors >= 2; }));
    auto s2 = f.stats(2);
    EXPECT_TRUE(s2.last_error == errc::peer_closed ||
                s2.last_error == asio::error::connection_reset)
        << s2.last_error.message();

    // A peer that resets at once.
    odd.set_refuse(false);
    odd.set_reset(true);
    const auto errors_before = f.stats(2).errors;
    ASSERT_TRUE(eventually([&] { return f.stats(2).errors >= errors_before + 2; }));

    // A peer that closes halfway through an event.
    odd.set_reset(false);
    ASSERT_TRUE(eventually([&] { return f.stats(2).state == link_state::connected; }));
    ASSERT_TRUE(eventually([&] { return odd.connected_clients() == 1; }));
    odd.send_half_event_and_close();
    ASSERT_TRUE(eventually([&] { return f.stats(2).last_error == errc::stream_truncated; }));
    EXPECT_GE(f.stats(2).framing_problems, 1u);
    EXPECT_EQ(f.stats(2).messages_received, 0u);
    EXPECT_EQ(f.stats(2).max_attempts_in_flight, 1u);

    // The good link never noticed.
    const auto s1 = f.stats(1);
    EXPECT_EQ(s1.state, link_state::connected);
    EXPECT_EQ(s1.sessions, 1u);
    ASSERT_FALSE(f.pool->send_to(1, make_event("still-here")));
    ASSERT_TRUE(eventually([&] { return f.stats(1).messages_sent == 1; }));
}

TEST(Link, FirstMessageIsWrittenFirstOnEverySession)
{
    mock_tak_server server;
    fixture f;
    auto p = endpoint(1, server.port(), "alpha");
    p.first_message = test::event_xml("auth-stand-in");
    ASSERT_FALSE(f.pool->add_link(p));
    ASSERT_TRUE(eventually([&] { return server.received().size() >= 2; }));

    // Messages queued while the link is down wait behind the first message of the next session.
    server.stop_listening();
    server.close_all_clients();
    ASSERT_TRUE(eventually([&] { return f.stats(1).state != link_state::connected; }));
    for (int i = 0; i < 5; ++i)
        ASSERT_FALSE(f.pool->send_to(1, make_event("queued")));
    server.resume_listening();
    // Wait for the five queued messages themselves: how many pings each session has sent by
    // then depends on timing.
    const auto queued_received = [&] {
        std::size_t n = 0;
        for (const auto& e : server.received())
            n += e.summary.uid == "queued";
        return n;
    };
    ASSERT_TRUE(eventually([&] { return f.stats(1).sessions == 2 && queued_received() == 5; }));

    std::uint64_t last_session = 0;
    std::size_t queued = 0;
    for (const auto& e : server.received()) {
        if (e.session != last_session) {
            EXPECT_EQ(e.summary.uid, "auth-stand-in");
            last_session = e.session;
        } else if (e.summary.uid == "queued") {
            ++queued;
        } else {
            EXPECT_EQ(e.summary.uid, "alpha-ping");
            EXPECT_EQ(e.summary.type, "t-x-c-t");
        }
    }
    EXPECT_EQ(queued, 5u);
    EXPECT_TRUE(eventually([&] { return f.stats(1).pongs_received >= 2; }));
    EXPECT_EQ(f.inbox.total(), 0u);  // pongs are the link's business
}

TEST(Link, ConnectToAClosedPortFailsFastAndKeepsRetrying)
{
    std::uint16_t port;
    {
        mock_tak_server gone;
        port = gone.port();
    }
    fixture f;
    ASSERT_FALSE(f.pool->add_link(endpoint(1, port)));
    ASSERT_TRUE(eventually([&] { return f.stats(1).connect_attempts >= 3; }));
    const auto s = f.stats(1);
    EXPECT_EQ(s.last_error, asio::error::connection_refused);
    EXPECT_EQ(s.sessions, 0u);
    EXPECT_EQ(s.max_attempts_in_flight, 1u);
}

TEST(Link, UnresolvableHostReportsResolveFailed)
{
    fixture f;
    auto p = endpoint(1, 8087);
    p.host = "no-such-host.invalid";
    ASSERT_FALSE(f.pool->add_link(p));
    ASSERT_TRUE(eventually([&] { return f.stats(1).errors >= 1; }, 20s));
    const auto e = f.stats(1).last_error;
    EXPECT_TRUE(e == errc::resolve_failed || e == errc::connect_timeout) << e.message();
}
