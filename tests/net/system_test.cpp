// The system facade end to end, with mock TAK servers on loopback: routing by filter, inbound
// messages to the application and the other servers, deduplication across servers, admission,
// shutdown under traffic, and the bundled example in a short run.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "omnitak/pool/system.hpp"
#include "omnitak/pool/testing/mock_tak_server.hpp"

// The example's traffic generator and instruments are compiled into this test as well: the
// example is a program, not a library the tests could link.
#include "../../examples/complete_system/traffic.cpp"

namespace {

using namespace std::chrono_literals;
using omnitak::testing::mock_tak_server;
using omnitak::testing::mock_tak_server_params;

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s)
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(2ms);
    }
    return true;
}

std::string event(const std::string& uid, const std::string& type = "a-f-G-U-C",
                  const std::string& time = "2026-01-01T00:00:00Z")
{
    return "<event version=\"2.0\" uid=\"" + uid + "\" type=\"" + type + "\" how=\"m-g\" time=\"" +
           time + "\" start=\"" + time +
           "\" stale=\"2030-01-01T00:00:00Z\"><point lat=\"35.26\" lon=\"-116.68\" hae=\"700\" "
           "ce=\"5\" le=\"9999999\"/><detail><contact callsign=\"T-1\"/>"
           "<__group name=\"Cyan\" role=\"Team Member\"/></detail></event>";
}

std::unique_ptr<mock_tak_server> quiet_server()
{
    mock_tak_server_params p;
    p.relay = false;  // the system does the routing between servers
    return std::make_unique<mock_tak_server>(p);
}

// How many events with this uid a server received (its pings excluded by the uid).
std::size_t received_uid(const mock_tak_server& server, const std::string& uid)
{
    std::size_t n = 0;
    for (const auto& e : server.received())
        n += e.summary.uid == uid ? 1 : 0;
    return n;
}

omnitak::system_params quick_params()
{
    omnitak::system_params p;
    p.threads = 2;
    p.pool.link_defaults.connect_timeout = 2s;
    p.pool.link_defaults.backoff.initial = 100ms;
    p.pool.link_defaults.backoff.max = 1s;
    p.pool.link_defaults.breaker.failure_threshold = 1000;
    p.shutdown_timeout = 2s;
    return p;
}

omnitak::system_link link_to(omnitak::link_id id, const mock_tak_server& server,
                             omnitak::filter route = omnitak::filter::always())
{
    omnitak::system_link l;
    l.endpoint.id = id;
    l.endpoint.name = "link" + std::to_string(id);
    l.endpoint.host = "127.0.0.1";
    l.endpoint.port = server.port();
    l.route = std::move(route);
    return l;
}

class collected {
public:
    void operator()(const omnitak::message_ptr& m)
    {
        std::lock_guard lock(mutex_);
        messages_.push_back(m);
    }
    std::vector<omnitak::message_ptr> messages() const
    {
        std::lock_guard lock(mutex_);
        return messages_;
    }
    std::size_t size() const
    {
        std::lock_guard lock(mutex_);
        return messages_.size();
    }

private:
    mutable std::mutex mutex_;
    std::vector<omnitak::message_ptr> messages_;
};

TEST(System, SubmittedEventReachesExactlyTheLinksWhoseFiltersWantItOnce)
{
    auto ground = quiet_server();
    auto chat = quiet_server();
    auto all = quiet_server();

    omnitak::system sys(quick_params());
    sys.start();
    ASSERT_FALSE(sys.add_link(link_to(1, *ground, omnitak::filter::by_type({"a-f-G"}))));
    ASSERT_FALSE(sys.add_link(link_to(2, *chat, omnitak::filter::by_type({"b-t-f"}))));
    ASSERT_FALSE(sys.add_link(link_to(3, *all)));
    ASSERT_TRUE(eventually([&] { return sys.stats().pool.links_connected == 3; }));

    ASSERT_FALSE(sys.submit(event("unit-1", "a-f-G-U-C")));
    ASSERT_TRUE(eventually(
        [&] { return received_uid(*ground, "unit-1") == 1 && received_uid(*all, "unit-1") == 1; }));

    // Give a wrong delivery time to show up before checking that none did.
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(received_uid(*ground, "unit-1"), 1u);
    EXPECT_EQ(received_uid(*all, "unit-1"), 1u);
    EXPECT_EQ(received_uid(*chat, "unit-1"), 0u);
    EXPECT_EQ(sys.stats().submitted, 1u);
    EXPECT_EQ(sys.stats().distributor.deliveries, 2u);

    // The same event again is a duplicate; a newer report of the same unit is not.
    EXPECT_EQ(sys.submit(event("unit-1", "a-f-G-U-C")), omnitak::errc::duplicate);
    EXPECT_FALSE(sys.submit(event("unit-1", "a-f-G-U-C", "2026-01-01T00:00:01Z")));
    EXPECT_TRUE(eventually([&] { return received_uid(*ground, "unit-1") == 2; }));

    // Bytes that are not CoT are refused with the parser's reason.
    EXPECT_EQ(sys.submit(std::string("<event uid=\"x\"/>")), omnitak::errc::missing_type);

    const auto report = sys.shutdown(2s);
    EXPECT_FALSE(report.result) << report.result.message();
    EXPECT_EQ(sys.submit(event("unit-2")), omnitak::errc::shut_down);
}

TEST(System, EventFromOneServerReachesTheApplicationAndTheOtherServersNotItsOrigin)
{
    auto a = quiet_server();
    auto b = quiet_server();
    auto c = quiet_server();
    auto app = std::make_shared<collected>();

    auto params = quick_params();
    params.on_message = [app](omnitak::message_ptr m) { (*app)(m); };
    omnitak::system sys(std::move(params));
    sys.start();
    ASSERT_FALSE(sys.add_link(link_to(1, *a)));
    ASSERT_FALSE(sys.add_link(link_to(2, *b)));
    ASSERT_FALSE(sys.add_link(link_to(3, *c)));
    ASSERT_TRUE(eventually([&] { return sys.stats().pool.links_connected == 3; }));
    // The client sees its connect complete before the server has registered the session.
    ASSERT_TRUE(eventually([&] { return a->connected_clients() == 1; }));

    a->send_to_all(event("from-a"));
    ASSERT_TRUE(eventually([&] {
        return app->size() == 1 && received_uid(*b, "from-a") == 1 &&
               received_uid(*c, "from-a") == 1;
    }));
    std::this_thread::sleep_for(200ms);

    const auto got = app->messages();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0]->summary().uid, "from-a");
    EXPECT_EQ(got[0]->origin(), 1u);
    EXPECT_EQ(received_uid(*a, "from-a"), 0u) << "sent back to the link it came from";
    EXPECT_EQ(received_uid(*b, "from-a"), 1u);
    EXPECT_EQ(received_uid(*c, "from-a"), 1u);

    // The application can also await inbound messages.
    omnitak::message_ptr first;
    EXPECT_TRUE(sys.try_receive(first));
    ASSERT_TRUE(first);
    EXPECT_EQ(first->summary().uid, "from-a");
}

TEST(System, DuplicatesFromTwoServersAreCountedOnce)
{
    auto a = quiet_server();
    auto b = quiet_server();
    auto app = std::make_shared<collected>();

    auto params = quick_params();
    params.on_message = [app](omnitak::message_ptr m) { (*app)(m); };
    omnitak::system sys(std::move(params));
    sys.start();
    ASSERT_FALSE(sys.add_link(link_to(1, *a)));
    ASSERT_FALSE(sys.add_link(link_to(2, *b)));
    ASSERT_TRUE(eventually([&] { return sys.stats().pool.links_connected == 2; }));
    ASSERT_TRUE(
        eventually([&] { return a->connected_clients() == 1 && b->connected_clients() == 1; }));

    const std::string twice = event("relayed-twice");
    a->send_to_all(twice);
    b->send_to_all(twice);
    ASSERT_TRUE(eventually([&] { return sys.stats().inbound == 2; }));

    const auto s = sys.stats();
    EXPECT_EQ(s.inbound_unique, 1u);
    EXPECT_EQ(s.inbound_duplicates, 1u);
    EXPECT_EQ(app->size(), 1u);

    // The metrics say the same.
    const std::string text = sys.metrics().text();
    EXPECT_NE(text.find("\naggregator_duplicate_messages_total 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\naggregator_unique_messages_total 1\n"), std::string::npos);
    EXPECT_NE(text.find("\npool_connections_total 2\n"), std::string::npos);
    EXPECT_NE(text.find("pool_links{state=\"connected\"} 2\n"), std::string::npos);

    // async_receive hands out the one unique message, then nullptr after shutdown.
    asio::io_context io;
    std::vector<omnitak::message_ptr> awaited;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            for (;;) {
                auto m = co_await sys.async_receive();
                awaited.push_back(m);
                if (!m) co_return;
            }
        },
        asio::detached);
    io.run_for(200ms);
    ASSERT_EQ(awaited.size(), 1u);
    EXPECT_EQ(awaited[0]->summary().uid, "relayed-twice");

    sys.shutdown(2s);
    io.restart();
    io.run_for(2s);
    ASSERT_EQ(awaited.size(), 2u);
    EXPECT_EQ(awaited[1], nullptr);
}

TEST(System, AddLinkIsRefusedWithoutAFreeSlotAndAsyncAddLinkWaitsForOne)
{
    auto server = quiet_server();
    auto params = quick_params();
    params.admission.max_permits = 1;
    params.admission.queue_timeout = 5s;
    omnitak::system sys(std::move(params));
    sys.start();

    ASSERT_FALSE(sys.add_link(link_to(1, *server)));
    EXPECT_EQ(sys.add_link(link_to(2, *server)), omnitak::errc::pool_full);

    asio::io_context io;
    std::error_code waited = omnitak::errc::cancelled;
    bool done = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            waited = co_await sys.async_add_link(link_to(2, *server));
            done = true;
        },
        asio::detached);
    io.run_for(100ms);
    EXPECT_FALSE(done);
    EXPECT_EQ(sys.stats().admission_waiting, 1u);

    ASSERT_FALSE(sys.remove_link(1));
    io.restart();
    io.run_for(2s);
    ASSERT_TRUE(done);
    EXPECT_FALSE(waited) << waited.message();
    EXPECT_TRUE(sys.pool().contains(2));
    EXPECT_FALSE(sys.pool().contains(1));
    EXPECT_EQ(sys.stats().links, 1u);
    EXPECT_EQ(sys.remove_link(1), omnitak::errc::link_not_found);
}

TEST(System, ShutdownWhileTrafficFlowsFinishesWithinItsTimeout)
{
    auto a = quiet_server();
    auto b = quiet_server();
    auto params = quick_params();
    omnitak::system sys(std::move(params));
    sys.start();
    for (omnitak::link_id id = 1; id <= 20; ++id) {
        ASSERT_FALSE(sys.add_link(link_to(id, id % 2 ? *a : *b)));
    }
    ASSERT_TRUE(eventually([&] { return sys.stats().pool.links_connected == 20; }));

    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> accepted{0};
    std::thread producer([&] {
        for (std::uint64_t i = 0; !stop.load(); ++i) {
            if (!sys.submit(event("flow-" + std::to_string(i)))) accepted.fetch_add(1);
            if (i % 64 == 0) a->send_to_all(event("server-" + std::to_string(i)));
        }
    });
    ASSERT_TRUE(eventually([&] { return accepted.load() > 1000; }));

    const auto timeout = 1s;
    const auto start = std::chrono::steady_clock::now();
    const auto report = sys.shutdown(timeout);
    const auto took = std::chrono::steady_clock::now() - start;
    stop = true;
    producer.join();

    // The timeout bounds the drain; joining the threads afterwards is quick.
    EXPECT_LT(took, timeout + 500ms);
    EXPECT_LE(report.took, timeout + 500ms);
    EXPECT_TRUE(sys.is_shut_down());
    EXPECT_EQ(sys.submit(event("late")), omnitak::errc::shut_down);
    EXPECT_EQ(sys.add_link(link_to(99, *a)), omnitak::errc::shut_down);

    // A second call returns the same report at once.
    const auto again = sys.shutdown(timeout);
    EXPECT_EQ(again.took, report.took);
    EXPECT_EQ(again.result, report.result);
}

TEST(System, PresetsFollowTheOriginalSummary)
{
    const auto ht = omnitak::system_params::high_throughput();
    EXPECT_EQ(ht.pool.max_links, 5000u);
    EXPECT_EQ(ht.pool.link_defaults.queue_capacity, 2000u);
    EXPECT_EQ(ht.distributor.workers, 32u);
    EXPECT_EQ(ht.distributor.batch_size, 500u);
    EXPECT_EQ(ht.distributor.strategy, omnitak::backpressure::drop);

    const auto ll = omnitak::system_params::low_latency();
    EXPECT_EQ(ll.pool.link_defaults.queue_capacity, 500u);
    EXPECT_EQ(ll.distributor.workers, 16u);
    EXPECT_EQ(ll.distributor.batch_size, 10u);

    const auto mc = omnitak::system_params::memory_constrained();
    EXPECT_EQ(mc.pool.max_links, 1000u);
    EXPECT_EQ(mc.pool.link_defaults.queue_capacity, 100u);
    EXPECT_EQ(mc.aggregator.max_entries, 10000u);
    EXPECT_EQ(mc.aggregator.window, std::chrono::seconds(30));

    // Each preset builds a working system.
    for (auto p : {ht, ll, mc}) {
        p.threads = 1;
        omnitak::system sys(std::move(p));
        sys.start();
        EXPECT_FALSE(sys.submit(event("preset")));
        EXPECT_FALSE(sys.shutdown(1s).result);
    }
}

TEST(System, RejectsParamsTheSystemSetsItself)
{
    auto p = quick_params();
    p.pool.on_inbound = [](omnitak::message_ptr) {};
    try {
        omnitak::system sys(std::move(p));
        FAIL() << "accepted pool.on_inbound";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("on_inbound"), std::string::npos);
    }

    auto bad_link = quick_params();
    omnitak::system sys(std::move(bad_link));
    omnitak::system_link l;  // id 0, no host
    EXPECT_THROW(sys.add_link(std::move(l)), std::invalid_argument);
}

// The bundled example, built next to the tests (build/examples/complete-system), or empty.
std::filesystem::path example_program()
{
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return {};
    auto program = self.parent_path().parent_path() / "examples" / "complete-system";
    return std::filesystem::exists(program) ? program : std::filesystem::path();
}

// One run of the example in the background, its stdout and stderr together in a file.
class example_run {
public:
    example_run(const std::filesystem::path& program, std::vector<std::string> args)
        : output_(std::filesystem::temp_directory_path() /
                  ("omnitak_complete_system_" + std::to_string(::getpid()) + "_" +
                   std::to_string(++runs_) + ".txt"))
    {
        args.insert(args.begin(), program.string());
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t files;
        posix_spawn_file_actions_init(&files);
        posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, output_.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_adddup2(&files, STDOUT_FILENO, STDERR_FILENO);
        spawn_error_ = posix_spawn(&pid_, argv[0], &files, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&files);
        if (spawn_error_ != 0) pid_ = 0;
    }

    ~example_run()
    {
        if (pid_ != 0 && !status_) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
        std::filesystem::remove(output_);
    }

    example_run(const example_run&) = delete;
    example_run& operator=(const example_run&) = delete;

    bool started() const { return pid_ != 0; }
    std::string spawn_error() const { return std::strerror(spawn_error_); }
    pid_t pid() const { return pid_; }

    std::string output() const
    {
        std::ifstream in(output_);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

    /// The exit code, or nullopt when it is still running after `limit` (or died of a signal).
    std::optional<int> exit_code(std::chrono::milliseconds limit)
    {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!status_) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                status_ = status;
                break;
            }
            if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
            std::this_thread::sleep_for(10ms);
        }
        if (!WIFEXITED(*status_)) return std::nullopt;
        return WEXITSTATUS(*status_);
    }

    /// Waits for the first progress line (about a second into the traffic), then sends
    /// `signal`.
    ::testing::AssertionResult signal_once_traffic_flows(int signal)
    {
        if (!eventually([&] { return output().find("s] links ") != std::string::npos; }, 30s)) {
            return ::testing::AssertionFailure() << "no progress line within 30 s:\n" << output();
        }
        if (::kill(pid_, signal) != 0) {
            return ::testing::AssertionFailure() << "kill: " << std::strerror(errno);
        }
        return ::testing::AssertionSuccess();
    }

private:
    static inline int runs_ = 0;
    std::filesystem::path output_;
    pid_t pid_ = 0;
    int spawn_error_ = 0;
    std::optional<int> status_;
};

// A run of 20 links and 200 events/s for `seconds`.
std::vector<std::string> traffic_args(const char* seconds)
{
    return {"--duration", seconds, "--links", "20", "--rate", "200", "--metrics", "127.0.0.1:0"};
}

// Waits for the run to end with `expected`, having printed its report and shut down clean;
// returns what it printed.
std::string output_of_finished_run(example_run& run, int expected, std::chrono::seconds limit)
{
    const auto code = run.exit_code(limit);
    const std::string text = run.output();
    EXPECT_TRUE(code.has_value()) << "still running after " << limit.count() << " s:\n" << text;
    EXPECT_EQ(code.value_or(-1), expected) << text;
    EXPECT_NE(text.find("== complete-system report =="), std::string::npos) << text;
    EXPECT_NE(text.find("shutdown:    clean"), std::string::npos) << text;
    return text;
}

// The example, shortened: it must run, print its report and exit 0.
TEST(System, CompleteSystemExampleRunsInShortForm)
{
    const auto program = example_program();
    if (program.empty()) GTEST_SKIP() << "complete-system not built next to the tests";

    example_run run(program, traffic_args("2"));
    ASSERT_TRUE(run.started()) << run.spawn_error();
    const std::string text = output_of_finished_run(run, 0, 60s);
    EXPECT_NE(text.find("links: 20/20 connected"), std::string::npos) << text;
}

// Each bad input is one line naming the problem and the exit code the README gives, never
// an abort or a run somewhere other than asked.
TEST(System, CompleteSystemExampleRefusesBadInputWithOneLine)
{
    const auto program = example_program();
    if (program.empty()) GTEST_SKIP() << "complete-system not built next to the tests";

    struct bad_input {
        std::vector<std::string> args;
        int exit_code;
        std::string says;
    };
    const std::vector<bad_input> cases{
        {{"--server", "nonsense"}, 2, "bad --server 'nonsense'"},
        {{"--server", "tcp://[::1]]:8087"}, 2, "bad --server"},
        {{"--server", "tcp://[nothing]:8087"}, 2, "bad --server"},
        {{"--server", "tcp://::1:8087"}, 2, "bad --server"},
        {{"--server", "tcp://127.0.0.1:0"}, 2, "bad --server"},
        // 127.0.0.257 would otherwise be served on 127.0.1.1.
        {{"--metrics", "127.0.0.257:0"}, 2, "is not an IPv4 address"},
        {{"--metrics", ":0"}, 2, "no HOST"},
        {{"--duration", "nan"}, 2, "must be a finite number"},
        // A regular file whose read fails after a good open.
        {{"--replay", "/proc/self/mem", "--metrics", "off"}, 1, "Input/output error"},
        {{"--replay", "/dev/zero", "--metrics", "off"}, 1, "not a regular file or a folder"},
        // Most likely an unset shell variable, not a wish for the default.
        {{"--metrics", ""}, 2, "--metrics: empty value"},
        {{"--replay", ""}, 2, "--replay: empty value"},
        {{"--servers", "2", "--server", "tcp://127.0.0.1:8087"}, 2, "excludes"},
        // With real servers the application submits everything: shares would be ignored.
        {{"--submit-share", "0.5", "--server", "tcp://127.0.0.1:8087"}, 2, "excludes"},
        // The mock servers' own descriptors count too: 18 links and 18 servers do not fit
        // in 100 descriptors, though the links' 36 and the spare 64 would.
        {{"-c",
          "ulimit -n 100 && exec '" + program.string() + "' --links 18 --servers 64 --metrics off"},
         2,
         "file descriptors"},
    };
    for (const auto& c : cases) {
        // The descriptor case goes through a shell to lower the limit first.
        example_run run(c.args[0] == "-c" ? std::filesystem::path("/bin/sh") : program, c.args);
        ASSERT_TRUE(run.started()) << run.spawn_error();
        const auto code = run.exit_code(30s);
        const std::string text = run.output();
        const std::string given = c.args[0] + " " + c.args[1];
        ASSERT_TRUE(code.has_value()) << given << ":\n" << text;
        EXPECT_EQ(*code, c.exit_code) << given << ":\n" << text;
        EXPECT_NE(text.find(c.says), std::string::npos) << given << ":\n" << text;
        EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << given << ":\n" << text;
    }
}

// Ctrl-C during the run: the example stops its traffic, shuts down and still prints its
// report, then exits with 128 + SIGINT as its README says.
TEST(System, CompleteSystemExamplePrintsItsReportAfterSigint)
{
    const auto program = example_program();
    if (program.empty()) GTEST_SKIP() << "complete-system not built next to the tests";

    // A long planned run, so that only the signal can end it in time.
    example_run run(program, traffic_args("60"));
    ASSERT_TRUE(run.started()) << run.spawn_error();
    ASSERT_TRUE(run.signal_once_traffic_flows(SIGINT));
    const std::string text = output_of_finished_run(run, 128 + SIGINT, 20s);
    EXPECT_NE(text.find("interrupted: SIGINT after"), std::string::npos) << text;
}

// SIGTERM right after SIGINT is a second request, not a copy of the first: exit at once.
TEST(System, CompleteSystemExampleExitsAtOnceWhenTheOtherSignalFollows)
{
    const auto program = example_program();
    if (program.empty()) GTEST_SKIP() << "complete-system not built next to the tests";

    example_run run(program, traffic_args("60"));
    ASSERT_TRUE(run.started()) << run.spawn_error();
    ASSERT_TRUE(run.signal_once_traffic_flows(SIGINT));
    ASSERT_TRUE(eventually([&] {
        return run.output().find("SIGINT: stopping") != std::string::npos;
    })) << run.output();
    ASSERT_EQ(::kill(run.pid(), SIGTERM), 0);
    const auto code = run.exit_code(20s);
    const std::string text = run.output();

    ASSERT_TRUE(code.has_value()) << text;
    EXPECT_EQ(*code, 128 + SIGINT) << text;
    EXPECT_NE(text.find("SIGTERM after SIGINT: exiting now"), std::string::npos) << text;
}

TEST(CompleteSystemTraffic, GeneratedEventsParseBackAsWhatTheyClaim)
{
    omnitak::example::traffic_params tp;
    tp.units = 8;
    tp.emergency_every = 40;
    omnitak::example::traffic_generator gen(tp);

    auto now = omnitak::cot_time(std::chrono::sys_days(std::chrono::year(2026) / 12 / 3));
    std::map<omnitak::example::traffic_kind, int> kinds;
    std::map<std::string, omnitak::cot_summary> last_position;
    int moved = 0;
    for (int i = 0; i < 2000; ++i) {
        now += 250ms;
        const auto e = gen.next(now);
        omnitak::cot_summary s;
        ASSERT_FALSE(omnitak::parse_cot(e.bytes, s)) << e.bytes;
        EXPECT_EQ(s.uid, e.uid);
        EXPECT_EQ(s.type, e.type);
        EXPECT_EQ(s.time, e.time);
        ASSERT_TRUE(s.point.has_value());
        ++kinds[e.kind];

        if (e.kind == omnitak::example::traffic_kind::position) {
            EXPECT_FALSE(s.callsign.empty());
            EXPECT_FALSE(s.group_name.empty());
            auto it = last_position.find(s.uid);
            if (it != last_position.end()) {
                EXPECT_GT(s.time, it->second.time) << "same uid, newer time";
                if (s.point->lat != it->second.point->lat) ++moved;
            }
            last_position[s.uid] = s;
        }
        if (e.kind == omnitak::example::traffic_kind::chat) {
            EXPECT_EQ(s.type, "b-t-f");
            EXPECT_NE(e.bytes.find("<__chat "), std::string::npos);
            EXPECT_NE(e.bytes.find("<remarks "), std::string::npos);
        }
    }
    EXPECT_GT(kinds[omnitak::example::traffic_kind::position], 1500);
    EXPECT_GT(kinds[omnitak::example::traffic_kind::chat], 0);
    EXPECT_GT(kinds[omnitak::example::traffic_kind::marker], 0);
    EXPECT_GT(kinds[omnitak::example::traffic_kind::emergency], 0);
    EXPECT_GT(kinds[omnitak::example::traffic_kind::emergency_cancel], 0);
    EXPECT_GT(moved, 1000) << "units move along their tracks";
}

TEST(CompleteSystemTraffic, LatencyRecorderPercentilesAreWithinOneSixteenth)
{
    omnitak::example::latency_recorder r;
    EXPECT_EQ(r.percentile(0.5), std::chrono::nanoseconds(0));
    for (std::int64_t i = 1; i <= 100'000; ++i)
        r.record(std::chrono::nanoseconds(i * 10));

    auto near = [](std::chrono::nanoseconds got, double want) {
        const double g = static_cast<double>(got.count());
        return g >= want && g <= want * (1.0 + 1.0 / 16.0);
    };
    EXPECT_EQ(r.count(), 100'000u);
    EXPECT_TRUE(near(r.percentile(0.5), 500'000)) << r.percentile(0.5).count();
    EXPECT_TRUE(near(r.percentile(0.99), 990'000)) << r.percentile(0.99).count();
    EXPECT_TRUE(near(r.percentile(0.999), 999'000)) << r.percentile(0.999).count();
    EXPECT_EQ(r.max(), std::chrono::nanoseconds(1'000'000));
    EXPECT_TRUE(omnitak::example::resident_memory_bytes().value_or(1) > 0);
}

TEST(CompleteSystemTraffic, ReplayFramesEveryEventOfAFolderAndCountsRejects)
{
    const auto dir =
        std::filesystem::temp_directory_path() / ("omnitak_replay_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir / "sub");
    {
        std::ofstream a(dir / "a.cot", std::ios::binary);
        a << "<?xml version=\"1.0\"?>\n" << event("r-1") << "\njunk" << event("r-2");
        std::ofstream b(dir / "sub" / "b.xml", std::ios::binary);
        b << event("r-3") << "<event uid=\"no-type\"></event>";
    }
    std::error_code ec;
    const auto set = omnitak::example::load_replay(dir, ec);
    std::filesystem::remove_all(dir);

    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(set.files, 2u);
    ASSERT_EQ(set.events.size(), 3u);
    EXPECT_EQ(set.rejected, 1u);
    EXPECT_NE(set.events[0].find("r-1"), std::string::npos);
    EXPECT_NE(set.events[2].find("r-3"), std::string::npos);

    omnitak::example::load_replay(dir / "missing", ec);
    EXPECT_TRUE(ec);
}

TEST(CompleteSystemTraffic, ReplayFolderWithASymlinkLoopIsAnErrorNamingTheEntry)
{
    const auto dir = std::filesystem::temp_directory_path() /
                     ("omnitak_replay_loop_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream a(dir / "a.cot", std::ios::binary);
        a << event("r-1");
    }
    std::filesystem::create_symlink(dir / "loop", dir / "loop");
    std::error_code ec;
    const auto set = omnitak::example::load_replay(dir, ec);
    std::filesystem::remove_all(dir);

    EXPECT_EQ(ec, std::errc::too_many_symbolic_link_levels) << ec.message();
    EXPECT_EQ(set.failed.filename(), "loop");
    EXPECT_TRUE(set.events.empty());
}

TEST(CompleteSystemTraffic, ReplayReadFailingAfterAGoodOpenIsAnErrorNotAnAbort)
{
    // /proc/self/mem opens as a regular file; reading its first page fails with EIO.
    std::error_code ec;
    const auto set = omnitak::example::load_replay("/proc/self/mem", ec);
    EXPECT_EQ(ec, std::errc::io_error) << ec.message();
    EXPECT_EQ(set.failed, "/proc/self/mem");
    EXPECT_FALSE(set.not_a_file) << "a regular file that failed, not a device";
    EXPECT_TRUE(set.events.empty());

    omnitak::example::load_replay("/dev/zero", ec);
    EXPECT_EQ(ec, std::errc::invalid_argument);
}

TEST(CompleteSystemTraffic, ReplayFolderCountsWhatItDoesNotReadAndStopsWhenAsked)
{
    const auto dir = std::filesystem::temp_directory_path() /
                     ("omnitak_replay_fifo_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream a(dir / "a.cot", std::ios::binary);
        a << event("r-1");
    }
    ASSERT_EQ(::mkfifo((dir / "live.cot").c_str(), 0600), 0) << std::strerror(errno);
    // A link to a folder is not followed (it could lead back up) and is counted as well.
    std::filesystem::create_directory_symlink(dir, dir / "up");
    std::error_code ec;
    const auto set = omnitak::example::load_replay(dir, ec);
    // A load asked to stop ends at once, with nothing returned.
    std::error_code stop_ec;
    const auto stopped = omnitak::example::load_replay(dir, stop_ec, [] { return true; });
    std::filesystem::remove_all(dir);

    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(set.events.size(), 1u);
    EXPECT_EQ(set.files, 1u);
    EXPECT_EQ(set.skipped, 1u);
    EXPECT_EQ(set.links_not_followed, 1u);
    EXPECT_EQ(stop_ec, std::errc::operation_canceled) << stop_ec.message();
    EXPECT_TRUE(stopped.events.empty());
}

TEST(CompleteSystemTraffic, ReplayFolderNamesTheSubfolderItMayNotOpen)
{
    if (::geteuid() == 0) GTEST_SKIP() << "root opens every folder; permissions cannot fail";
    const auto dir = std::filesystem::temp_directory_path() /
                     ("omnitak_replay_closed_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir / "closed");
    {
        std::ofstream a(dir / "closed" / "a.cot", std::ios::binary);
        a << event("r-1");
    }
    std::filesystem::permissions(dir / "closed", std::filesystem::perms::none);
    std::error_code ec;
    const auto set = omnitak::example::load_replay(dir, ec);
    std::filesystem::permissions(dir / "closed", std::filesystem::perms::owner_all);
    std::filesystem::remove_all(dir);

    EXPECT_EQ(ec, std::errc::permission_denied) << ec.message();
    EXPECT_EQ(set.failed.filename(), "closed");
    EXPECT_TRUE(set.events.empty());
}

}  // namespace
