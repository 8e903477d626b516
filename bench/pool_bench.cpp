// Connection pool benchmarks: memory per idle link, many links held open, one link's
// throughput against a bare Asio loop measured in the same run, and round-trip latency.
//
// Method.
// - Mock TAK servers run in a forked child process, so that the process being measured holds
//   only the client side: its heap and fd count are the pool's alone, and 10,000 links need
//   10,000 descriptors here instead of 20,000.
// - Memory per idle link: heap in use (mallinfo2: arena + mmapped) and RSS, before adding the
//   links and once every link is connected and has had its first ping answered, divided by the
//   number of links. Kernel socket buffers are not in either figure.
// - Throughput: 600-byte events over loopback to a sink that reads and discards. "bare" is an
//   Asio coroutine writing the same events in gathered writes of 64; "pool" pushes them through
//   connection_pool::send_to and the link's writer. Inbound: a source writes events as fast as
//   it can; "bare" reads and discards, "bare framed parsed" also frames and parses each event
//   in the reading thread, "pool" frames, parses and delivers each event through a link.
// - Round trip: the link sends an event, the mock server echoes it, the link delivers it; the
//   inbound handler sends the next one. One message in flight per link; p50/p99 reported.
//   The baseline is a bare Asio client doing the same against the same mock server.
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "omnitak/pool/framer.hpp"
#include "omnitak/pool/parser.hpp"
#include "omnitak/pool/pool.hpp"
#include "omnitak/pool/testing/mock_tak_server.hpp"

using namespace std::chrono_literals;
using namespace omnitak;

namespace {

constexpr std::size_t event_size = 600;

std::string event_xml(const std::string& uid, std::size_t size)
{
    std::string head = "<event version=\"2.0\" uid=\"" + uid +
                       "\" type=\"a-f-G-U-C\" how=\"m-g\" time=\"2026-01-01T00:00:00Z\" "
                       "start=\"2026-01-01T00:00:00Z\" stale=\"2030-01-01T00:00:00Z\">"
                       "<point lat=\"1.5\" lon=\"2.5\" hae=\"0\" ce=\"9\" le=\"9\"/><detail>";
    const std::string tail = "</detail></event>";
    const std::size_t fixed = head.size() + tail.size() + 19;
    if (size > fixed) head += "<remarks>" + std::string(size - fixed, 'x') + "</remarks>";
    return head + tail;
}

message_ptr make_event(const std::string& uid, std::size_t size)
{
    std::error_code ec;
    auto m = make_message(event_xml(uid, size), ec);
    if (!m) throw std::runtime_error("bench event does not parse");
    return m;
}

bool wait_until(const std::function<bool()>& done, std::chrono::seconds timeout)
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

void raise_fd_limit()
{
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

std::size_t heap_in_use()
{
    const auto m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

std::size_t rss_bytes()
{
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6)) * 1024;
    }
    return 0;
}

// Mock TAK servers in a child process. The child lives until the parent closes the pipe.
class forked_servers {
public:
    forked_servers(std::size_t count, testing::mock_tak_server_params params)
    {
        int ports_pipe[2], life_pipe[2];
        if (pipe(ports_pipe) != 0 || pipe(life_pipe) != 0) throw std::runtime_error("pipe");
        pid_ = fork();
        if (pid_ < 0) throw std::runtime_error("fork");
        if (pid_ == 0) {
            close(ports_pipe[0]);
            close(life_pipe[1]);
            raise_fd_limit();
            std::vector<std::unique_ptr<testing::mock_tak_server>> servers;
            for (std::size_t i = 0; i < count; ++i) {
                servers.push_back(std::make_unique<testing::mock_tak_server>(params));
                const std::uint16_t port = servers.back()->port();
                if (write(ports_pipe[1], &port, sizeof port) != sizeof port) _exit(1);
            }
            close(ports_pipe[1]);
            char c;
            while (read(life_pipe[0], &c, 1) > 0) {
            }
            for (auto& s : servers)
                s->stop();
            _exit(0);
        }
        close(ports_pipe[1]);
        close(life_pipe[0]);
        life_ = life_pipe[1];
        for (std::size_t i = 0; i < count; ++i) {
            std::uint16_t port = 0;
            if (read(ports_pipe[0], &port, sizeof port) != sizeof port) {
                throw std::runtime_error("server child failed");
            }
            ports_.push_back(port);
        }
        close(ports_pipe[0]);
    }

    ~forked_servers()
    {
        close(life_);
        int status = 0;
        waitpid(pid_, &status, 0);
    }

    const std::vector<std::uint16_t>& ports() const { return ports_; }

private:
    pid_t pid_ = -1;
    int life_ = -1;
    std::vector<std::uint16_t> ports_;
};

link_params endpoint(link_id id, std::uint16_t port)
{
    link_params p;
    p.id = id;
    p.name = "bench" + std::to_string(id);
    p.host = "127.0.0.1";
    p.port = port;
    return p;
}

// ---------------------------------------------------------------------------------------------
// Memory per idle connected link; also "10,000 links held open" at range 10000.
// ---------------------------------------------------------------------------------------------
void BM_IdleLinkMemory(benchmark::State& state)
{
    raise_fd_limit();
    const auto links = static_cast<std::size_t>(state.range(0));
    testing::mock_tak_server_params sp;
    sp.relay = false;
    sp.record = false;
    forked_servers servers(4, sp);

    for (auto _ : state) {
        pool_params p;
        p.threads = 2;
        p.max_links = links;
        p.link_defaults.health.ping_interval = 600s;  // idle: no pings during the measurement
        p.link_defaults.health.unhealthy_after = 1200s;
        p.link_defaults.health.degraded_after = 900s;
        p.link_defaults.connect_timeout = 60s;
        // Connect as fast as the machine allows: the connect rate limit (100/s by default)
        // would make connect_all_s measure the limit.
        p.connect_rate = 0;
        connection_pool pool(std::move(p));
        std::this_thread::sleep_for(50ms);
        const auto heap_before = heap_in_use();
        const auto rss_before = rss_bytes();
        const auto start = std::chrono::steady_clock::now();

        for (std::size_t i = 0; i < links; ++i) {
            pool.add_link(endpoint(i + 1, servers.ports()[i % servers.ports().size()]));
        }
        const bool ok = wait_until(
            [&] {
                const auto s = pool.stats();
                if (s.links_connected != links) return false;
                std::uint64_t pongs = 0;
                for (const auto& l : pool.link_stats_all())
                    pongs += l.pongs_received > 0;
                return pongs == links;
            },
            180s);
        const auto connect_time = std::chrono::steady_clock::now() - start;
        if (!ok) {
            state.SkipWithError("links did not all connect");
            break;
        }
        std::this_thread::sleep_for(300ms);
        const auto heap_after = heap_in_use();
        const auto rss_after = rss_bytes();

        state.counters["links_connected"] = static_cast<double>(pool.stats().links_connected);
        state.counters["heap_per_link_B"] =
            static_cast<double>(heap_after - heap_before) / static_cast<double>(links);
        state.counters["rss_per_link_B"] =
            static_cast<double>(rss_after - rss_before) / static_cast<double>(links);
        state.counters["connect_all_s"] = std::chrono::duration<double>(connect_time).count();
        pool.shutdown(5s);
    }
}
BENCHMARK(BM_IdleLinkMemory)->Arg(1000)->Arg(10000)->Iterations(1)->Unit(benchmark::kSecond);

// ---------------------------------------------------------------------------------------------
// Throughput, outbound: bare Asio gathered writes vs the pool, into the same sink.
// ---------------------------------------------------------------------------------------------
constexpr std::size_t throughput_messages = 200'000;

// Reads and discards; counts bytes. Runs on its own thread.
class sink_server {
public:
    sink_server() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0})
    {
        asio::co_spawn(io_, accept_loop(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~sink_server()
    {
        io_.stop();
        thread_.join();
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::uint64_t bytes() const { return bytes_.load(std::memory_order_acquire); }
    void reset() { bytes_.store(0); }

private:
    asio::awaitable<void> accept_loop()
    {
        for (;;) {
            auto socket = co_await acceptor_.async_accept(asio::use_awaitable);
            asio::co_spawn(io_, drain(std::move(socket)), asio::detached);
        }
    }
    asio::awaitable<void> drain(asio::ip::tcp::socket socket)
    {
        std::vector<char> buffer(256 * 1024);
        try {
            for (;;) {
                const auto n =
                    co_await socket.async_read_some(asio::buffer(buffer), asio::use_awaitable);
                bytes_.fetch_add(n, std::memory_order_release);
            }
        } catch (...) {
        }
    }
    asio::io_context io_;
    asio::ip::tcp::acceptor acceptor_;
    std::atomic<std::uint64_t> bytes_{0};
    std::thread thread_;
};

void BM_OutboundBareAsio(benchmark::State& state)
{
    sink_server sink;
    const auto m = make_event("tp", event_size);
    const std::uint64_t total = throughput_messages * m->bytes().size();
    for (auto _ : state) {
        sink.reset();
        asio::io_context io;
        asio::ip::tcp::socket socket(io);
        socket.connect({asio::ip::make_address("127.0.0.1"), sink.port()});
        socket.set_option(asio::ip::tcp::no_delay(true));
        const auto start = std::chrono::steady_clock::now();
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                std::vector<asio::const_buffer> buffers(
                    64, asio::buffer(m->bytes().data(), m->bytes().size()));
                for (std::size_t sent = 0; sent < throughput_messages; sent += 64) {
                    co_await asio::async_write(socket, buffers, asio::use_awaitable);
                }
            },
            asio::detached);
        io.run();
        wait_until([&] { return sink.bytes() >= total; }, 60s);
        state.SetIterationTime(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * total));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * throughput_messages));
}
BENCHMARK(BM_OutboundBareAsio)
    ->UseManualTime()
    ->Iterations(3)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond);

void BM_OutboundPool(benchmark::State& state)
{
    sink_server sink;
    const auto m = make_event("tp", event_size);
    const std::uint64_t total = throughput_messages * m->bytes().size();
    pool_params p;
    p.threads = 2;
    p.link_defaults.health.enabled = false;  // the sink never answers
    p.link_defaults.first_byte_timeout = 0ms;
    p.link_defaults.queue_capacity = 4096;
    connection_pool pool(std::move(p));
    pool.add_link(endpoint(1, sink.port()));
    wait_until([&] { return pool.stats().links_connected == 1; }, 10s);

    for (auto _ : state) {
        sink.reset();
        const auto start = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < throughput_messages;) {
            if (!pool.send_to(1, m)) {
                ++i;
            } else {
                std::this_thread::yield();
            }
        }
        wait_until([&] { return sink.bytes() >= total; }, 60s);
        state.SetIterationTime(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * total));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * throughput_messages));
    pool.shutdown(2s);
}
BENCHMARK(BM_OutboundPool)
    ->UseManualTime()
    ->Iterations(3)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------------------------
// Throughput, inbound: a source writes events as fast as it can.
// ---------------------------------------------------------------------------------------------
class source_server {
public:
    explicit source_server(std::string chunk, std::size_t repeats)
        : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}),
          chunk_(std::move(chunk)),
          repeats_(repeats)
    {
        asio::co_spawn(io_, accept_loop(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~source_server()
    {
        io_.stop();
        thread_.join();
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

private:
    asio::awaitable<void> accept_loop()
    {
        for (;;) {
            auto socket = co_await acceptor_.async_accept(asio::use_awaitable);
            asio::co_spawn(io_, pour(std::move(socket)), asio::detached);
        }
    }
    asio::awaitable<void> pour(asio::ip::tcp::socket socket)
    {
        try {
            for (std::size_t i = 0; i < repeats_; ++i) {
                co_await asio::async_write(socket, asio::buffer(chunk_), asio::use_awaitable);
            }
            // Keep the connection open until the client goes away.
            char c;
            co_await socket.async_read_some(asio::buffer(&c, 1), asio::use_awaitable);
        } catch (...) {
        }
    }
    asio::io_context io_;
    asio::ip::tcp::acceptor acceptor_;
    std::string chunk_;
    std::size_t repeats_;
    std::thread thread_;
};

constexpr std::size_t events_per_chunk = 64;
constexpr std::size_t inbound_chunks = throughput_messages / events_per_chunk;

std::string inbound_chunk()
{
    std::string chunk;
    const auto e = event_xml("in", event_size);
    for (std::size_t i = 0; i < events_per_chunk; ++i)
        chunk += e;
    return chunk;
}

// A bare Asio read loop over the source's stream, 64 KiB a read: `consume` gets each read's
// bytes and returns how many events it finished with them. The loop ends after every byte.
template <class Consume>
void run_bare_inbound(benchmark::State& state, Consume consume)
{
    const auto chunk = inbound_chunk();
    const std::uint64_t total = chunk.size() * inbound_chunks;
    for (auto _ : state) {
        source_server source(chunk, inbound_chunks);
        asio::io_context io;
        asio::ip::tcp::socket socket(io);
        socket.connect({asio::ip::make_address("127.0.0.1"), source.port()});
        const auto start = std::chrono::steady_clock::now();
        std::vector<char> buffer(64 * 1024);
        std::uint64_t got = 0;
        std::uint64_t events = 0;
        while (got < total) {
            const std::size_t n = socket.read_some(asio::buffer(buffer));
            got += n;
            events += consume(std::string_view(buffer.data(), n));
        }
        benchmark::DoNotOptimize(events);
        state.SetIterationTime(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * total));
    state.SetItemsProcessed(
        static_cast<std::int64_t>(state.iterations() * inbound_chunks * events_per_chunk));
}

void BM_InboundBareAsio(benchmark::State& state)
{
    run_bare_inbound(state, [](std::string_view) { return std::uint64_t{0}; });
}
BENCHMARK(BM_InboundBareAsio)
    ->UseManualTime()
    ->Iterations(3)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond);

// The same read loop, plus the work every inbound event needs whoever does it: framing, and
// parsing into a message (make_message). The pool's inbound figure divided by this one is the
// cost of the link itself (strand, stats, health, delivery), apart from the CoT work.
void BM_InboundBareAsioFramedParsed(benchmark::State& state)
{
    stream_framer framer;
    run_bare_inbound(state, [&framer](std::string_view bytes) {
        std::uint64_t events = 0;
        framer.feed(bytes);
        for (frame_result r = framer.next(); r.what != frame_result::kind::need_more;
             r = framer.next()) {
            if (r.what != frame_result::kind::event) continue;
            std::error_code ec;
            message_ptr m = make_message(std::string(r.event), ec);
            benchmark::DoNotOptimize(m);
            ++events;
        }
        return events;
    });
}
BENCHMARK(BM_InboundBareAsioFramedParsed)
    ->UseManualTime()
    ->Iterations(3)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond);

void BM_InboundPool(benchmark::State& state)
{
    const auto chunk = inbound_chunk();
    const std::uint64_t total_events = inbound_chunks * events_per_chunk;
    for (auto _ : state) {
        source_server source(chunk, inbound_chunks);
        std::atomic<std::uint64_t> received{0};
        pool_params p;
        p.threads = 2;
        p.link_defaults.health.enabled = false;
        p.link_defaults.first_byte_timeout = 0ms;
        p.on_inbound = [&](message_ptr) { received.fetch_add(1, std::memory_order_relaxed); };
        connection_pool pool(std::move(p));
        const auto start = std::chrono::steady_clock::now();
        pool.add_link(endpoint(1, source.port()));
        wait_until([&] { return received.load() >= total_events; }, 120s);
        state.SetIterationTime(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        pool.shutdown(1s);
    }
    state.SetBytesProcessed(
        static_cast<std::int64_t>(state.iterations() * inbound_chunks * chunk.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * total_events));
}
BENCHMARK(BM_InboundPool)
    ->UseManualTime()
    ->Iterations(3)
    ->Repetitions(5)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------------------------
// Round trip through an echoing mock server, one message in flight per link.
// ---------------------------------------------------------------------------------------------
// Puts p50/p99/max of every link's round trips (microseconds) into the state's counters;
// false (and the state skipped) when there were none.
bool report_round_trips(benchmark::State& state, const std::vector<std::vector<double>>& samples)
{
    std::vector<double> all;
    for (const auto& v : samples)
        all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    if (all.empty()) {
        state.SkipWithError("no round trips");
        return false;
    }
    state.counters["p50_us"] = all[all.size() / 2];
    state.counters["p99_us"] = all[all.size() * 99 / 100];
    state.counters["max_us"] = all.back();
    state.counters["round_trips"] = static_cast<double>(all.size());
    return true;
}

// The echoing mock server both round-trip benchmarks run against, and how many round trips
// each link makes.
testing::mock_tak_server_params echo_server()
{
    testing::mock_tak_server_params sp;
    sp.relay = false;
    sp.record = false;
    sp.echo = true;
    return sp;
}
std::size_t round_trips_per_link(std::size_t links)
{
    return links == 1 ? 20'000 : 300;
}

void BM_RoundTrip(benchmark::State& state)
{
    raise_fd_limit();
    const auto links = static_cast<link_id>(state.range(0));
    const std::size_t per_link = round_trips_per_link(links);
    forked_servers servers(1, echo_server());

    struct slot {
        std::atomic<std::int64_t> sent_at{0};
        std::atomic<std::size_t> done{0};
    };
    for (auto _ : state) {
        std::vector<slot> slots(links + 1);
        std::vector<std::vector<double>> samples(links + 1);
        std::vector<message_ptr> messages(links + 1);
        for (link_id id = 1; id <= links; ++id)
            messages[id] = make_event("rt", event_size);
        connection_pool* pool_ptr = nullptr;
        std::atomic<std::size_t> finished{0};

        pool_params p;
        p.threads = static_cast<std::size_t>(state.range(1));
        p.max_links = links;
        p.on_inbound = [&](message_ptr m) {
            const link_id id = m->origin();
            auto& s = slots[id];
            const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
            // Each link's handler runs on that link's strand: its samples need no lock.
            samples[id].push_back(static_cast<double>(now - s.sent_at.load()) / 1000.0);
            if (s.done.fetch_add(1) + 1 >= per_link) {
                finished.fetch_add(1);
                return;
            }
            s.sent_at.store(std::chrono::steady_clock::now().time_since_epoch().count());
            pool_ptr->send_to(id, messages[id]);
        };
        connection_pool pool(std::move(p));
        pool_ptr = &pool;
        for (link_id id = 1; id <= links; ++id)
            pool.add_link(endpoint(id, servers.ports()[0]));
        wait_until([&] { return pool.stats().links_connected == links; }, 60s);
        std::this_thread::sleep_for(100ms);

        for (link_id id = 1; id <= links; ++id) {
            slots[id].sent_at.store(std::chrono::steady_clock::now().time_since_epoch().count());
            pool.send_to(id, messages[id]);
        }
        wait_until([&] { return finished.load() == links; }, 120s);
        pool.shutdown(1s);

        if (!report_round_trips(state, samples)) break;
    }
}
// The same round trips from a bare Asio client (one thread, one coroutine per socket: write the
// event, read back exactly its bytes) against the same mock server: the baseline for the pool's
// figures above, measured in the same run.
void BM_RoundTripBareAsio(benchmark::State& state)
{
    raise_fd_limit();
    const auto links = static_cast<std::size_t>(state.range(0));
    const std::size_t per_link = round_trips_per_link(links);
    forked_servers servers(1, echo_server());
    const std::string event = event_xml("rt", event_size);

    for (auto _ : state) {
        asio::io_context io;
        std::vector<asio::ip::tcp::socket> sockets;
        for (std::size_t i = 0; i < links; ++i) {
            sockets.emplace_back(io);
            sockets.back().connect({asio::ip::make_address("127.0.0.1"), servers.ports()[0]});
            sockets.back().set_option(asio::ip::tcp::no_delay(true));
        }
        std::vector<std::vector<double>> samples(links);
        for (std::size_t i = 0; i < links; ++i) {
            asio::co_spawn(
                io,
                [&, i]() -> asio::awaitable<void> {
                    std::string reply(event.size(), '\0');
                    for (std::size_t k = 0; k < per_link; ++k) {
                        const auto sent = std::chrono::steady_clock::now();
                        if (getenv("DEFER")) co_await asio::post(io, asio::use_awaitable);
                        co_await asio::async_write(sockets[i], asio::buffer(event),
                                                   asio::use_awaitable);
                        co_await asio::async_read(sockets[i], asio::buffer(reply),
                                                  asio::use_awaitable);
                        samples[i].push_back(
                            std::chrono::duration<double, std::micro>(
                                std::chrono::steady_clock::now() - sent)
                                .count());
                    }
                },
                asio::detached);
        }
        io.run();
        report_round_trips(state, samples);
    }
}
BENCHMARK(BM_RoundTripBareAsio)
    ->ArgNames({"links"})
    ->Arg(1)
    ->Arg(100)
    ->Iterations(1)
    ->Repetitions(3)
    ->Unit(benchmark::kMillisecond);

// Arguments: links, pool threads. With 2 pool threads and the mock server's own thread on a
// 2-core machine, three busy threads share two cores and the scheduler's time slices show up
// in the tail; 1 pool thread leaves one core to each side, as a bare C client/server pair has.
BENCHMARK(BM_RoundTrip)
    ->ArgNames({"links", "threads"})
    ->Args({1, 1})
    ->Args({1, 2})
    ->Args({100, 1})
    ->Args({100, 2})
    ->Iterations(1)
    ->Repetitions(3)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
