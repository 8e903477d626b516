// What a link counts about bad inbound traffic, end to end on a real loopback socket: a mock
// TAK server sends junk between events, events the parser rejects for different reasons, an
// oversized event and an event cut off by the end of the session. The link's stats, the
// pool's and the system's sums, and the serialised Prometheus metrics must show exactly
// those counts, across two sessions.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "net_test_helpers.hpp"
#include "omnitak/pool/system.hpp"
#include "omnitak/pool/testing/mock_tak_server.hpp"
#include "support/test_support.hpp"

namespace {

using namespace std::chrono_literals;
using omnitak::errc;
using omnitak::test::event_xml;
using omnitak::test::eventually;
using omnitak::test::metric_sample;
using omnitak::testing::mock_tak_server;
using omnitak::testing::mock_tak_server_params;

constexpr omnitak::link_id id = 7;

std::string replaced(std::string text, const std::string& from, const std::string& to)
{
    const auto at = text.find(from);
    if (at == std::string::npos) throw std::logic_error("fixture lacks " + from);
    return text.replace(at, from.size(), to);
}

std::uint64_t reason(const omnitak::link_stats& s, errc code)
{
    return s.parse_errors_by_reason[omnitak::parse_error_index(make_error_code(code))];
}

std::uint64_t total(const std::vector<std::string>& events)
{
    return std::accumulate(events.begin(), events.end(), std::uint64_t{0},
                           [](std::uint64_t n, const std::string& e) { return n + e.size(); });
}

omnitak::system_params params()
{
    omnitak::system_params p;
    p.threads = 2;
    auto& s = p.pool.link_defaults;
    s.connect_timeout = 2s;
    // Nothing but the test's bytes on the wire: no pings, so no pongs either.
    s.health.enabled = false;
    s.first_byte_timeout = 0ms;
    s.short_session = 0ms;
    s.backoff.initial = 100ms;
    s.backoff.max = 500ms;
    s.breaker.failure_threshold = 1000;
    s.framing.max_event_bytes = 1024;
    p.receive_capacity = 0;
    p.shutdown_timeout = 2s;
    return p;
}

TEST(InboundErrors, LinkStatsAndMetricsCountJunkBytesAndEachRejectionReason)
{
    mock_tak_server_params mp;
    mp.relay = false;
    mock_tak_server server(mp);
    omnitak::system sys(params());
    sys.start();

    omnitak::system_link l;
    l.endpoint = omnitak::test::endpoint(id, server.port());
    ASSERT_FALSE(sys.add_link(std::move(l)));
    ASSERT_TRUE(eventually([&] { return server.connected_clients() == 1; }));
    const auto stats = [&] { return sys.pool().stats_of(id).value(); };
    // Counters are read one by one; waiting for the figures a step ends with (they only grow)
    // gives a settled snapshot, which the checks below then hold to exact values.
    const auto settle = [&](const std::function<bool(const omnitak::link_stats&)>& done) {
        eventually([&] { return done(stats()); });
        return stats();
    };

    // --- session 1: junk between events, three parser rejections, one oversized event ------
    const std::string good1 = event_xml("good-1");
    const std::string no_uid = event_xml("");
    const std::string bad_time =
        replaced(event_xml("bad-time"), "time=\"2026-01-01T00:00:00Z\"", "time=\"yesterday\"");
    const std::string lat_out = replaced(event_xml("lat-out"), "lat=\"1.5\"", "lat=\"95.5\"");
    const std::string big = event_xml("big", 3000);  // > max_event_bytes: never parsed
    const std::string good2 = event_xml("good-2");
    const std::string garbage = "garbage bytes ###";
    const std::string junk = "!!junk!!";
    ASSERT_GT(big.size(), 1024u);

    // Each chunk is read before the next is sent, so reads end inside a junk run and inside
    // the oversized event: what the link's framer is in the middle of must survive the wait.
    const auto session1 = server.sessions().at(0);
    std::uint64_t sent = 0;
    for (const std::string& chunk :
         {good1 + "\r\n" + garbage + no_uid, "\n" + bad_time + junk,
          lat_out + "\n" + big.substr(0, 1500), big.substr(1500) + good2}) {
        ASSERT_TRUE(server.send_to(session1, chunk));
        sent += chunk.size();
        ASSERT_TRUE(eventually([&] { return stats().bytes_received == sent; }));
    }
    const std::uint64_t skipped1 =
        2 + garbage.size() + 1 + junk.size() + 1 + big.size();  // "\r\n", "\n", "\n"
    auto s = settle([&](const omnitak::link_stats& x) {
        return x.messages_received == 2 && x.parse_errors == 3 && x.framing_problems == 3 &&
               x.framer_bytes_skipped == skipped1;
    });
    EXPECT_EQ(s.messages_received, 2u);
    EXPECT_EQ(s.parse_errors, 3u);
    EXPECT_EQ(reason(s, errc::missing_uid), 1u);
    EXPECT_EQ(reason(s, errc::bad_time), 1u);
    EXPECT_EQ(reason(s, errc::point_out_of_range), 1u);
    EXPECT_EQ(reason(s, errc::event_too_large), 1u);
    EXPECT_EQ(std::accumulate(s.parse_errors_by_reason.begin(), s.parse_errors_by_reason.end(),
                              std::uint64_t{0}),
              4u);
    // Two junk runs and the oversized event.
    EXPECT_EQ(s.framing_problems, 3u);
    EXPECT_EQ(s.framer_bytes_skipped, skipped1);
    EXPECT_EQ(s.framer_bytes_skipped,
              s.bytes_received - total({good1, no_uid, bad_time, lat_out, good2}));

    // --- the session ends in junk and half an event: its bytes still count ------------------
    const std::string tail = "tail junk, then the server hangs up";
    ASSERT_TRUE(server.send_to(session1, tail));
    server.send_half_event_and_close();
    const std::uint64_t framed1 = total({good1, no_uid, bad_time, lat_out, good2});
    s = settle([&](const omnitak::link_stats& x) {
        return reason(x, errc::stream_truncated) == 1 && x.framing_problems == 5 &&
               x.framer_bytes_skipped == x.bytes_received - framed1;
    });
    EXPECT_EQ(reason(s, errc::stream_truncated), 1u);
    EXPECT_EQ(s.framing_problems, 5u);  // + the tail junk run and the truncated event
    EXPECT_GT(s.framer_bytes_skipped, skipped1 + tail.size());
    EXPECT_EQ(s.framer_bytes_skipped, s.bytes_received - framed1);

    // --- session 2: a prologue (skipped silently), a malformed event, more junk -------------
    ASSERT_TRUE(eventually([&] {
        return server.connected_clients() == 1 && server.sessions().at(0) != session1 &&
               stats().state == omnitak::link_state::connected;
    }));
    const std::string prologue = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    const std::string malformed = replaced(event_xml("malformed"), "</detail>", "");
    const std::string good3 = event_xml("good-3");
    ASSERT_TRUE(server.send_to(server.sessions().at(0), prologue + malformed + "zz" + good3));
    const std::uint64_t framed = total({good1, no_uid, bad_time, lat_out, good2, malformed, good3});
    s = settle([&](const omnitak::link_stats& x) {
        return x.messages_received == 3 && x.parse_errors == 4 && x.framing_problems == 6 &&
               x.framer_bytes_skipped == x.bytes_received - framed;
    });
    EXPECT_EQ(s.messages_received, 3u);
    EXPECT_EQ(s.sessions, 2u);
    EXPECT_EQ(s.parse_errors, 4u);
    const std::vector<std::pair<errc, std::uint64_t>> expected{
        {errc::not_well_formed, 1},    {errc::root_not_event, 0},    {errc::missing_uid, 1},
        {errc::missing_type, 0},       {errc::bad_time, 1},          {errc::bad_point, 0},
        {errc::point_out_of_range, 1}, {errc::doctype_forbidden, 0}, {errc::too_many_elements, 0},
        {errc::too_deep, 0},           {errc::event_too_large, 1},   {errc::event_unterminated, 0},
        {errc::stream_truncated, 1}};
    ASSERT_EQ(expected.size(), omnitak::parse_error_reasons.size());
    for (const auto& [code, n] : expected) {
        EXPECT_EQ(reason(s, code), n) << omnitak::to_string(code);
    }
    EXPECT_EQ(s.parse_errors_by_reason.back(), 0u);  // "unknown"
    EXPECT_EQ(s.framing_problems, 6u);               // + "zz"
    EXPECT_EQ(s.framer_bytes_skipped, s.bytes_received - framed);

    // --- the pool's and the system's sums, and the exported metrics -------------------------
    const auto p = sys.stats().pool;
    EXPECT_EQ(p.framer_bytes_skipped, s.framer_bytes_skipped);
    EXPECT_EQ(p.parse_errors_by_reason, s.parse_errors_by_reason);
    EXPECT_EQ(p.parse_errors, 4u);

    const std::string text = sys.metrics().text();
    EXPECT_EQ(metric_sample(text, "pool_framer_bytes_skipped_total"),
              static_cast<double>(s.framer_bytes_skipped))
        << text;
    EXPECT_EQ(metric_sample(text, "pool_framing_problems_total"), 6);
    for (const auto& [code, n] : expected) {
        const std::string series =
            "pool_parse_errors_total{reason=\"" + std::string(omnitak::to_string(code)) + "\"}";
        EXPECT_EQ(metric_sample(text, series), static_cast<double>(n)) << series;
    }
    EXPECT_EQ(metric_sample(text, "pool_parse_errors_total{reason=\"unknown\"}"), 0);
    EXPECT_EQ(text.find("link=\""), std::string::npos) << "no per-link labels";

    const auto report = sys.shutdown(2s);
    EXPECT_FALSE(report.result) << report.result.message();
    server.stop();
}

}  // namespace
