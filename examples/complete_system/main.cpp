// complete-system: a small TAK gateway built on omnitak::system, driven by realistic traffic.
//
// With no arguments it starts 4 mock TAK servers on loopback, opens 200 links to them (each
// with its own routing filter), and for 10 s plays a TAK team's traffic into the servers:
// every event enters the gateway through one link, a share through two servers at once (so
// deduplication has work), and a share is submitted by the application itself. The gateway
// deduplicates, hands each unique event to the application and routes it to the links whose
// filters want it. A progress line is printed every second and a report at the end;
// /metrics is served while it runs.
//
//   complete-system [--links N] [--servers N] [--duration S] [--rate R] [--metrics ADDR]
//                   [--replay PATH] [--server tcp://HOST:PORT ...]
//
// Ctrl-C (SIGINT) or SIGTERM during the run stops the traffic, prints the report and shuts
// the gateway down within its timeout (the report's last line says how). A second request
// exits at once, leaving out what was not printed yet: the other signal at any time, or the
// same one a second or more after the first (the same signal twice within a second is one
// request delivered twice).
//
// Exit codes: 0 success; 1 runtime failure (no server reachable, --replay unreadable or too
// large for memory, threads or memory to run lacking, report not written); 2 bad options (including
// a --metrics address that cannot be served); 128 + the first signal's number when interrupted (130
// for SIGINT, 143 for SIGTERM). When the default metrics address is taken the run goes on without
// /metrics and says so.
#include <sys/resource.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/ip/address_v6.hpp>
#include <asio/signal_set.hpp>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "omnitak/pool/system.hpp"
#include "omnitak/pool/testing/mock_tak_server.hpp"
#include "traffic.hpp"

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
namespace ex = omnitak::example;

struct options {
    std::size_t links = 200;
    std::size_t servers = 4;
    double duration_s = 10.0;
    double rate = 1000.0;
    double dup_share = 0.1;
    double submit_share = 0.1;
    std::size_t threads = 0;
    std::string metrics = "127.0.0.1:9090";
    bool metrics_explicit = false;  // --metrics given: failing to serve is then an error
    std::string replay;
    std::vector<std::string> server_urls;
};

struct endpoint {
    std::string host;
    std::uint16_t port = 0;
    std::string url() const
    {
        // An IPv6 literal goes back in brackets, as it was given.
        const bool v6 = host.find(':') != std::string::npos;
        return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
    }
};

// "tcp://HOST:PORT" (HOST may be a bracketed IPv6 literal). nullopt when malformed.
std::optional<endpoint> parse_url(const std::string& url)
{
    constexpr std::string_view scheme = "tcp://";
    if (url.rfind(scheme, 0) != 0) return std::nullopt;
    const std::string rest = url.substr(scheme.size());
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) return std::nullopt;

    std::string host = rest.substr(0, colon);
    if (host.front() == '[') {
        if (host.size() < 3 || host.back() != ']') return std::nullopt;
        host = host.substr(1, host.size() - 2);
        std::error_code ec;
        (void)asio::ip::make_address_v6(host, ec);
        if (ec) return std::nullopt;
    } else if (host.find_first_of("[]:") != std::string::npos) {
        return std::nullopt;  // an IPv6 literal must be bracketed; brackets only around one
    }
    const std::string port_text = rest.substr(colon + 1);
    if (port_text.find_first_not_of("0123456789") != std::string::npos || port_text.size() > 5) {
        return std::nullopt;
    }
    const unsigned long port = std::stoul(port_text);
    if (port == 0 || port > 65535) return std::nullopt;
    return endpoint{host, static_cast<std::uint16_t>(port)};
}

// A spread of realistic subscriptions: some links want everything, most want a slice.
omnitak::filter filter_for(std::size_t i, const ex::traffic_params& area)
{
    using omnitak::filter;
    switch (i % 10) {
        case 0:
            return filter::always();
        case 1:
        case 2:
            return filter::by_type({"a-f-A"});  // air picture
        case 3:
        case 4:
            return filter::by_type({"b-t-f", "b-a-o"});  // chat and alerts
        case 5:
        case 6:
            return filter::within_radius(area.center_lat, area.center_lon, 5.0);
        case 7:
        case 8: {
            static const std::vector<std::string> teams{"Cyan",    "Yellow", "Green",
                                                        "Magenta", "Orange", "Dark Blue"};
            return filter::by_group({teams[i % teams.size()]}) ||
                   filter::by_type({"b-a-o"});  // a team always hears emergencies
        }
        default:
            return filter::by_type({"b-m-p"});  // map markers
    }
}

std::string mib(std::optional<std::size_t> bytes)
{
    if (!bytes) return "n/a";
    char text[32];
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(*bytes) / (1024.0 * 1024.0));
    return text;
}

std::string ms(std::chrono::nanoseconds d)
{
    char text[32];
    std::snprintf(text, sizeof text, "%.3f ms", static_cast<double>(d.count()) / 1e6);
    return text;
}

// When each injected event was sent, keyed by (uid, time), so the application callback can
// measure server-send -> application latency for the first copy that arrives.
class inflight_table {
public:
    static std::string key(std::string_view uid, omnitak::cot_time t)
    {
        std::string k(uid);
        k += '|';
        k += std::to_string(t.time_since_epoch().count());
        return k;
    }

    void sent(std::string k, steady::time_point at)
    {
        std::lock_guard lock(mutex_);
        table_.insert_or_assign(std::move(k), at);
    }

    std::optional<steady::time_point> arrived(const std::string& k)
    {
        std::lock_guard lock(mutex_);
        const auto it = table_.find(k);
        if (it == table_.end()) return std::nullopt;
        const auto at = it->second;
        table_.erase(it);
        return at;
    }

    // Events that never arrive (dropped, or duplicates of a replayed event) must not pile up.
    void forget_older_than(steady::time_point limit)
    {
        std::lock_guard lock(mutex_);
        std::erase_if(table_, [&](const auto& entry) { return entry.second < limit; });
    }

private:
    std::mutex mutex_;
    std::unordered_map<std::string, steady::time_point> table_;
};

// A full link queue refuses the distributor's push: the distributor counts that drop and the
// link counts the refusal. Refusals beyond the distributor's drops came from elsewhere.
std::uint64_t link_only_rejections(const omnitak::system_stats& s)
{
    return s.pool.queue_rejected > s.distributor.dropped
               ? s.pool.queue_rejected - s.distributor.dropped
               : 0;
}

// Messages lost anywhere on the way out, each counted once.
std::uint64_t total_drops(const omnitak::system_stats& s)
{
    return s.distributor.dropped + s.distributor.intake_dropped + s.pool.dropped_unsent +
           link_only_rejections(s);
}

struct replay_event {
    std::string bytes;
    std::string key;
};

// Watches for SIGINT and SIGTERM from construction to destruction. The signals are taken by
// an asio::signal_set, so the handler below runs as an ordinary completion on a thread of its
// own, not in signal context: it may print and exit. The run polls raised().
class interrupt_watch {
public:
    interrupt_watch() : signals_(io_, SIGINT, SIGTERM)
    {
        arm();
        thread_ = std::thread([this] { io_.run(); });
    }

    ~interrupt_watch()
    {
        io_.stop();
        thread_.join();
    }

    interrupt_watch(const interrupt_watch&) = delete;
    interrupt_watch& operator=(const interrupt_watch&) = delete;

    /// The first signal received, 0 when none.
    int signal() const noexcept { return signal_.load(std::memory_order_acquire); }
    bool raised() const noexcept { return signal() != 0; }

private:
    void arm()
    {
        signals_.async_wait([this](std::error_code ec, int number) {
            if (ec) return;
            int first = 0;
            if (!signal_.compare_exchange_strong(first, number)) {
                // A copy arriving at once is not the operator insisting: `timeout` and a
                // terminal both signal the process and its group, so one request can arrive
                // twice within microseconds.
                if (number == first && steady::now() - first_at_ < std::chrono::seconds(1)) {
                    arm();
                    return;
                }
                // The operator insists: no more waiting for the shutdown (or the report).
                if (number == first) {
                    std::fprintf(stderr, "complete-system: %s again: exiting now\n", name(number));
                } else {
                    std::fprintf(stderr, "complete-system: %s after %s: exiting now\n",
                                 name(number), name(first));
                }
                std::fflush(stdout);
                std::_Exit(128 + first);
            }
            first_at_ = steady::now();
            std::fprintf(stderr,
                         "complete-system: %s: stopping and shutting down (send it "
                         "again to exit at once)\n",
                         name(number));
            arm();
        });
    }

    static const char* name(int number) noexcept { return number == SIGINT ? "SIGINT" : "SIGTERM"; }

    asio::io_context io_;
    asio::signal_set signals_;
    std::atomic<int> signal_{0};
    steady::time_point first_at_{};  // only touched by the handler, on the watch's thread
    std::thread thread_;
};

// Sleeps up to `d`, waking early when a signal has been raised.
void nap(std::chrono::milliseconds d, const interrupt_watch& interrupts)
{
    const auto until = steady::now() + d;
    while (!interrupts.raised() && steady::now() < until) {
        std::this_thread::sleep_for(std::min<steady::duration>(until - steady::now(), 10ms));
    }
}

int run(const options& opt, const interrupt_watch& interrupts)
{
    // --- servers ------------------------------------------------------------------------
    std::vector<endpoint> endpoints;
    std::vector<std::unique_ptr<omnitak::testing::mock_tak_server>> mocks;
    for (const auto& url : opt.server_urls) {
        const auto e = parse_url(url);
        if (!e) {
            std::fprintf(stderr, "complete-system: bad --server '%s': expected tcp://HOST:PORT\n",
                         url.c_str());
            return 2;
        }
        endpoints.push_back(*e);
    }
    const bool use_mocks = endpoints.empty();
    // Links go to the servers in turn: a server no link reaches is left out (a mock one would
    // only swallow the traffic injected into it).
    const std::size_t asked_servers = use_mocks ? opt.servers : endpoints.size();
    const std::size_t server_count = std::min(asked_servers, opt.links);
    if (!use_mocks && server_count < asked_servers) {
        std::printf(
            "servers: only the first %zu of the %zu --server addresses get a link "
            "(--links %zu)\n",
            server_count, asked_servers, opt.links);
        endpoints.resize(server_count);
    }

    // Every link takes a descriptor, and with the mock servers in this process so does the
    // server's end of it. Raise the soft limit as far as the hard one allows, and say so at
    // once when the run cannot fit, rather than failing links one by one.
    (void)ex::resident_memory_bytes();  // opens its file while descriptors are free
    {
        rlimit limit{};
        if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
            if (limit.rlim_cur < limit.rlim_max) {
                limit.rlim_cur = limit.rlim_max;
                ::setrlimit(RLIMIT_NOFILE, &limit);
            }
            constexpr std::size_t spare = 64;  // epoll, eventfds, metrics, stdio, resolver
            // Each mock server holds its listener and its own event loop's descriptors.
            constexpr std::size_t per_mock = 4;
            const std::size_t needed =
                opt.links * (use_mocks ? 2 : 1) + (use_mocks ? server_count * per_mock : 0) + spare;
            if (limit.rlim_cur != RLIM_INFINITY && needed > limit.rlim_cur) {
                std::fprintf(stderr,
                             "complete-system: %zu links need about %zu file descriptors%s, "
                             "but this process may open %llu (ulimit -n); raise the limit or "
                             "use fewer links or servers\n",
                             opt.links, needed,
                             use_mocks ? " (both ends of each link are in this process)" : "",
                             static_cast<unsigned long long>(limit.rlim_cur));
                return 2;
            }
        }
    }

    // --- traffic source -----------------------------------------------------------------
    ex::traffic_params area;
    std::vector<replay_event> replay;
    if (!opt.replay.empty()) {
        std::error_code ec;
        auto set = ex::load_replay(opt.replay, ec, [&] { return interrupts.raised(); });
        if (interrupts.raised()) {
            // A large capture takes a while to load; the request to stop is honoured now.
            std::fprintf(stderr, "complete-system: interrupted while loading --replay\n");
            return 128 + interrupts.signal();
        }
        if (ec) {
            const std::string where = set.failed.empty() || set.failed == opt.replay
                                          ? std::string()
                                          : " at '" + set.failed.string() + "'";
            std::fprintf(stderr, "complete-system: cannot read --replay '%s'%s: %s\n",
                         opt.replay.c_str(), where.c_str(),
                         set.not_a_file
                             ? "not a regular file or a folder (devices and pipes are not read)"
                             : ec.message().c_str());
            return 1;
        }
        if (set.events.empty()) {
            std::fprintf(stderr,
                         "complete-system: --replay '%s' holds no usable CoT event (%" PRIu64
                         " rejected: malformed, oversized or out of range)\n",
                         opt.replay.c_str(), set.rejected);
            return 1;
        }
        for (auto& bytes : set.events) {
            omnitak::cot_summary s;
            omnitak::parse_cot(bytes, s);
            replay.push_back({std::move(bytes), inflight_table::key(s.uid, s.time)});
        }
        std::printf("replay: %zu events from %" PRIu64 " files (%" PRIu64 " rejected)",
                    replay.size(), set.files, set.rejected);
        if (set.skipped > 0) {
            std::printf("; %" PRIu64 " pipes, sockets or devices in the folder not read",
                        set.skipped);
        }
        if (set.links_not_followed > 0) {
            std::printf("; %" PRIu64 " links to folders not followed", set.links_not_followed);
        }
        std::printf("\n");
    }

    const auto rss_start = ex::resident_memory_bytes();
    if (use_mocks) {
        if (server_count < asked_servers) {
            std::printf("servers: starting %zu mock servers, not %zu: there are only %zu links\n",
                        server_count, asked_servers, opt.links);
        }
        for (std::size_t i = 0; i < server_count; ++i) {
            omnitak::testing::mock_tak_server_params mp;
            // The gateway routes between servers itself; a relaying mock would reflect every
            // delivery back to the gateway's other links on that server.
            mp.relay = false;
            mp.record = false;
            mocks.push_back(std::make_unique<omnitak::testing::mock_tak_server>(mp));
            endpoints.push_back({"127.0.0.1", mocks.back()->port()});
        }
    }

    // --- the gateway --------------------------------------------------------------------
    ex::latency_recorder latency;
    inflight_table inflight;
    std::atomic<std::uint64_t> app_messages{0};

    omnitak::system_params params;
    params.threads = opt.threads;
    params.pool.max_links = std::max(params.pool.max_links, opt.links);
    params.receive_capacity = 0;  // this application only uses the callback
    params.on_message = [&](const omnitak::message_ptr& m) {
        app_messages.fetch_add(1, std::memory_order_relaxed);
        if (auto sent =
                inflight.arrived(inflight_table::key(m->summary().uid, m->summary().time))) {
            latency.record(steady::now() - *sent);
        }
    };
    if (!opt.metrics.empty() && opt.metrics != "off") {
        params.metrics.serve = true;
        params.metrics.address = opt.metrics;
    }
    params.log = [](int level, std::string_view line) {
        std::fprintf(stderr, "[%s] %.*s\n", level >= omnitak::log_level::error ? "error" : "warn",
                     static_cast<int>(line.size()), line.data());
    };
    params.log_threshold = omnitak::log_level::error;

    std::unique_ptr<omnitak::system> gateway;
    try {
        gateway = std::make_unique<omnitak::system>(params);
    } catch (const std::runtime_error& e) {
        // Only the metrics exposer fails at run time here (address invalid or in use); its
        // message says which.
        if (opt.metrics_explicit) {
            std::fprintf(
                stderr,
                "complete-system: %s (--metrics takes a free HOST:PORT, a bare PORT, or 'off')\n",
                e.what());
            return 2;
        }
        std::fprintf(stderr,
                     "complete-system: %s; running without /metrics (choose an address "
                     "with --metrics HOST:PORT)\n",
                     e.what());
        params.metrics.serve = false;
        gateway = std::make_unique<omnitak::system>(params);
    }
    gateway->start();
    if (gateway->metrics().port() != 0) {
        // The first address of the list; a bare port listens on every interface.
        const std::string first = opt.metrics.substr(0, opt.metrics.find(','));
        const auto colon = first.rfind(':');
        std::string host = colon == std::string::npos ? std::string() : first.substr(0, colon);
        if (host.empty()) host = "0.0.0.0";
        std::printf("metrics: http://%s:%u/metrics\n", host.c_str(), gateway->metrics().port());
    }

    const auto rss_before_links = ex::resident_memory_bytes();
    const auto connect_start = steady::now();
    for (std::size_t i = 0; i < opt.links && !interrupts.raised(); ++i) {
        const auto& e = endpoints[i % endpoints.size()];
        omnitak::system_link l;
        l.endpoint.id = i + 1;
        l.endpoint.name = "link-" + std::to_string(i + 1);
        l.endpoint.host = e.host;
        l.endpoint.port = e.port;
        l.route = filter_for(i, area);
        if (auto ec = gateway->add_link(std::move(l))) {
            std::fprintf(stderr, "complete-system: cannot add link %zu: %s\n", i + 1,
                         ec.message().c_str());
            return 1;
        }
    }

    // Wait for the links to come up (a mock answers at once; a real server may take longer),
    // plus the time the pool's connect rate spreads the attempts over.
    const auto& pool_params = gateway->params().pool;
    const double paced_s =
        pool_params.connect_rate > 0
            ? std::max(0.0, (static_cast<double>(opt.links) - pool_params.connect_burst) /
                                pool_params.connect_rate)
            : 0.0;
    const auto connect_deadline =
        connect_start + (use_mocks ? 10s : 5s) +
        std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(paced_s));
    while (gateway->stats().pool.links_connected < opt.links && steady::now() < connect_deadline &&
           !interrupts.raised()) {
        std::this_thread::sleep_for(10ms);
    }
    const auto connected = gateway->stats().pool.links_connected;
    const auto connect_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - connect_start);
    std::printf("links: %zu/%zu connected to %zu %s in %lld ms\n", connected, opt.links,
                endpoints.size(), use_mocks ? "mock server(s)" : "server(s)",
                static_cast<long long>(connect_ms.count()));

    // One line per server no link could reach.
    std::size_t reachable = 0;
    for (std::size_t s = 0; s < endpoints.size(); ++s) {
        bool up = false;
        std::error_code last;
        for (std::size_t i = s; i < opt.links; i += endpoints.size()) {
            if (auto st = gateway->pool().stats_of(i + 1)) {
                up = up || st->state == omnitak::link_state::connected;
                if (st->last_error) last = st->last_error;
            }
        }
        if (up) {
            ++reachable;
        } else if (s < opt.links && !interrupts.raised()) {
            // (Interrupted, the links may not even have been added: no verdict on the server.)
            std::fprintf(stderr, "complete-system: server %s unreachable: %s\n",
                         endpoints[s].url().c_str(),
                         last ? last.message().c_str() : "no connection within the wait");
        }
    }
    // Interrupted while connecting: nothing was reachable *yet*; the report still follows.
    if (reachable == 0 && !interrupts.raised()) {
        gateway->shutdown(1s);
        return 1;
    }
    const auto rss_links = ex::resident_memory_bytes();

    // --- traffic ------------------------------------------------------------------------
    ex::traffic_generator generator(area);
    std::mt19937_64 random(7);
    std::uniform_real_distribution<double> unit_interval(0.0, 1.0);
    std::vector<std::vector<std::uint64_t>> sessions(mocks.size());
    auto refresh_sessions = [&] {
        std::size_t total = 0;
        for (std::size_t s = 0; s < mocks.size(); ++s) {
            sessions[s] = mocks[s]->sessions();
            total += sessions[s].size();
        }
        return total;
    };
    // A link counts as connected once its connect completes; the mock server registers the
    // session a moment later. Traffic injected before that would find no session to use.
    const auto sessions_deadline = steady::now() + 5s;
    while (use_mocks && refresh_sessions() < connected && steady::now() < sessions_deadline &&
           !interrupts.raised()) {
        std::this_thread::sleep_for(10ms);
    }

    std::uint64_t produced = 0, via_servers = 0, via_two = 0, via_submit = 0, submit_refused = 0;
    std::uint64_t not_injected = 0;  // a mock server had no live session to send it on
    std::size_t replay_next = 0;
    std::size_t rr = 0;
    const auto duration =
        std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(opt.duration_s));
    const auto start = steady::now();
    auto next_progress = start + 1s;
    auto traffic_time = duration;

    for (;;) {
        const auto now = steady::now();
        if (now - start >= duration) break;
        if (interrupts.raised()) {
            traffic_time = now - start;
            break;
        }

        // Catch up with the schedule: rate events per second since the start.
        const double elapsed = std::chrono::duration<double>(now - start).count();
        const auto due = static_cast<std::uint64_t>(elapsed * opt.rate);
        const auto wall =
            std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
        // The schedule may be more than this machine can produce: the duration still holds.
        while (produced < due && !interrupts.raised() &&
               (produced % 64 != 0 || steady::now() - start < duration)) {
            ++produced;
            std::string bytes;
            std::string key;
            if (replay.empty()) {
                auto e = generator.next(omnitak::cot_time(wall));
                key = inflight_table::key(e.uid, e.time);
                bytes = std::move(e.bytes);
            } else {
                const auto& r = replay[replay_next++ % replay.size()];
                bytes = r.bytes;
                key = r.key;
            }

            // Application traffic goes straight in; the rest arrives from the servers.
            if (!use_mocks || unit_interval(random) < opt.submit_share) {
                if (gateway->submit(std::move(bytes))) {
                    ++submit_refused;
                } else {
                    ++via_submit;
                }
                continue;
            }
            const std::size_t first = rr++ % mocks.size();
            const bool twice = mocks.size() > 1 && unit_interval(random) < opt.dup_share;
            inflight.sent(std::move(key), steady::now());
            auto inject = [&](std::size_t s, std::string b) {
                if (!sessions[s].empty() &&
                    mocks[s]->send_to(sessions[s][produced % sessions[s].size()], std::move(b))) {
                    return true;
                }
                ++not_injected;
                return false;
            };
            const bool second_sent = twice && inject((first + 1) % mocks.size(), bytes);
            const bool first_sent = inject(first, std::move(bytes));
            if (first_sent || second_sent) ++via_servers;
            if (first_sent && second_sent) ++via_two;
        }

        if (now >= next_progress) {
            next_progress += 1s;
            refresh_sessions();
            inflight.forget_older_than(now - 5s);
            const auto s = gateway->stats();
            std::printf("[%4.1fs] links %zu/%zu  in %" PRIu64 "  unique %" PRIu64 "  dup %" PRIu64
                        "  deliveries %" PRIu64 "  drops %" PRIu64 "  queued %" PRIu64
                        "  e2e p99 %s  rss %s\n",
                        elapsed, s.pool.links_connected, s.pool.links_total, s.inbound,
                        s.inbound_unique, s.inbound_duplicates, s.distributor.deliveries,
                        total_drops(s), s.pool.queue_depth, ms(latency.percentile(0.99)).c_str(),
                        mib(ex::resident_memory_bytes()).c_str());
            std::fflush(stdout);
        }
        std::this_thread::sleep_for(1ms);
    }

    // Let what is in flight settle: intake routed, link queues written. An interrupted run
    // waits less: shutdown() flushes what is left within its own timeout anyway.
    const auto settle_deadline = steady::now() + (interrupts.raised() ? 500ms : 3s);
    for (;;) {
        const auto s = gateway->stats();
        if ((s.pool.queue_depth == 0 && gateway->router().intake_size() == 0) ||
            steady::now() >= settle_deadline) {
            break;
        }
        std::this_thread::sleep_for(10ms);
    }
    nap(100ms, interrupts);

    // --- report -------------------------------------------------------------------------
    const auto s = gateway->stats();
    const auto rss_end = ex::resident_memory_bytes();
    std::uint64_t server_events = 0;
    for (const auto& m : mocks)
        server_events += m->events_received();

    const double seconds = std::chrono::duration<double>(traffic_time).count();
    std::printf("\n== complete-system report ==\n");
    if (const int signal = interrupts.signal()) {
        std::printf("interrupted: %s after %.1f s of traffic (%.1f s planned)\n",
                    signal == SIGINT ? "SIGINT" : "SIGTERM", seconds, opt.duration_s);
    }
    std::printf("setup:       %zu links to %zu %s, %.1f s at %g events/s%s\n", opt.links,
                endpoints.size(), use_mocks ? "mock servers" : "servers", seconds, opt.rate,
                replay.empty() ? "" : " (replayed)");
    std::printf("produced:    %" PRIu64 " events: %" PRIu64 " through servers (%" PRIu64
                " through two at once), %" PRIu64 " submitted by the application (%" PRIu64
                " refused: duplicates or a full intake)\n",
                produced, via_servers, via_two, via_submit, submit_refused);
    // Judged only on enough events: whole events cannot meet a fraction of one, and a run
    // interrupted before its traffic began asked for none.
    const double asked = opt.rate * seconds;
    if (asked >= 20 && static_cast<double>(produced) < 0.95 * asked) {
        std::printf(
            "rate:        %.0f events/s produced, short of the %g asked for (this "
            "machine could not generate them faster)\n",
            static_cast<double>(produced) / seconds, opt.rate);
    }
    if (not_injected > 0) {
        std::printf("not sent:    %" PRIu64
                    " injections found no live session on their mock server\n",
                    not_injected);
    }
    std::printf("messages in: %" PRIu64 " from links\n", s.inbound);
    std::printf("unique:      %" PRIu64 " inbound (+%" PRIu64 " submitted)\n", s.inbound_unique,
                s.submitted);
    std::printf("duplicates:  %" PRIu64 " (aggregator dedup ratio %.3f)\n", s.inbound_duplicates,
                s.aggregator.dedup_ratio());
    std::printf("to the app:  %" PRIu64 " messages\n", app_messages.load());
    std::printf("deliveries:  %" PRIu64 " into link queues, %" PRIu64 " written by links",
                s.distributor.deliveries, s.pool.messages_sent);
    if (use_mocks) {
        std::printf(", %" PRIu64 " received by the servers (their pings included)", server_events);
    }
    std::printf("\n");
    std::printf("unrouted:    %" PRIu64 " messages no link wanted\n", s.distributor.unrouted);
    std::printf("drops:       %" PRIu64 " (routing: %" PRIu64 " link queue full, %" PRIu64
                " intake full; links: %" PRIu64 " lost with a session, %" PRIu64
                " other queue refusals)\n",
                total_drops(s), s.distributor.dropped, s.distributor.intake_dropped,
                s.pool.dropped_unsent, link_only_rejections(s));
    std::printf("latency:     end to end (server send -> application), n=%" PRIu64
                ": p50 %s  p99 %s  p999 %s  max %s\n",
                latency.count(), ms(latency.percentile(0.5)).c_str(),
                ms(latency.percentile(0.99)).c_str(), ms(latency.percentile(0.999)).c_str(),
                ms(latency.max()).c_str());
    if (s.distributor.latency_count > 0) {
        std::printf(
            "routing:     mean %s per message (intake -> every target queue), %" PRIu64
            " batches, mean batch %.1f\n",
            ms(std::chrono::nanoseconds(s.distributor.latency_sum_ns / s.distributor.latency_count))
                .c_str(),
            s.distributor.batches,
            s.distributor.batches ? static_cast<double>(s.distributor.routed) /
                                        static_cast<double>(s.distributor.batches)
                                  : 0.0);
    }
    std::printf("reconnects:  %" PRIu64 ", errors %" PRIu64 ", parse errors %" PRIu64
                ", framing problems %" PRIu64 ", bytes skipped %" PRIu64 "\n",
                s.pool.reconnects, s.pool.errors, s.pool.parse_errors, s.pool.framing_problems,
                s.pool.framer_bytes_skipped);
    std::printf("memory:      resident %s (at start %s, before links %s, with links %s)\n",
                mib(rss_end).c_str(), mib(rss_start).c_str(), mib(rss_before_links).c_str(),
                mib(rss_links).c_str());
    if (rss_before_links && rss_links && connected > 0) {
        const double per_link =
            (static_cast<double>(*rss_links) - static_cast<double>(*rss_before_links)) /
            static_cast<double>(connected) / 1024.0;
        std::printf("per link:    %.1f KiB resident when connected, idle%s\n", per_link,
                    use_mocks ? " (includes the in-process mock server's side)" : "");
    }

    const auto report = gateway->shutdown(5s);
    // Counted apart from "drops" above: these were still queued when the run ended (a link
    // to a server that never answered holds its whole share).
    const bool dropped_at_shutdown = report.unrouted + report.unsent > 0;
    std::printf("shutdown:    %s in %lld ms (dropped at shutdown: %" PRIu64
                " not yet routed, %" PRIu64 " still queued on links)\n",
                report.result         ? report.result.message().c_str()
                : dropped_at_shutdown ? "finished in time, with drops"
                                      : "clean",
                static_cast<long long>(report.took.count()), report.unrouted, report.unsent);
    std::fflush(stdout);
    gateway.reset();
    for (auto& m : mocks)
        m->stop();
    const int signal = interrupts.signal();
    return signal == 0 ? 0 : 128 + signal;
}

}  // namespace

int main(int argc, char** argv)
{
    CLI::App app{"A small TAK gateway on omnitak::system, driven by realistic CoT traffic"};
    options opt;
    app.option_defaults()->always_capture_default();  // --help shows each default
    app.add_option("--links", opt.links, "Links to open")->check(CLI::Range(1, 100000));
    auto* servers_option =
        app.add_option("--servers", opt.servers, "Mock TAK servers to start (without --server)")
            ->check(CLI::Range(1, 64));
    app.add_option("--duration", opt.duration_s, "Seconds of traffic")
        ->check(CLI::Range(0.1, 86400.0));
    app.add_option("--rate", opt.rate, "Events per second")->check(CLI::Range(1.0, 1e6));
    // With real servers every event is submitted by the application: these two only shape
    // what the mock servers inject.
    auto* dup_share_option =
        app.add_option("--dup-share", opt.dup_share,
                       "Share of server traffic injected through two mock servers at once")
            ->check(CLI::Range(0.0, 1.0));
    auto* submit_share_option =
        app.add_option("--submit-share", opt.submit_share,
                       "Share of traffic submitted by the application instead of a mock server")
            ->check(CLI::Range(0.0, 1.0));
    app.add_option("--threads", opt.threads, "I/O threads (0 = one per hardware thread)")
        ->check(CLI::Range(0, 1024));
    app.add_option("--metrics", opt.metrics,
                   "Serve /metrics on HOST:PORT (IPv4 HOST), on a bare PORT for every interface, "
                   "or 'off'; port 0 picks one. When the default is taken the run goes on "
                   "without it");
    app.add_option("--replay", opt.replay,
                   "Replay the CoT events of a file or folder instead of generated traffic");
    app.add_option("--server", opt.server_urls,
                   "A real TAK server tcp://HOST:PORT instead of mocks (repeatable)")
        ->excludes(servers_option)
        ->excludes(dup_share_option)
        ->excludes(submit_share_option);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "complete-system: %s (see --help)\n", e.what());
        return 2;
    }
    // CLI11's Range lets NaN through (every comparison with NaN is false).
    const std::pair<const char*, double> numbers[] = {{"--duration", opt.duration_s},
                                                      {"--rate", opt.rate},
                                                      {"--dup-share", opt.dup_share},
                                                      {"--submit-share", opt.submit_share}};
    for (const auto& [name, value] : numbers) {
        if (!std::isfinite(value)) {
            std::fprintf(stderr, "complete-system: %s: must be a finite number (see --help)\n",
                         name);
            return 2;
        }
    }
    // An empty value is most likely an unset shell variable: say so rather than run with a
    // default the user did not choose.
    for (const auto& [name, value] :
         {std::pair<const char*, const std::string*>{"--metrics", &opt.metrics},
          {"--replay", &opt.replay}}) {
        if (app.count(name) > 0 && value->empty()) {
            std::fprintf(stderr, "complete-system: %s: empty value (see --help)\n", name);
            return 2;
        }
    }
    opt.metrics_explicit = app.count("--metrics") > 0;
    // Line-buffered even into a file or pipe, so that each line appears when it happens.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    int code = 0;
    try {
        const interrupt_watch interrupts;
        code = run(opt, interrupts);
    } catch (const std::exception& e) {
        // What the run cannot go on without (threads, memory, descriptors for its own event
        // loops): one line, not an abort.
        std::fflush(stdout);
        std::fprintf(stderr, "complete-system: cannot run: %s\n", e.what());
        return 1;
    }
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
        std::fprintf(stderr, "complete-system: cannot write the report to standard output\n");
        return code == 0 ? 1 : code;
    }
    return code;
}
