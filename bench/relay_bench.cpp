// Relay benchmark: one source link, N sink links, every event delivered to every sink. The
// gateway (omnitak::system) against a bare Asio relay measured in the same run, with the same
// traffic. A delivery is one event written to one sink link (fan-out counts each target).
//
// Method.
// - The source and the sinks run in a forked child process (one thread), so that the process
//   being measured holds only its own side of the sockets and its CPU time is the relay's alone.
//   The child and this process share one anonymous mapping of counters (bytes, events, a
//   latency histogram), so the sink side is read without any message exchange.
// - Traffic: the child's source writes a fixed count of 600-byte CoT events, up to 64 a write, as
//   fast as the relay reads them (rate 0), or paced at `rate` events/s. Each event has a
//   distinct uid holding a sequence number and the monotonic clock (CLOCK_MONOTONIC, shared by
//   both processes) at the moment its write was issued, at fixed byte offsets.
// - Sinks do not parse: each reads and discards, counting bytes. Every event is exactly 600
//   bytes and both relays write the bytes they read unchanged, so a sink knows where each
//   event's stamp lies from its byte position alone and copies those 20 digits: end-to-end
//   latency is source write -> sink read, for every delivery. Only the stamp's digits are
//   checked (bad_stamps counts misaligned streams); nothing else in the stream is examined.
// - (a) BM_Baseline_BareAsioRelay, on `threads` io_contexts of one thread each (sinks dealt
//   round-robin over them). The source is read 64 KiB at a time on the first; complete events
//   are found with a plain search for "</event>" and, without parsing, queued as buffers on
//   every sink (the bytes are shared, not copied per sink). Each sink has at most one gathered
//   write pending and everything queued behind it goes in the next one. Reading pauses while
//   the slowest sink has more than 1024 events unwritten (the link queue capacity omnitak has
//   below), so nothing is lost and memory stays bounded. Reported as bare1 (1 thread) and
//   bare2 (2 threads).
// - (b) BM_OmnitakRelay: omnitak::system on `threads` (2) threads, N sink links with
//   filter::always() and the source link with filter::never(); deduplication on (every uid
//   distinct), pings off (the child never answers them). Every event is framed, parsed,
//   checked by the aggregator, handed to on_message and routed by the distributor into N link
//   queues (capacity 1024, backpressure::block, an intake large enough for the whole run:
//   inbound reading is not slowed by full link queues, the intake would drop instead), then
//   written by each link's writer in gathered writes of up to 64. app_p50_us/app_p99_us is the
//   source write -> on_message part of the latency; dropped should stay 0.
// - Timing (manual; Google Benchmark's CPU column is the polling main thread only): from
//   connecting the source (all sinks connected and accepted) until the child has read every
//   expected byte on the sinks. deliveries_per_s = events x N / that time. relay_cpu and
//   sink_cpu: cores each process used meanwhile; cpu_ns_per_delivery: the relay process's CPU
//   time (user + system, all its threads) per delivery, which depends less on how much of the
//   shared machine the relay got than deliveries_per_s does. ratio_vs_bare1/_bare2: omnitak's
//   deliveries_per_s over the bare relay's median at the same sinks and rate. A table of
//   medians and ratios (deliveries/s and CPU per delivery) is printed after the run.
// - Rate 0 saturates: every queue and socket buffer fills, so latency there is mostly how far
//   the source runs ahead (the omnitak intake holds the whole run). The paced runs give the
//   latency at a fixed offered load: 1,000 sinks at 500 events/s is the goal of
//   500,000 deliveries/s; 100 sinks at 500 events/s shows the latency floor.
// - The sinks share the relay's 2 cores: at 500,000 deliveries/s they need nearly as much CPU as
//   the relay, so on this machine both relays' latency includes waiting for the sinks.
#include <benchmark/benchmark.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "omnitak/pool/system.hpp"

using namespace std::chrono_literals;
using namespace omnitak;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

constexpr std::size_t event_size = 600;
constexpr std::size_t seq_digits = 10;
constexpr std::size_t stamp_digits = 20;
constexpr std::size_t pour_batch = 64;                   // events per source write
constexpr std::size_t sink_queue_limit = 1024;           // events; as omnitak's link queue capacity
constexpr std::uint64_t deliveries_per_run = 2'000'000;  // rate 0: events = this / sinks
constexpr std::uint64_t paced_seconds = 2;               // rate > 0: events = rate x this
constexpr auto connect_wait = 30s;
constexpr auto delivery_wait = 30s;

std::uint64_t now_ns()
{
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
            .count());
}

void raise_fd_limit()
{
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout)
{
    const auto deadline = steady::now() + timeout;
    while (!done()) {
        if (steady::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// The event: fixed size, uid "r<seq>-<stamp>" at fixed offsets.
// ---------------------------------------------------------------------------------------------
struct event_layout {
    std::string bytes;
    std::size_t seq_at = 0;
    std::size_t stamp_at = 0;
};

event_layout make_layout()
{
    const std::string uid =
        "r" + std::string(seq_digits, '0') + "-" + std::string(stamp_digits, '0');
    std::string head = "<event version=\"2.0\" uid=\"" + uid +
                       "\" type=\"a-f-G-U-C\" how=\"m-g\" time=\"2026-01-01T00:00:00Z\" "
                       "start=\"2026-01-01T00:00:00Z\" stale=\"2030-01-01T00:00:00Z\">"
                       "<point lat=\"1.5\" lon=\"2.5\" hae=\"0\" ce=\"9\" le=\"9\"/><detail>";
    const std::string tail = "</detail></event>";
    const std::size_t fixed = head.size() + tail.size() + std::strlen("<remarks></remarks>");
    head += "<remarks>" + std::string(event_size - fixed, 'x') + "</remarks>";
    event_layout e;
    e.bytes = head + tail;
    const auto at = e.bytes.find(uid);
    e.seq_at = at + 1;
    e.stamp_at = at + 1 + seq_digits + 1;
    if (e.bytes.size() != event_size) throw std::logic_error("bench event has the wrong size");
    return e;
}

const event_layout& layout()
{
    static const event_layout e = make_layout();
    return e;
}

void put_digits(char* out, std::uint64_t value, std::size_t width)
{
    for (std::size_t i = width; i-- > 0;) {
        out[i] = static_cast<char>('0' + value % 10);
        value /= 10;
    }
}

bool get_digits(const char* in, std::size_t width, std::uint64_t& value)
{
    value = 0;
    for (std::size_t i = 0; i < width; ++i) {
        if (in[i] < '0' || in[i] > '9') return false;
        value = value * 10 + static_cast<std::uint64_t>(in[i] - '0');
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Counters shared with the child: 1 us buckets below 10 ms, 100 us buckets up to 10 s.
// ---------------------------------------------------------------------------------------------
constexpr std::size_t fine_buckets = 10'000;
constexpr std::size_t latency_buckets = fine_buckets + 100'000;

std::size_t latency_bucket(std::uint64_t us)
{
    if (us < fine_buckets) return static_cast<std::size_t>(us);
    return static_cast<std::size_t>(
        std::min<std::uint64_t>(fine_buckets + (us - fine_buckets) / 100, latency_buckets - 1));
}

double bucket_us(std::size_t b)
{
    if (b < fine_buckets) return static_cast<double>(b) + 0.5;
    return static_cast<double>(fine_buckets) + static_cast<double>(b - fine_buckets) * 100.0 + 50.0;
}

struct shared_state {
    static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
    // Set by this process before it connects a source.
    std::atomic<std::uint64_t> source_events{0};
    std::atomic<std::uint64_t> source_rate{0};
    // Written by the child.
    std::atomic<std::uint64_t> sinks_open{0};
    std::atomic<std::uint64_t> sink_bytes{0};  // released after the histogram is updated
    std::atomic<std::uint64_t> bad_stamps{0};
    std::atomic<std::uint64_t> latency[latency_buckets];
};

struct latency_snapshot {
    std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(latency_buckets);
};

latency_snapshot snapshot(const shared_state& s)
{
    latency_snapshot l;
    for (std::size_t i = 0; i < latency_buckets; ++i)
        l.counts[i] = s.latency[i].load(std::memory_order_relaxed);
    return l;
}

struct percentiles {
    std::uint64_t samples = 0;
    double p50 = 0;
    double p99 = 0;
    double max = 0;
};

percentiles diff_percentiles(const latency_snapshot& before, const latency_snapshot& after)
{
    std::vector<std::uint64_t> d(latency_buckets);
    percentiles p;
    for (std::size_t i = 0; i < latency_buckets; ++i) {
        d[i] = after.counts[i] - before.counts[i];
        p.samples += d[i];
        if (d[i] != 0) p.max = bucket_us(i);
    }
    if (p.samples == 0) return p;
    auto at = [&](double q) {
        const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(p.samples - 1));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < latency_buckets; ++i) {
            seen += d[i];
            if (seen > rank) return bucket_us(i);
        }
        return p.max;
    };
    p.p50 = at(0.50);
    p.p99 = at(0.99);
    return p;
}

double quantile(std::vector<double> v, double q)
{
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

// ---------------------------------------------------------------------------------------------
// The child: a source that pours events and sinks that read, count and discard.
// ---------------------------------------------------------------------------------------------
class traffic_peer {
public:
    traffic_peer(asio::io_context& io, shared_state& shared)
        : io_(io),
          shared_(shared),
          source_acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}),
          sink_acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}),
          buffer_(256 * 1024)
    {
        asio::co_spawn(io_, accept_sources(), asio::detached);
        asio::co_spawn(io_, accept_sinks(), asio::detached);
    }

    std::uint16_t source_port() const { return source_acceptor_.local_endpoint().port(); }
    std::uint16_t sink_port() const { return sink_acceptor_.local_endpoint().port(); }

private:
    asio::awaitable<void> accept_sources()
    {
        for (;;) {
            auto socket = co_await source_acceptor_.async_accept(asio::use_awaitable);
            // Paced writes are small: without this, Nagle holds them for the relay's ACK.
            socket.set_option(tcp::no_delay(true));
            asio::co_spawn(io_, pour(std::move(socket)), asio::detached);
        }
    }

    asio::awaitable<void> accept_sinks()
    {
        for (;;) {
            auto socket = co_await sink_acceptor_.async_accept(asio::use_awaitable);
            asio::co_spawn(io_, drain(std::move(socket)), asio::detached);
        }
    }

    // Writes the configured count of events, stamping each write's events just before it is
    // issued, then keeps the connection open until the relay closes it.
    asio::awaitable<void> pour(tcp::socket socket)
    {
        const std::uint64_t count = shared_.source_events.load();
        const std::uint64_t rate = shared_.source_rate.load();
        const auto& ev = layout();
        std::string batch;
        for (std::size_t i = 0; i < pour_batch; ++i)
            batch += ev.bytes;
        asio::steady_timer timer(io_);
        std::error_code ec;
        const auto start = steady::now();
        for (std::uint64_t sent = 0; sent < count;) {
            std::uint64_t k = std::min<std::uint64_t>(pour_batch, count - sent);
            if (rate != 0) {
                const double elapsed = std::chrono::duration<double>(steady::now() - start).count();
                const auto due = static_cast<std::uint64_t>(elapsed * static_cast<double>(rate));
                if (due <= sent) {
                    timer.expires_at(
                        start +
                        std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(
                            static_cast<double>(sent + 1) / static_cast<double>(rate))));
                    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                    continue;
                }
                k = std::min(k, due - sent);
            }
            const std::uint64_t stamp = now_ns();
            for (std::uint64_t i = 0; i < k; ++i) {
                char* e = batch.data() + i * event_size;
                put_digits(e + ev.seq_at, next_seq_++, seq_digits);
                put_digits(e + ev.stamp_at, stamp, stamp_digits);
            }
            co_await asio::async_write(socket, asio::buffer(batch.data(), k * event_size),
                                       asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return;
            sent += k;
        }
        char sink[512];
        while (!ec) {
            co_await socket.async_read_some(asio::buffer(sink),
                                            asio::redirect_error(asio::use_awaitable, ec));
        }
    }

    // Reads and discards. The reads go into one buffer shared by every sink: each read is
    // done synchronously once the socket is readable, on the child's only thread, and scanned
    // before the next one.
    asio::awaitable<void> drain(tcp::socket socket)
    {
        shared_.sinks_open.fetch_add(1);
        std::uint64_t position = 0;
        std::array<char, stamp_digits> stamp{};
        std::error_code ec;
        socket.non_blocking(true, ec);
        bool open = !ec;
        bool drained = true;
        while (open) {
            if (drained) {
                co_await socket.async_wait(tcp::socket::wait_read,
                                           asio::redirect_error(asio::use_awaitable, ec));
                if (ec) break;
            } else {
                // Asio's epoll reactor is edge-triggered: a socket left with unread bytes
                // would not be reported again, so it is read again after the others had a turn.
                co_await asio::post(io_, asio::use_awaitable);
            }
            // A few reads per turn, so one busy sink does not starve the others.
            drained = false;
            for (int i = 0; i < 4 && open && !drained; ++i) {
                const std::size_t n = socket.read_some(asio::buffer(buffer_), ec);
                if (ec == asio::error::would_block || ec == asio::error::try_again) {
                    drained = true;
                } else if (ec) {
                    open = false;
                } else {
                    scan(buffer_.data(), n, position, stamp);
                    position += n;
                    shared_.sink_bytes.fetch_add(n, std::memory_order_release);
                }
            }
        }
        shared_.sinks_open.fetch_sub(1);
    }

    // Copies the stamp digits of every event overlapping [position, position + n) (a stamp
    // may span two reads) and records the latency of each one completed.
    void scan(const char* data, std::size_t n, std::uint64_t position,
              std::array<char, stamp_digits>& stamp)
    {
        const std::uint64_t begin = position;
        const std::uint64_t end = position + n;
        const std::uint64_t now = now_ns();
        for (std::uint64_t e = begin / event_size;; ++e) {
            const std::uint64_t s0 = e * event_size + layout().stamp_at;
            if (s0 >= end) break;
            const std::uint64_t s1 = s0 + stamp_digits;
            if (s1 <= begin) continue;
            const std::uint64_t a = std::max(s0, begin);
            const std::uint64_t b = std::min(s1, end);
            std::memcpy(stamp.data() + (a - s0), data + (a - begin), b - a);
            if (b != s1) break;
            std::uint64_t sent = 0;
            if (!get_digits(stamp.data(), stamp_digits, sent)) {
                shared_.bad_stamps.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            const std::uint64_t us = now > sent ? (now - sent) / 1000 : 0;
            shared_.latency[latency_bucket(us)].fetch_add(1, std::memory_order_relaxed);
        }
    }

    asio::io_context& io_;
    shared_state& shared_;
    tcp::acceptor source_acceptor_;
    tcp::acceptor sink_acceptor_;
    std::vector<char> buffer_;
    std::uint64_t next_seq_ = 0;
};

// The child process; it lives until this process closes the life pipe.
class traffic_child {
public:
    traffic_child()
    {
        void* memory = mmap(nullptr, sizeof(shared_state), PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) throw std::runtime_error("mmap");
        shared_ = new (memory) shared_state();
        int ports_pipe[2], life_pipe[2];
        if (pipe(ports_pipe) != 0 || pipe(life_pipe) != 0) throw std::runtime_error("pipe");
        layout();  // built before the fork, once
        pid_ = fork();
        if (pid_ < 0) throw std::runtime_error("fork");
        if (pid_ == 0) {
            close(ports_pipe[0]);
            close(life_pipe[1]);
            child_main(ports_pipe[1], life_pipe[0]);
        }
        close(ports_pipe[1]);
        close(life_pipe[0]);
        life_ = life_pipe[1];
        std::uint16_t ports[2] = {0, 0};
        // The child's end closes if it fails; the poll bounds the wait if it hangs instead.
        pollfd ready{ports_pipe[0], POLLIN, 0};
        const bool ok = poll(&ready, 1, 10'000) == 1 &&
                        read(ports_pipe[0], ports, sizeof ports) == sizeof ports;
        close(ports_pipe[0]);
        if (!ok) {
            stop();
            throw std::runtime_error("traffic child failed to start");
        }
        source_port_ = ports[0];
        sink_port_ = ports[1];
    }

    ~traffic_child()
    {
        stop();
        shared_->~shared_state();
        munmap(shared_, sizeof(shared_state));
    }

    traffic_child(const traffic_child&) = delete;
    traffic_child& operator=(const traffic_child&) = delete;

    shared_state& shared() { return *shared_; }
    std::uint16_t source_port() const { return source_port_; }
    std::uint16_t sink_port() const { return sink_port_; }

    // CPU seconds the child has used (user + system).
    double cpu_seconds() const
    {
        std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto paren = text.rfind(')');
        if (paren == std::string::npos) return 0;
        std::istringstream fields(text.substr(paren + 2));
        std::string field;
        unsigned long long utime = 0, stime = 0;
        // After the command: state (3) ... utime (14), stime (15).
        for (int i = 3; i <= 15 && fields >> field; ++i) {
            if (i == 14) utime = std::stoull(field);
            if (i == 15) stime = std::stoull(field);
        }
        return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }

private:
    [[noreturn]] void child_main(int ports_fd, int life_fd)
    {
        try {
            raise_fd_limit();
            asio::io_context io(1);
            traffic_peer peer(io, *shared_);
            const std::uint16_t ports[2] = {peer.source_port(), peer.sink_port()};
            if (write(ports_fd, ports, sizeof ports) != sizeof ports) _exit(1);
            close(ports_fd);
            asio::posix::stream_descriptor life(io, life_fd);
            char c;
            life.async_read_some(asio::buffer(&c, 1), [&](std::error_code, std::size_t) {
                io.stop();  // the parent closed the pipe (or died)
            });
            io.run();
        } catch (...) {
            _exit(1);
        }
        _exit(0);
    }

    void stop()
    {
        if (pid_ <= 0) return;
        if (life_ >= 0) close(life_);
        life_ = -1;
        int status = 0;
        const auto deadline = steady::now() + 5s;
        while (waitpid(pid_, &status, WNOHANG) == 0) {
            if (steady::now() > deadline) {
                kill(pid_, SIGKILL);
                waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(1ms);
        }
        pid_ = -1;
    }

    shared_state* shared_ = nullptr;
    pid_t pid_ = -1;
    int life_ = -1;
    std::uint16_t source_port_ = 0;
    std::uint16_t sink_port_ = 0;
};

double own_cpu_seconds()
{
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto s = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return s(u.ru_utime) + s(u.ru_stime);
}

// ---------------------------------------------------------------------------------------------
// One measured run, shared by both relays.
// ---------------------------------------------------------------------------------------------
std::uint64_t events_for(std::int64_t sinks, std::int64_t rate)
{
    if (rate > 0) return static_cast<std::uint64_t>(rate) * paced_seconds;
    return deliveries_per_run / static_cast<std::uint64_t>(sinks);
}

struct run_result {
    double seconds = 0;
    std::uint64_t deliveries = 0;
    percentiles latency;
    double relay_cpu = 0;
    double sink_cpu = 0;
};

class measurement {
public:
    explicit measurement(traffic_child& child)
        : child_(child),
          bytes_(child.shared().sink_bytes.load(std::memory_order_acquire)),
          latency_(snapshot(child.shared())),
          own_cpu_(own_cpu_seconds()),
          child_cpu_(child.cpu_seconds()),
          start_(steady::now())
    {
    }

    std::uint64_t bytes() const
    {
        return child_.shared().sink_bytes.load(std::memory_order_acquire) - bytes_;
    }

    run_result finish(std::uint64_t deliveries) const
    {
        run_result r;
        r.seconds = std::chrono::duration<double>(steady::now() - start_).count();
        r.deliveries = deliveries;
        r.latency = diff_percentiles(latency_, snapshot(child_.shared()));
        r.relay_cpu = (own_cpu_seconds() - own_cpu_) / r.seconds;
        r.sink_cpu = (child_.cpu_seconds() - child_cpu_) / r.seconds;
        return r;
    }

private:
    traffic_child& child_;
    std::uint64_t bytes_;
    latency_snapshot latency_;
    double own_cpu_;
    double child_cpu_;
    steady::time_point start_;
};

// Per-repetition results by (benchmark, sinks, rate), for ratio_vs_bare and the final table.
struct result_key {
    std::string bench;
    std::int64_t sinks;
    std::int64_t rate;
    auto operator<=>(const result_key&) const = default;
};
struct rep_figures {
    double deliveries_per_s = 0;
    double cpu_ns_per_delivery = 0;
    double p50_us = 0;
    double p99_us = 0;
};
std::map<result_key, std::vector<rep_figures>>& results()
{
    static std::map<result_key, std::vector<rep_figures>> r;
    return r;
}

double median_rate(const result_key& key)
{
    const auto it = results().find(key);
    if (it == results().end()) return 0;
    std::vector<double> v;
    for (const auto& f : it->second)
        v.push_back(f.deliveries_per_s);
    return quantile(v, 0.5);
}

void report(benchmark::State& state, const std::string& bench, const run_result& r,
            const shared_state& shared)
{
    state.SetIterationTime(r.seconds);
    const double rate = static_cast<double>(r.deliveries) / r.seconds;
    state.counters["deliveries_per_s"] = rate;
    state.counters["p50_us"] = r.latency.p50;
    state.counters["p99_us"] = r.latency.p99;
    state.counters["max_us"] = r.latency.max;
    state.counters["relay_cpu"] = r.relay_cpu;
    state.counters["sink_cpu"] = r.sink_cpu;
    const double cpu_ns = r.relay_cpu * r.seconds * 1e9 / static_cast<double>(r.deliveries);
    state.counters["cpu_ns_per_delivery"] = cpu_ns;
    state.counters["bad_stamps"] = static_cast<double>(shared.bad_stamps.load());
    results()[{bench, state.range(0), state.range(1)}].push_back(
        {rate, cpu_ns, r.latency.p50, r.latency.p99});
}

// ---------------------------------------------------------------------------------------------
// (a) The bare Asio relay.
// ---------------------------------------------------------------------------------------------
class bare_relay {
public:
    // `threads` io_contexts, one thread each; sinks are dealt round-robin over them and the
    // source is read on the first.
    bare_relay(std::size_t sinks, std::size_t threads, std::uint16_t sink_port,
               std::uint64_t events)
        : events_(events)
    {
        for (std::size_t t = 0; t < threads; ++t)
            shards_.push_back(std::make_unique<shard>());
        source_.emplace(shards_[0]->io);
        resume_.emplace(shards_[0]->io);
        const tcp::endpoint to(asio::ip::make_address("127.0.0.1"), sink_port);
        for (std::size_t i = 0; i < sinks; ++i) {
            auto& owner = *shards_[i % threads];
            owner.sinks.push_back(std::make_unique<sink>(owner.io));
            owner.sinks.back()->socket.connect(to);
            owner.sinks.back()->socket.set_option(tcp::no_delay(true));
        }
    }

    ~bare_relay()
    {
        closing_.store(true);
        for (auto& s : shards_)
            s->io.stop();
        for (auto& s : shards_) {
            if (s->thread.joinable()) s->thread.join();
        }
        // The first shard's objects before its io_context; blocks released from here on
        // (queued handlers, sinks) no longer wake the reader.
        resume_.reset();
        source_.reset();
        shards_.clear();
    }

    bare_relay(const bare_relay&) = delete;
    bare_relay& operator=(const bare_relay&) = delete;

    void start(std::uint16_t source_port)
    {
        source_->connect({asio::ip::make_address("127.0.0.1"), source_port});
        asio::co_spawn(shards_[0]->io, read_source(), [this](std::exception_ptr e) {
            if (e) failed_.store(true);
        });
        for (auto& s : shards_) {
            s->thread = std::thread([&io = s->io] {
                // Kept running after the source is done: the other shards still post to it.
                auto work = asio::make_work_guard(io);
                io.run();
            });
        }
    }

    bool failed() const { return failed_.load(); }

private:
    using block_ptr = std::shared_ptr<const std::string>;
    using event_spans = std::vector<std::pair<std::size_t, std::size_t>>;

    struct sink {
        explicit sink(asio::io_context& io) : socket(io) {}
        tcp::socket socket;
        std::vector<asio::const_buffer> pending, writing;
        std::vector<block_ptr> pending_blocks, writing_blocks;
        bool busy = false;
    };

    struct shard {
        asio::io_context io{1};
        std::vector<std::unique_ptr<sink>> sinks;
        std::thread thread;
    };

    asio::awaitable<void> read_source()
    {
        std::vector<char> buffer(64 * 1024);
        std::string carry;
        constexpr std::string_view end_tag = "</event>";
        std::uint64_t relayed = 0;
        while (relayed < events_) {
            const std::size_t n =
                co_await source_->async_read_some(asio::buffer(buffer), asio::use_awaitable);
            carry.append(buffer.data(), n);
            auto events = std::make_shared<event_spans>();
            std::size_t from = 0;
            for (;;) {
                const auto at = carry.find(end_tag, from);
                if (at == std::string::npos) break;
                events->emplace_back(from, at + end_tag.size() - from);
                from = at + end_tag.size();
            }
            if (events->empty()) continue;
            relayed += events->size();
            queued_events_.fetch_add(events->size());
            const block_ptr block(new std::string(carry, 0, from),
                                  [this, count = events->size()](const std::string* b) {
                                      delete b;
                                      released(count);
                                  });
            carry.erase(0, from);
            for (std::size_t t = 0; t < shards_.size(); ++t) {
                shard& s = *shards_[t];
                if (t == 0) {
                    deliver(s, block, *events);
                } else {
                    asio::post(s.io, [this, &s, block, events] { deliver(s, block, *events); });
                }
            }
            std::error_code ec;
            while (queued_events_.load() > sink_queue_limit) {
                resume_->expires_at(steady::time_point::max());
                co_await resume_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
            }
        }
    }

    // A block is released once every sink has written it; the reader, waiting while the
    // slowest sink lags by more than sink_queue_limit events, is woken on the first shard
    // (after its check-and-wait, which runs there too, so no wake-up is lost).
    void released(std::size_t count)
    {
        if (closing_.load()) return;
        const std::uint64_t before = queued_events_.fetch_sub(count);
        if (before > sink_queue_limit && before - count <= sink_queue_limit) {
            asio::post(shards_[0]->io, [this] { resume_->cancel(); });
        }
    }

    void deliver(shard& s, const block_ptr& block, const event_spans& events)
    {
        for (auto& k : s.sinks) {
            for (const auto& [offset, size] : events)
                k->pending.emplace_back(block->data() + offset, size);
            k->pending_blocks.push_back(block);
            if (!k->busy) start_write(*k);
        }
    }

    void start_write(sink& k)
    {
        k.writing.swap(k.pending);
        k.writing_blocks.swap(k.pending_blocks);
        k.busy = true;
        asio::async_write(k.socket, std::span<const asio::const_buffer>(k.writing),
                          [this, &k](std::error_code ec, std::size_t) { written(k, ec); });
    }

    void written(sink& k, std::error_code ec)
    {
        k.busy = false;
        k.writing.clear();
        k.writing_blocks.clear();
        if (ec) {
            failed_.store(true);
            return;
        }
        if (!k.pending.empty()) start_write(k);
    }

    std::uint64_t events_;
    std::vector<std::unique_ptr<shard>> shards_;
    std::optional<tcp::socket> source_;
    std::optional<asio::steady_timer> resume_;
    // Events read from the source whose block some sink has not written yet.
    std::atomic<std::uint64_t> queued_events_{0};
    std::atomic<bool> failed_{false};
    std::atomic<bool> closing_{false};
};

void BM_Baseline_BareAsioRelay(benchmark::State& state)
{
    raise_fd_limit();
    const auto sinks = static_cast<std::size_t>(state.range(0));
    const auto threads = static_cast<std::size_t>(state.range(2));
    const std::uint64_t events = events_for(state.range(0), state.range(1));
    const std::uint64_t expected_bytes = events * sinks * event_size;
    traffic_child child;
    auto& shared = child.shared();
    shared.source_events.store(events);
    shared.source_rate.store(static_cast<std::uint64_t>(state.range(1)));

    for (auto _ : state) {
        bare_relay relay(sinks, threads, child.sink_port(), events);
        if (!wait_until([&] { return shared.sinks_open.load() == sinks; }, connect_wait)) {
            state.SkipWithError("the child did not accept every sink");
            break;
        }
        measurement m(child);
        relay.start(child.source_port());
        const bool done = wait_until([&] { return relay.failed() || m.bytes() >= expected_bytes; },
                                     delivery_wait);
        const auto r = m.finish(events * sinks);
        if (!done || relay.failed()) {
            state.SkipWithError(relay.failed() ? "bare relay failed" : "deliveries timed out");
            break;
        }
        report(state, "bare" + std::to_string(threads), r, shared);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) omnitak::system.
// ---------------------------------------------------------------------------------------------
link_params endpoint(link_id id, std::uint16_t port)
{
    link_params p;
    p.id = id;
    p.name = "relay" + std::to_string(id);
    p.host = "127.0.0.1";
    p.port = port;
    return p;
}

void BM_OmnitakRelay(benchmark::State& state)
{
    raise_fd_limit();
    const auto sinks = static_cast<std::size_t>(state.range(0));
    const std::uint64_t events = events_for(state.range(0), state.range(1));
    const std::uint64_t expected = events * sinks;
    traffic_child child;
    auto& shared = child.shared();
    shared.source_events.store(events);
    shared.source_rate.store(static_cast<std::uint64_t>(state.range(1)));

    for (auto _ : state) {
        // Only the source link calls on_message, always on its strand: no lock needed.
        std::vector<double> app_latency_us;
        app_latency_us.reserve(events);
        std::atomic<std::uint64_t> errors_logged{0};

        system_params p;
        p.threads = static_cast<std::size_t>(state.range(2));
        p.pool.max_links = sinks + 1;
        p.pool.link_defaults.health.enabled = false;  // the child never answers pings
        p.pool.link_defaults.first_byte_timeout = 0ms;
        p.pool.link_defaults.connect_timeout = 30s;
        p.distributor.strategy = backpressure::block;
        p.distributor.intake_capacity = events + 1;
        p.receive_capacity = 0;
        p.on_message = [&](const message_ptr& m) {
            const auto now = now_ns();
            const std::string_view uid = m->summary().uid;
            std::uint64_t sent = 0;
            if (uid.size() == 2 + seq_digits + stamp_digits &&
                get_digits(uid.data() + 2 + seq_digits, stamp_digits, sent)) {
                app_latency_us.push_back(static_cast<double>(now - sent) / 1000.0);
            }
        };
        p.log = [&](int, std::string_view line) {
            if (errors_logged.fetch_add(1) < 5) {
                std::fprintf(stderr, "relay_bench: %.*s\n", static_cast<int>(line.size()),
                             line.data());
            }
        };
        p.log_threshold = log_level::error;

        omnitak::system gateway(std::move(p));
        gateway.start();
        std::error_code added;
        for (std::size_t i = 0; i < sinks && !added; ++i) {
            added = gateway.add_link({endpoint(i + 1, child.sink_port()), filter::always()});
        }
        if (added) {
            state.SkipWithError(("add_link: " + added.message()).c_str());
            break;
        }
        if (!wait_until(
                [&] {
                    return gateway.pool().stats().links_connected == sinks &&
                           shared.sinks_open.load() == sinks;
                },
                connect_wait)) {
            state.SkipWithError("sink links did not all connect");
            break;
        }

        measurement m(child);
        if (auto ec =
                gateway.add_link({endpoint(sinks + 1, child.source_port()), filter::never()})) {
            state.SkipWithError(("add_link: " + ec.message()).c_str());
            break;
        }
        // Drops would make the expected total unreachable; they are read every 100 ms.
        std::uint64_t dropped = 0;
        auto last_check = steady::now();
        const bool done = wait_until(
            [&] {
                if (m.bytes() >= (expected - dropped) * event_size) return true;
                if (steady::now() - last_check > 100ms) {
                    last_check = steady::now();
                    const auto s = gateway.stats();
                    dropped = std::min(expected, s.distributor.dropped +
                                                     s.distributor.intake_dropped + s.pool.drops);
                }
                return false;
            },
            delivery_wait);
        const auto r = m.finish(expected - dropped);
        const auto s = gateway.stats();
        gateway.shutdown(5s);
        if (!done) {
            state.SkipWithError("deliveries timed out");
            break;
        }
        report(state, "omnitak", r, shared);
        state.counters["app_p50_us"] = quantile(app_latency_us, 0.50);
        state.counters["app_p99_us"] = quantile(app_latency_us, 0.99);
        state.counters["dropped"] = static_cast<double>(dropped);
        state.counters["duplicates"] = static_cast<double>(s.inbound_duplicates);
        for (const char* bare : {"bare1", "bare2"}) {
            const double b = median_rate({bare, state.range(0), state.range(1)});
            if (b > 0) {
                state.counters[std::string("ratio_vs_") + bare] =
                    static_cast<double>(r.deliveries) / r.seconds / b;
            }
        }
    }
}

// Each group runs back to back so that the sides of a ratio see about the same machine load.
#define RELAY_BENCH(fn, sinks, rate, threads)    \
    BENCHMARK(fn)                                \
        ->Args({sinks, rate, threads})           \
        ->ArgNames({"sinks", "rate", "threads"}) \
        ->UseManualTime()                        \
        ->Iterations(1)                          \
        ->Repetitions(3)                         \
        ->ReportAggregatesOnly(true)             \
        ->Unit(benchmark::kMillisecond)

RELAY_BENCH(BM_Baseline_BareAsioRelay, 100, 0, 1);
RELAY_BENCH(BM_Baseline_BareAsioRelay, 100, 0, 2);
RELAY_BENCH(BM_OmnitakRelay, 100, 0, 2);
RELAY_BENCH(BM_Baseline_BareAsioRelay, 1000, 0, 1);
RELAY_BENCH(BM_Baseline_BareAsioRelay, 1000, 0, 2);
RELAY_BENCH(BM_OmnitakRelay, 1000, 0, 2);
RELAY_BENCH(BM_Baseline_BareAsioRelay, 1000, 500, 1);
RELAY_BENCH(BM_Baseline_BareAsioRelay, 1000, 500, 2);
RELAY_BENCH(BM_OmnitakRelay, 1000, 500, 2);
RELAY_BENCH(BM_Baseline_BareAsioRelay, 100, 500, 1);
RELAY_BENCH(BM_OmnitakRelay, 100, 500, 2);

void print_summary()
{
    if (results().empty()) return;
    std::printf(
        "\nrelay_bench summary (medians of the repetitions)\n"
        "del/s: deliveries per second; ns/del: CPU time of the relay process per delivery;\n"
        "p50/p99: source write -> sink read, microseconds; ratios: omnitak / bare1, / bare2\n");
    std::printf("%5s %4s %-8s | %9s %7s %9s %9s | %13s %13s\n", "sinks", "rate", "relay", "del/s",
                "ns/del", "p50 us", "p99 us", "del/s ratios", "ns/del ratios");
    std::map<std::pair<std::int64_t, std::int64_t>, int> order;
    for (const auto& [key, reps] : results())
        order[{key.sinks, key.rate}] = 0;
    for (const auto& [args, unused] : order) {
        auto med = [&](const std::string& bench, double rep_figures::*field) {
            const auto it = results().find({bench, args.first, args.second});
            if (it == results().end()) return 0.0;
            std::vector<double> v;
            for (const auto& f : it->second)
                v.push_back(f.*field);
            return quantile(v, 0.5);
        };
        auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
        for (const std::string relay : {"bare1", "bare2", "omnitak"}) {
            if (!results().contains({relay, args.first, args.second})) continue;
            const double rate = med(relay, &rep_figures::deliveries_per_s);
            const double cpu = med(relay, &rep_figures::cpu_ns_per_delivery);
            std::printf("%5" PRId64 " %4" PRId64 " %-8s | %9.0f %7.0f %9.0f %9.0f |", args.first,
                        args.second, relay.c_str(), rate, cpu, med(relay, &rep_figures::p50_us),
                        med(relay, &rep_figures::p99_us));
            if (relay == "omnitak") {
                std::printf(" %6.3f %6.3f %6.2f %6.2f",
                            ratio(rate, med("bare1", &rep_figures::deliveries_per_s)),
                            ratio(rate, med("bare2", &rep_figures::deliveries_per_s)),
                            ratio(cpu, med("bare1", &rep_figures::cpu_ns_per_delivery)),
                            ratio(cpu, med("bare2", &rep_figures::cpu_ns_per_delivery)));
            }
            std::printf("\n");
        }
    }
    std::printf(
        "rate 0: as fast as the relay takes it (latency is then mostly queueing); rate R: R "
        "events/s offered.\n0.000 = no such baseline in this run.\n");
}

}  // namespace

int main(int argc, char** argv)
{
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    print_summary();
    benchmark::Shutdown();
    return 0;
}
