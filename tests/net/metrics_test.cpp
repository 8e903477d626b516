// The metrics registry over real HTTP: every family is served on /metrics with the values the
// sources report, counters never go down, and the text passes `promtool check metrics` when
// promtool is installed.
#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>
#include <sys/wait.h>

#include "omnitak/pool/metrics.hpp"
#include "support/test_support.hpp"

namespace {

using namespace std::chrono_literals;
using omnitak::test::metric_sample;

// GET /metrics over plain HTTP/1.0 (the server closes after the reply). Every step runs on an
// io_context bounded by run_for, so a silent server fails the test instead of hanging it.
std::string http_get(std::uint16_t port, const std::string& target = "/metrics")
{
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    std::string request = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    std::string response;
    std::error_code result = asio::error::timed_out;

    socket.async_connect({asio::ip::make_address("127.0.0.1"), port}, [&](std::error_code ec) {
        if (ec) {
            result = ec;
            return;
        }
        asio::async_write(socket, asio::buffer(request), [&](std::error_code wec, std::size_t) {
            if (wec) {
                result = wec;
                return;
            }
            asio::async_read(socket, asio::dynamic_buffer(response),
                             [&](std::error_code rec, std::size_t) { result = rec; });
        });
    });
    io.run_for(5s);

    if (result != asio::error::eof) {
        throw std::runtime_error("GET " + target + " failed: " + result.message());
    }
    return response;
}

std::string body_of(const std::string& response)
{
    const auto split = response.find("\r\n\r\n");
    return split == std::string::npos ? std::string{} : response.substr(split + 4);
}

bool has_family(const std::string& text, const std::string& name, const std::string& type)
{
    return text.find("# TYPE " + name + " " + type + "\n") != std::string::npos;
}

omnitak::histogram_snapshot latency_histogram()
{
    omnitak::histogram_snapshot h;
    h.upper_bounds = {0.0001, 0.001, 0.01};
    h.cumulative_counts = {10, 90, 99};
    h.count = 100;
    h.sum = 0.05;
    return h;
}

omnitak::metrics_params serving()
{
    omnitak::metrics_params params;
    params.serve = true;
    params.address = "127.0.0.1:0";
    return params;
}

// A source whose figures the test sets between scrapes.
struct fake_figures {
    std::uint64_t sent = 500;
    std::uint64_t received = 700;
    std::uint64_t duplicates = 25;
    std::uint64_t unique = 75;
};

void fill(const fake_figures& f, omnitak::metrics_snapshot& s)
{
    s.connections_total += 10;
    s.connections_active += 7;
    s.messages_sent += f.sent;
    s.messages_received += f.received;
    s.errors += 3;
    s.reconnects += 4;
    s.add_links(omnitak::link_state_label::connected, 7);
    s.add_links(omnitak::link_state_label::backing_off, 2);
    s.add_links(omnitak::link_state_label::connecting, 1);
    s.open_breakers += 1;
    s.framer_bytes_skipped += 42;
    s.framing_problems += 2;
    s.add_parse_errors(omnitak::errc::bad_time, 5);
    s.add_parse_errors(omnitak::errc::queue_full, 1);  // not a parse code: "unknown"
    s.outbound_queue_depth += 12;
    s.distributor_latency_seconds = latency_histogram();
    s.distributor_batch_size.upper_bounds = {1, 10, 100};
    s.distributor_batch_size.cumulative_counts = {5, 15, 20};
    s.distributor_batch_size.count = 20;
    s.distributor_batch_size.sum = 300;
    s.distributor_dropped += 6;
    s.duplicates += f.duplicates;
    s.unique += f.unique;
}

bool on_path(const char* program)
{
    const char* path = std::getenv("PATH");
    if (!path) return false;
    std::istringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        if (!dir.empty() && std::filesystem::exists(std::filesystem::path(dir) / program)) {
            return true;
        }
    }
    return false;
}

TEST(MetricsRegistry, DefaultsToLoopbackPort9090WithoutServing)
{
    const omnitak::metrics_params params;
    EXPECT_FALSE(params.serve);
    EXPECT_EQ(params.address, "127.0.0.1:9090");

    omnitak::metrics_registry registry(params);
    EXPECT_EQ(registry.port(), 0);
}

TEST(MetricsRegistry, RejectsBadParamsNamingTheField)
{
    omnitak::metrics_params no_threads;
    no_threads.threads = 0;
    EXPECT_THROW(
        {
            try {
                omnitak::metrics_registry r(no_threads);
            } catch (const std::invalid_argument& e) {
                EXPECT_NE(std::string(e.what()).find("threads"), std::string::npos);
                throw;
            }
        },
        std::invalid_argument);

    omnitak::metrics_params no_address = serving();
    no_address.address.clear();
    EXPECT_THROW(omnitak::metrics_registry r(no_address), std::invalid_argument);
}

TEST(MetricsRegistry, ServesEveryFamilyOverHttpWithTheSourcesValues)
{
    omnitak::metrics_registry registry(serving());
    ASSERT_NE(registry.port(), 0);

    fake_figures figures;
    const auto id = registry.add_source([&](omnitak::metrics_snapshot& s) { fill(figures, s); });
    // A second source adds to the same figures.
    const auto id2 =
        registry.add_source([](omnitak::metrics_snapshot& s) { s.messages_sent += 1; });

    const std::string response = http_get(registry.port());
    ASSERT_NE(response.find("200 OK"), std::string::npos) << response;
    const std::string text = body_of(response);

    // The original summary's table, names and types.
    EXPECT_TRUE(has_family(text, "pool_connections_total", "gauge")) << text;
    EXPECT_TRUE(has_family(text, "pool_connections_active", "gauge"));
    EXPECT_TRUE(has_family(text, "pool_messages_sent_total", "counter"));
    EXPECT_TRUE(has_family(text, "pool_messages_received_total", "counter"));
    EXPECT_TRUE(has_family(text, "pool_errors_total", "counter"));
    EXPECT_TRUE(has_family(text, "distributor_latency_seconds", "histogram"));
    EXPECT_TRUE(has_family(text, "distributor_batch_size", "histogram"));
    EXPECT_TRUE(has_family(text, "distributor_messages_dropped_total", "counter"));
    EXPECT_TRUE(has_family(text, "aggregator_duplicate_messages_total", "counter"));
    EXPECT_TRUE(has_family(text, "aggregator_unique_messages_total", "counter"));
    EXPECT_TRUE(has_family(text, "aggregator_dedup_ratio", "gauge"));
    // The operators' additions.
    EXPECT_TRUE(has_family(text, "pool_reconnects_total", "counter"));
    EXPECT_TRUE(has_family(text, "pool_links", "gauge"));
    EXPECT_TRUE(has_family(text, "pool_breakers_open", "gauge"));
    EXPECT_TRUE(has_family(text, "pool_framer_bytes_skipped_total", "counter"));
    EXPECT_TRUE(has_family(text, "pool_parse_errors_total", "counter"));
    EXPECT_TRUE(has_family(text, "pool_framing_problems_total", "counter"));
    EXPECT_TRUE(has_family(text, "pool_outbound_queue_depth", "gauge"));

    EXPECT_EQ(metric_sample(text, "pool_connections_total"), 10);
    EXPECT_EQ(metric_sample(text, "pool_connections_active"), 7);
    EXPECT_EQ(metric_sample(text, "pool_messages_sent_total"), 501);
    EXPECT_EQ(metric_sample(text, "pool_messages_received_total"), 700);
    EXPECT_EQ(metric_sample(text, "pool_errors_total"), 3);
    EXPECT_EQ(metric_sample(text, "pool_reconnects_total"), 4);
    EXPECT_EQ(metric_sample(text, "pool_links{state=\"connected\"}"), 7);
    EXPECT_EQ(metric_sample(text, "pool_links{state=\"backing_off\"}"), 2);
    EXPECT_EQ(metric_sample(text, "pool_links{state=\"connecting\"}"), 1);
    EXPECT_EQ(metric_sample(text, "pool_links{state=\"closed\"}"), 0);
    EXPECT_EQ(metric_sample(text, "pool_breakers_open"), 1);
    EXPECT_EQ(metric_sample(text, "pool_framer_bytes_skipped_total"), 42);
    EXPECT_EQ(metric_sample(text, "pool_framing_problems_total"), 2);
    EXPECT_EQ(metric_sample(text, "pool_parse_errors_total{reason=\"bad_time\"}"), 5);
    EXPECT_EQ(metric_sample(text, "pool_parse_errors_total{reason=\"unknown\"}"), 1);
    EXPECT_EQ(metric_sample(text, "pool_parse_errors_total{reason=\"not_well_formed\"}"), 0);
    EXPECT_EQ(metric_sample(text, "pool_outbound_queue_depth"), 12);
    EXPECT_EQ(metric_sample(text, "distributor_messages_dropped_total"), 6);
    EXPECT_EQ(metric_sample(text, "aggregator_duplicate_messages_total"), 25);
    EXPECT_EQ(metric_sample(text, "aggregator_unique_messages_total"), 75);
    EXPECT_DOUBLE_EQ(metric_sample(text, "aggregator_dedup_ratio").value_or(-1), 0.25);
    EXPECT_EQ(metric_sample(text, "distributor_latency_seconds_bucket{le=\"0.001\"}"), 90);
    EXPECT_EQ(metric_sample(text, "distributor_latency_seconds_bucket{le=\"+Inf\"}"), 100);
    EXPECT_EQ(metric_sample(text, "distributor_latency_seconds_count"), 100);
    EXPECT_DOUBLE_EQ(metric_sample(text, "distributor_latency_seconds_sum").value_or(-1), 0.05);
    EXPECT_EQ(metric_sample(text, "distributor_batch_size_bucket{le=\"10\"}"), 15);
    EXPECT_EQ(metric_sample(text, "distributor_batch_size_count"), 20);

    registry.remove_source(id);
    registry.remove_source(id2);
}

TEST(MetricsRegistry, CountersNeverGoDownWhenASourceTotalFalls)
{
    omnitak::metrics_registry registry;
    fake_figures figures;
    const auto id = registry.add_source([&](omnitak::metrics_snapshot& s) { fill(figures, s); });
    EXPECT_EQ(metric_sample(registry.text(), "pool_messages_sent_total"), 500);

    // A link with 200 sends was removed: the running total falls. The exported counter keeps
    // what it had and adds later growth on top.
    figures.sent = 300;
    EXPECT_EQ(metric_sample(registry.text(), "pool_messages_sent_total"), 500);
    figures.sent = 350;
    EXPECT_EQ(metric_sample(registry.text(), "pool_messages_sent_total"), 550);

    registry.remove_source(id);
    EXPECT_EQ(metric_sample(registry.text(), "pool_messages_sent_total"), 550);
}

TEST(MetricsRegistry, RepairsAMalformedHistogramInsteadOfBreakingTheScrape)
{
    omnitak::metrics_registry registry;
    const auto id = registry.add_source([](omnitak::metrics_snapshot& s) {
        s.distributor_latency_seconds.upper_bounds = {0.01, 0.001, 0.1};  // not ascending
        s.distributor_latency_seconds.cumulative_counts = {5, 3};         // size mismatch
        s.distributor_latency_seconds.count = 2;                          // below a bucket
    });
    const std::string text = registry.text();
    EXPECT_EQ(metric_sample(text, "distributor_latency_seconds_bucket{le=\"0.01\"}"), 5);
    EXPECT_FALSE(
        metric_sample(text, "distributor_latency_seconds_bucket{le=\"0.001\"}").has_value());
    EXPECT_EQ(metric_sample(text, "distributor_latency_seconds_count"), 5);
    registry.remove_source(id);
}

TEST(MetricsRegistry, ExportsTheApplicationsOwnMetricsToo)
{
    omnitak::metrics_registry registry(serving());
    auto& family = prometheus::BuildCounter()
                       .Name("app_events_total")
                       .Help("app")
                       .Register(registry.registry());
    family.Add({}).Increment(3);

    const std::string text = body_of(http_get(registry.port()));
    EXPECT_EQ(metric_sample(text, "app_events_total"), 3);
    EXPECT_TRUE(has_family(text, "pool_connections_total", "gauge"));
}

TEST(MetricsRegistry, ReportsAnAddressItCannotBind)
{
    omnitak::metrics_registry first(serving());
    omnitak::metrics_params same = serving();
    same.address = "127.0.0.1:" + std::to_string(first.port());
    const auto message = [](const omnitak::metrics_params& p) {
        try {
            omnitak::metrics_registry registry(p);
        } catch (const std::runtime_error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    // The reason, not only the HTTP server's generic "problem binding to port".
    EXPECT_NE(message(same).find("in use"), std::string::npos) << message(same);
    // An entry after the first that collides with an earlier one is named.
    const std::string taken = std::to_string(first.port());
    same.address = "127.0.0.1:0,127.0.0.1:" + taken;
    EXPECT_NE(message(same).find(":" + taken + "': Address already in use"), std::string::npos)
        << message(same);
    // The same free address twice: the second entry collides with the first.
    std::uint16_t free_port = 0;
    {
        asio::io_context io;
        asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
        free_port = a.local_endpoint().port();
    }
    const std::string twice = "127.0.0.1:" + std::to_string(free_port);
    same.address = twice + "," + twice;
    EXPECT_NE(message(same).find(twice + "': the same port on the same address as an earlier"),
              std::string::npos)
        << message(same);
    same.address = "127.0.0.1:http";
    EXPECT_NE(message(same).find("PORT a number"), std::string::npos) << message(same);
}

// The embedded HTTP server reads "127.0.0.257" as 127.0.1.1 and listens there; these must be
// refused before it sees them, each with its reason.
TEST(MetricsRegistry, RefusesAddressesTheHttpServerWouldMisreadOrFailVaguely)
{
    const auto message = [](const std::string& address) {
        omnitak::metrics_params p = serving();
        p.address = address;
        try {
            omnitak::metrics_registry registry(p);
        } catch (const std::runtime_error& e) {
            return std::string(e.what());
        }
        return std::string("served");
    };
    for (const char* address : {"127.0.0.257:0", "999.1.1.1:0", "383.0.0.1:0", "127.1:0", "1.2.3:0",
                                "1..2.3:0", "0x7f.1:0", "2130706433:0"}) {
        EXPECT_NE(message(address).find("is not an IPv4 address"), std::string::npos)
            << address << ": " << message(address);
    }
    EXPECT_NE(message(":0").find("no HOST"), std::string::npos) << message(":0");
    EXPECT_NE(message("0,garbage").find("'garbage': expected HOST:PORT"), std::string::npos)
        << message("0,garbage");
    EXPECT_NE(message("127.0.0.1:0,").find("empty entry"), std::string::npos);
    EXPECT_NE(message("127.0.0.1:65536").find("PORT a number"), std::string::npos);
    EXPECT_NE(message("127.0.0.1:0x10").find("PORT a number"), std::string::npos);
    // ".invalid" never resolves (RFC 6761).
    EXPECT_NE(message("nowhere.invalid:0").find("cannot resolve 'nowhere.invalid'"),
              std::string::npos)
        << message("nowhere.invalid:0");
    EXPECT_NE(message("[127.0.0.1]:0").find("in brackets is not an IPv6"), std::string::npos)
        << message("[127.0.0.1]:0");
    EXPECT_NE(message("[::1:0").find("IPv6 HOST in brackets"), std::string::npos)
        << message("[::1:0");
    // A later entry is checked as well as the first.
    EXPECT_NE(message("127.0.0.1:0,1.2.3:0").find("'1.2.3' is not"), std::string::npos)
        << message("127.0.0.1:0,1.2.3:0");
    // Still served: a name that resolves, and a list.
    EXPECT_EQ(message("localhost:0"), "served");
    EXPECT_EQ(message("127.0.0.1:0,127.0.0.1:0"), "served");
}

TEST(MetricsRegistry, TextPassesPromtoolCheckMetrics)
{
    if (!on_path("promtool")) {
        GTEST_SKIP() << "promtool not on PATH (Debian package 'prometheus'); check not run";
    }
    omnitak::metrics_registry registry(serving());
    fake_figures figures;
    const auto id = registry.add_source([&](omnitak::metrics_snapshot& s) { fill(figures, s); });

    const auto dir = std::filesystem::temp_directory_path();
    const auto input = dir / ("omnitak_metrics_" + std::to_string(registry.port()) + ".txt");
    const auto output = dir / ("omnitak_promtool_" + std::to_string(registry.port()) + ".txt");
    {
        std::ofstream out(input, std::ios::binary);
        out << body_of(http_get(registry.port()));
    }
    const std::string command =
        "promtool check metrics < '" + input.string() + "' > '" + output.string() + "' 2>&1";
    const int status = std::system(command.c_str());
    std::ifstream report_file(output);
    std::stringstream report;
    report << report_file.rdbuf();
    std::filesystem::remove(input);
    std::filesystem::remove(output);

    // Exit 0 is a clean pass. Exit 3 means lint findings only (the text parsed); the one
    // finding we accept is the documented `pool_connections_total` gauge name.
    ASSERT_NE(status, -1);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::istringstream lines(report.str());
    std::string line;
    std::vector<std::string> findings;
    while (std::getline(lines, line)) {
        if (!line.empty()) findings.push_back(line);
    }
    if (code == 3) {
        ASSERT_EQ(findings.size(), 1u) << report.str();
        EXPECT_EQ(findings[0],
                  "pool_connections_total non-counter metrics should not have \"_total\" suffix");
    } else {
        EXPECT_EQ(code, 0) << report.str();
    }
    registry.remove_source(id);
}

}  // namespace
