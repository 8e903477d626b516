// Link behaviour on real loopback sockets: reconnects, timeouts, odd peers, backpressure.
#include "omnitak/pool/link.hpp"

#include <gtest/gtest.h>

#include <dlfcn.h>
#include <netdb.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
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

// Name lookups under the test's control. This executable's getaddrinfo comes before the C
// library's, so the links' lookups (on Asio's resolver thread) pass through it:
// - names under .invalid (RFC 6761: never resolvable) fail at once with EAI_NONAME, whatever
//   DNS the machine has;
// - "hang.<anything>.invalid" first blocks until the test releases it, like a lookup whose
//   DNS server never answers;
// - every other name goes to the C library (or the sanitizer in front of it).
namespace dns {
std::mutex mutex;
std::condition_variable released_cv;
bool released = false;
int blocked = 0;
int hang_calls = 0;

// For the start of a test (also when tests repeat): hanging lookups hang again.
void arm()
{
    std::lock_guard lock(mutex);
    released = false;
    hang_calls = 0;
}

void release()
{
    {
        std::lock_guard lock(mutex);
        released = true;
    }
    released_cv.notify_all();
}

int blocked_now()
{
    std::lock_guard lock(mutex);
    return blocked;
}

int hanging_calls()
{
    std::lock_guard lock(mutex);
    return hang_calls;
}

// Releases the hanging lookups however the test ends: the pool's io_context joins Asio's
// resolver thread when it is destroyed.
struct releaser {
    ~releaser() { release(); }
};
}  // namespace dns

extern "C" int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                           struct addrinfo** result)
{
    using real_type = int (*)(const char*, const char*, const struct addrinfo*, struct addrinfo**);
    static const auto real = reinterpret_cast<real_type>(dlsym(RTLD_NEXT, "getaddrinfo"));
    const std::string_view name = node != nullptr ? node : "";
    constexpr std::string_view invalid = ".invalid";
    if (name.size() > invalid.size() && name.substr(name.size() - invalid.size()) == invalid) {
        if (name.substr(0, 5) == "hang.") {
            std::unique_lock lock(dns::mutex);
            ++dns::hang_calls;
            ++dns::blocked;
            // Bounded, so that a failing test cannot hang the run.
            dns::released_cv.wait_for(lock, std::chrono::seconds(60), [] { return dns::released; });
            --dns::blocked;
        }
        return EAI_NONAME;
    }
    return real(node, service, hints, result);
}

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
    const auto s = f.stats(1);
    EXPECT_EQ(s.last_error, errc::resolve_failed) << s.last_error.message();
    EXPECT_EQ(s.sessions, 0u);
    EXPECT_EQ(s.max_attempts_in_flight, 1u);
}

TEST(Link, HostNameIsResolvedAndConnects)
{
    mock_tak_server server;
    fixture f;
    auto p = endpoint(1, server.port());
    p.host = "localhost";
    ASSERT_FALSE(f.pool->add_link(p));
    ASSERT_TRUE(eventually([&] { return f.stats(1).state == link_state::connected; }));
    ASSERT_TRUE(eventually([&] { return server.connected_clients() == 1; }));
    ASSERT_FALSE(f.pool->send_to(1, make_event("by-name")));
    ASSERT_TRUE(eventually([&] {
        for (const auto& e : server.received()) {
            if (e.summary.uid == "by-name") return true;
        }
        return false;
    }));
    EXPECT_EQ(f.stats(1).errors, 0u);
}

TEST(Link, HangingNameLookupEndsAtTheConnectTimeoutAndIsAbandoned)
{
    auto settings = test::quick_settings();
    settings.connect_timeout = 300ms;
    settings.backoff.initial = 100ms;
    settings.backoff.max = 200ms;
    fixture f(settings);
    dns::arm();
    dns::releaser release_lookups;  // destroyed before the fixture

    auto p = endpoint(1, 8087);
    p.host = "hang.omnitak-test.invalid";
    const auto added = std::chrono::steady_clock::now();
    ASSERT_FALSE(f.pool->add_link(p));
    ASSERT_TRUE(eventually([&] { return f.stats(1).errors >= 1; }, 5s));
    const auto gave_up_after = std::chrono::steady_clock::now() - added;
    {
        const auto s = f.stats(1);
        EXPECT_EQ(s.last_error, errc::connect_timeout) << s.last_error.message();
        EXPECT_GE(gave_up_after, 300ms);
        EXPECT_LT(gave_up_after, 2s);  // not the lookup's own (here: endless) time
        EXPECT_EQ(dns::blocked_now(), 1);
    }

    // The link keeps trying; each attempt ends at its deadline although the first lookup
    // still blocks Asio's resolver thread (the later ones queue behind it).
    ASSERT_TRUE(eventually([&] { return f.stats(1).errors >= 3; }, 5s));
    {
        const auto s = f.stats(1);
        EXPECT_EQ(s.last_error, errc::connect_timeout);
        EXPECT_GE(s.connect_attempts, 3u);
        EXPECT_EQ(s.max_attempts_in_flight, 1u);
        EXPECT_EQ(s.sessions, 0u);
    }

    // Removing the link does not wait for the lookup either.
    ASSERT_TRUE(eventually([&] { return f.stats(1).state == link_state::connecting; }, 2s));
    const auto removing = std::chrono::steady_clock::now();
    ASSERT_FALSE(f.pool->remove_link(1, 0ms));
    ASSERT_TRUE(eventually([&] { return f.pool->stats().links_stopping == 0; }, 2s));
    EXPECT_LT(std::chrono::steady_clock::now() - removing, 1s);
    bool closed = false;
    for (const auto& c : f.changes_of(1))
        closed |= c.state == link_state::closed;
    EXPECT_TRUE(closed);
    EXPECT_EQ(dns::blocked_now(), 1);

    // The lookup finally answers; its result goes nowhere (the link is gone), and the pool
    // goes on working.
    dns::release();
    ASSERT_TRUE(eventually([&] { return dns::blocked_now() == 0; }, 2s));
    mock_tak_server server;
    ASSERT_FALSE(f.pool->add_link(endpoint(2, server.port())));
    ASSERT_TRUE(eventually([&] { return f.stats(2).state == link_state::connected; }));
    // The lookups abandoned while they were still queued behind the hanging one never ran.
    EXPECT_EQ(dns::hanging_calls(), 1);
    EXPECT_FALSE(f.pool->shutdown(2s));
}

namespace {

// The uids a server received, in order, of one session or of all.
std::vector<std::string> uids_received(const mock_tak_server& server, std::string_view prefix)
{
    std::vector<std::string> out;
    for (const auto& e : server.received()) {
        if (e.summary.uid.compare(0, prefix.size(), prefix) == 0) out.push_back(e.summary.uid);
    }
    return out;
}

// Settings for the re-send tests: one large batch, no liveness rules (the server stops
// reading and answering), quick reconnects.
link_settings resend_settings(std::size_t capacity)
{
    auto settings = test::quick_settings();
    settings.queue_capacity = capacity;
    settings.write_batch = 1024;
    settings.first_byte_timeout = 0ms;
    settings.health.enabled = false;
    return settings;
}

// Brings link 1 up once, then down, queues `count` large messages while it is down and lets it
// reconnect to a server that does not read: the whole backlog becomes one gathered write
// larger than the kernel's socket buffers, so it stays in flight. Returns false (with a test
// failure) when that state is not reached.
constexpr std::size_t big_message = 64 * 1024;

bool stall_a_big_write(fixture& f, mock_tak_server& server, std::size_t count)
{
    EXPECT_FALSE(f.pool->add_link(endpoint(1, server.port())));
    if (!eventually([&] { return server.connected_clients() == 1; })) return false;
    server.stop_listening();
    server.close_all_clients();
    if (!eventually([&] { return f.stats(1).state != link_state::connected; })) return false;

    for (std::size_t i = 0; i < count; ++i) {
        EXPECT_FALSE(f.pool->send_to(1, make_event("m-" + std::to_string(i), big_message)));
    }
    server.set_reading(false);
    server.resume_listening();
    if (!eventually([&] {
            return f.stats(1).messages_writing == count && server.connected_clients() == 1;
        })) {
        ADD_FAILURE() << "the backlog did not go out as one write";
        return false;
    }
    // Still in flight a moment later: the kernel buffers are full.
    std::this_thread::sleep_for(300ms);
    const auto s = f.stats(1);
    EXPECT_EQ(s.messages_writing, count);
    EXPECT_EQ(s.messages_sent, 0u);
    return s.messages_writing == count;
}

}  // namespace

TEST(Link, BatchInFlightWhenTheServerDropsUsIsWrittenFirstOnTheNextSession)
{
    constexpr std::size_t n = 320;  // 20 MiB: more than loopback socket buffers hold
    mock_tak_server_params sp;
    sp.relay = false;
    mock_tak_server server(sp);
    fixture f(resend_settings(400));
    ASSERT_TRUE(stall_a_big_write(f, server, n));

    // The server drops us with our data unread (a reset): the write fails mid-way.
    server.close_all_clients();
    ASSERT_TRUE(eventually([&] { return f.stats(1).messages_requeued >= n; }, 10s));
    server.set_reading(true);

    ASSERT_TRUE(eventually([&] { return f.stats(1).messages_sent == n; }, 30s));
    ASSERT_TRUE(eventually([&] { return uids_received(server, "m-").size() >= n; }, 30s));
    const auto s = f.stats(1);
    EXPECT_GE(s.sessions, 3u);
    EXPECT_EQ(s.dropped_unsent, 0u);
    EXPECT_EQ(s.drops, 0u);
    EXPECT_EQ(s.queue_depth, 0u);
    EXPECT_EQ(s.requeued_pending, 0u);
    EXPECT_EQ(s.max_attempts_in_flight, 1u);

    // Every message arrived, in order; at most the part of the failed write the server had
    // read could come twice (here it read nothing of it).
    const auto got = uids_received(server, "m-");
    std::set<std::string> distinct(got.begin(), got.end());
    EXPECT_EQ(distinct.size(), n);
    for (std::size_t i = 0; i < n; ++i)
        EXPECT_TRUE(distinct.count("m-" + std::to_string(i))) << i;
    const std::size_t first = got.size() - n;  // the last session carries the whole batch
    for (std::size_t i = 0; i < n; ++i)
        EXPECT_EQ(got[first + i], "m-" + std::to_string(i));
}

TEST(Link, FailedBatchKeepsOnlyWhatFitsTheQueueAndCountsTheRestAsDropped)
{
    constexpr std::size_t n = 320;
    constexpr std::size_t capacity = 400;
    constexpr std::size_t later = 200;  // queued while the batch is in flight
    mock_tak_server_params sp;
    sp.relay = false;
    mock_tak_server server(sp);
    fixture f(resend_settings(capacity));
    ASSERT_TRUE(stall_a_big_write(f, server, n));
    for (std::size_t i = 0; i < later; ++i)
        ASSERT_FALSE(f.pool->send_to(1, make_event("later-" + std::to_string(i))));

    server.close_all_clients();
    // Room for capacity - later = 200 of the batch: the oldest ones; 120 are dropped.
    constexpr std::size_t kept = capacity - later;
    ASSERT_TRUE(eventually([&] { return f.stats(1).dropped_unsent == n - kept; }, 10s));
    {
        const auto s = f.stats(1);
        EXPECT_EQ(s.messages_requeued, kept);
        EXPECT_EQ(s.requeued_pending, kept);
        EXPECT_EQ(s.queue_depth, capacity);
        EXPECT_EQ(f.pool->send_to(1, make_event("no-room")), errc::queue_full);
    }
    server.set_reading(true);

    ASSERT_TRUE(eventually([&] { return f.stats(1).messages_sent == kept + later; }, 30s));
    ASSERT_TRUE(eventually(
        [&] {
            return uids_received(server, "m-").size() >= kept &&
                   uids_received(server, "later-").size() >= later;
        },
        30s));
    const auto s = f.stats(1);
    EXPECT_EQ(s.drops, s.queue_rejected + s.dropped_unsent);
    EXPECT_EQ(s.queue_depth, 0u);
    // Every message is accounted for: written, or dropped.
    EXPECT_EQ(s.messages_sent + s.dropped_unsent, n + later);

    const auto got = uids_received(server, "m-");
    const std::set<std::string> distinct(got.begin(), got.end());
    EXPECT_EQ(distinct.size(), kept);
    for (std::size_t i = 0; i < kept; ++i)
        EXPECT_TRUE(distinct.count("m-" + std::to_string(i))) << i;
}

TEST(Link, OutboundRateCapsMessagesWrittenAndStopEndsTheWaitPromptly)
{
    // Burst 10 then 50 messages/s: 60 messages need at least about 1 s, and never more than
    // the burst plus the rate times the time elapsed are written.
    link_settings settings = test::quick_settings();
    settings.outbound_rate = token_bucket_params{50.0, 10.0};
    mock_tak_server server;
    fixture f(settings);
    ASSERT_FALSE(f.pool->add_link(endpoint(1, server.port())));
    ASSERT_TRUE(eventually([&] { return server.connected_clients() == 1; }));

    constexpr std::size_t n = 60;
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < n; ++i)
        ASSERT_FALSE(f.pool->send_to(1, make_event("r-" + std::to_string(i))));
    while (uids_received(server, "r-").size() < n) {
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const std::size_t written = f.stats(1).messages_sent;
        // Checked after reading the clock: a write counted now was allowed by then.
        EXPECT_LE(static_cast<double>(written), 10.0 + 50.0 * elapsed + 1.0) << elapsed;
        ASSERT_LT(elapsed, 20.0) << "only " << written << " written";
        std::this_thread::sleep_for(5ms);
    }
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GE(took, (n - 10) / 50.0 * 0.9);
    EXPECT_EQ(f.stats(1).messages_sent, n);
    EXPECT_EQ(f.stats(1).drops, 0u);

    // A writer waiting for a token does not hold up removal beyond the flush timeout.
    for (std::size_t i = 0; i < 200; ++i)
        ASSERT_FALSE(f.pool->send_to(1, make_event("late")));
    const auto removing = std::chrono::steady_clock::now();
    f.pool->remove_link(1, 300ms);
    EXPECT_LT(std::chrono::steady_clock::now() - removing, 2s);
    EXPECT_FALSE(f.pool->stats_of(1));
}

TEST(Link, OutboundRateIsValidated)
{
    link_settings settings = test::quick_settings();
    settings.outbound_rate = token_bucket_params{0.0, 10.0};
    EXPECT_THROW(validate(settings), std::invalid_argument);
    settings.outbound_rate = token_bucket_params{10.0, 0.5};
    EXPECT_THROW(validate(settings), std::invalid_argument);
    settings.outbound_rate = token_bucket_params{10.0, 1.0};
    EXPECT_NO_THROW(validate(settings));
}
