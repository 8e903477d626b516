#include "omnitak/pool/metrics.hpp"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <asio/ip/address_v4.hpp>
#include <asio/ip/address_v6.hpp>
#include <asio/ip/tcp.hpp>
#include <exception>
#include <limits>
#include <stdexcept>
#include <vector>

namespace omnitak {

namespace {

constexpr std::array<std::string_view, link_state_label_count> link_state_names{
    "connecting", "connected", "backing_off", "closed"};

// A component's histogram is exported as given, after making sure it is one Prometheus
// accepts: sizes agree and buckets are cumulative. Anything else would make the whole scrape
// unreadable, so a malformed snapshot is repaired rather than passed through.
histogram_snapshot sanitised(histogram_snapshot h)
{
    const std::size_t n = std::min(h.upper_bounds.size(), h.cumulative_counts.size());
    h.upper_bounds.resize(n);
    h.cumulative_counts.resize(n);

    std::uint64_t running = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (i > 0 && !(h.upper_bounds[i] > h.upper_bounds[i - 1])) {
            h.upper_bounds.resize(i);
            h.cumulative_counts.resize(i);
            break;
        }
        running = std::max(running, h.cumulative_counts[i]);
        h.cumulative_counts[i] = running;
    }
    h.count = std::max(h.count, running);
    return h;
}

// The entries of a civetweb listening list ("A,B,C"), as written.
std::vector<std::string> listen_entries(const std::string& address)
{
    std::vector<std::string> entries;
    std::size_t begin = 0;
    for (;;) {
        const auto comma = address.find(',', begin);
        entries.push_back(address.substr(begin, comma - begin));
        if (comma == std::string::npos) return entries;
        begin = comma + 1;
    }
}

// One entry split as civetweb reads it: "PORT" or "HOST:PORT", HOST possibly a bracketed
// IPv6 literal (brackets removed here, `bracketed` set).
struct listen_entry {
    std::string host;
    std::string port_text;
    bool has_host = false;
    bool bracketed = false;
};

listen_entry split_listen_entry(const std::string& entry)
{
    listen_entry out;
    out.port_text = entry;
    if (const auto colon = entry.rfind(':'); colon != std::string::npos) {
        out.has_host = true;
        out.host = entry.substr(0, colon);
        out.port_text = entry.substr(colon + 1);
    }
    if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']') {
        out.host = out.host.substr(1, out.host.size() - 2);
        out.bracketed = true;
    }
    return out;
}

// The first IPv4 address `host` resolves to, as civetweb looks names up (IPv4 only).
asio::ip::address resolve_v4(const std::string& host, std::error_code& ec,
                             asio::ip::resolver_base::flags flags = {})
{
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    const auto found = resolver.resolve(asio::ip::tcp::v4(), host, "0", flags, ec);
    if (ec || found.empty()) {
        if (!ec) ec = asio::error::host_not_found;
        return {};
    }
    return found.begin()->endpoint().address();
}

// Why one entry cannot be what its writer meant, or empty when it looks servable.
std::string listen_entry_problem(const std::string& entry)
{
    constexpr const char* not_ipv4 =
        "' is not an IPv4 address (four numbers in 0..255 separated by dots)";
    if (entry.empty()) return "an empty entry in the address list";
    const auto e = split_listen_entry(entry);
    const bool port_ok = !e.port_text.empty() && e.port_text.size() <= 5 &&
                         e.port_text.find_first_not_of("0123456789") == std::string::npos &&
                         std::stoul(e.port_text) <= 65535;
    if (!port_ok) {
        return "'" + entry + "': expected HOST:PORT or PORT, with PORT a number in 0..65535";
    }
    if (!e.has_host) return {};
    if (e.host.empty()) {
        return "'" + entry +
               "': no HOST before the port (give PORT alone to listen on every "
               "interface)";
    }
    std::error_code ec;
    if (e.bracketed) {
        (void)asio::ip::make_address_v6(e.host, ec);
        return ec ? "'" + e.host + "' in brackets is not an IPv6 address" : std::string();
    }
    if (e.host.find_first_of("[]:") != std::string::npos) {
        return "'" + entry + "': expected HOST:PORT, with an IPv6 HOST in brackets";
    }
    (void)asio::ip::make_address_v4(e.host, ec);
    if (!ec) return {};

    // Not a dotted quad. getaddrinfo still reads "127.1" or "0x7f.1" as numbers (inet_aton's
    // forms) where civetweb does not: those are refused too, as is a name with no IPv4
    // address (civetweb looks names up for IPv4 only).
    (void)resolve_v4(e.host, ec, asio::ip::resolver_base::numeric_host);
    if (!ec || e.host.find_first_not_of("0123456789.") == std::string::npos) {
        return "'" + e.host + not_ipv4;
    }
    (void)resolve_v4(e.host, ec);
    if (ec) return "cannot resolve '" + e.host + "' to an IPv4 address: " + ec.message();
    return {};
}

// civetweb accepts more than it serves correctly: it reads "999.1.1.1:9090" and
// "127.0.0.257:9090" with unchecked arithmetic and listens on another address, and it fails
// every other mistake with one generic message. So every entry is checked here first.
std::string listen_address_problem(const std::string& address)
{
    for (const auto& entry : listen_entries(address)) {
        if (auto problem = listen_entry_problem(entry); !problem.empty()) return problem;
    }
    return {};
}

// Whether a probe other than the last one listens on `port` (port 0 never collides).
bool held_by_earlier_probe(const std::vector<asio::ip::tcp::acceptor>& probes, std::uint16_t port)
{
    for (std::size_t i = 0; port != 0 && i + 1 < probes.size(); ++i) {
        std::error_code ignored;
        if (probes[i].local_endpoint(ignored).port() == port) return true;
    }
    return false;
}

// After civetweb failed to listen (its message is always "null context when constructing
// CivetServer. Possible problem binding to port."), bind the entries ourselves, all at once
// as civetweb does, to learn why: an address in use (also by an earlier entry), a port that
// needs privileges, an address not on this machine.
std::string reason_cannot_listen(const std::string& address)
{
    asio::io_context io;
    std::vector<asio::ip::tcp::acceptor> probes;
    for (const auto& entry : listen_entries(address)) {
        const auto e = split_listen_entry(entry);
        std::error_code ec;
        asio::ip::address ip = asio::ip::address_v4::any();
        if (!e.host.empty()) {
            ip = asio::ip::make_address(e.host, ec);
            if (ec) ip = resolve_v4(e.host, ec);  // a name: the address civetweb bound
            if (ec) continue;
        }
        const asio::ip::tcp::endpoint endpoint(ip,
                                               static_cast<std::uint16_t>(std::stoul(e.port_text)));
        auto& probe = probes.emplace_back(io);
        probe.open(endpoint.protocol(), ec);
        if (!ec) probe.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
        if (!ec) probe.bind(endpoint, ec);
        // Listening, so that a later entry for the same address collides as it did in civetweb.
        if (!ec) probe.listen(asio::socket_base::max_listen_connections, ec);
        if (ec == asio::error::address_in_use && held_by_earlier_probe(probes, endpoint.port())) {
            // The list collides with itself, not with another program.
            return "'" + entry + "': the same port on the same address as an earlier entry";
        }
        if (ec) return "'" + entry + "': " + ec.message();
        if (ip.is_v6()) {
            return "'" + entry + "': the embedded HTTP server of this build may not support IPv6";
        }
    }
    return {};
}

prometheus::MetricFamily histogram_family(std::string name, std::string help,
                                          const histogram_snapshot& h)
{
    prometheus::MetricFamily family;
    family.name = std::move(name);
    family.help = std::move(help);
    family.type = prometheus::MetricType::Histogram;

    prometheus::ClientMetric metric;
    metric.histogram.sample_count = h.count;
    metric.histogram.sample_sum = h.sum;
    for (std::size_t i = 0; i < h.upper_bounds.size(); ++i) {
        metric.histogram.bucket.push_back({h.cumulative_counts[i], h.upper_bounds[i]});
    }
    metric.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
    family.metric.push_back(std::move(metric));
    return family;
}

}  // namespace

void metrics_snapshot::add_parse_errors(errc code, std::uint64_t n) noexcept
{
    parse_errors[parse_error_index(make_error_code(code))] += n;
}

std::string_view to_string(link_state_label state) noexcept
{
    const auto index = static_cast<std::size_t>(state);
    return index < link_state_names.size() ? link_state_names[index] : "unknown";
}

// What the exposer (or another one, via collectable()) scrapes. The registry's destructor
// detaches it, so a copy kept alive by an external exposer then yields nothing instead of
// reading a destroyed registry.
class metrics_registry::scrape_collectable : public prometheus::Collectable {
public:
    explicit scrape_collectable(const metrics_registry* owner) : owner_(owner) {}

    std::vector<prometheus::MetricFamily> Collect() const override
    {
        std::lock_guard lock(mutex_);
        return owner_ ? owner_->collect() : std::vector<prometheus::MetricFamily>{};
    }

    void detach()
    {
        std::lock_guard lock(mutex_);
        owner_ = nullptr;
    }

private:
    mutable std::mutex mutex_;
    const metrics_registry* owner_;
};

metrics_registry::metrics_registry(metrics_params params)
    : params_(std::move(params)), registry_(std::make_shared<prometheus::Registry>())
{
    if (params_.serve && params_.address.empty()) {
        throw std::invalid_argument("metrics_params::address must not be empty when serve is set");
    }
    if (params_.threads == 0 || params_.threads > 64) {
        throw std::invalid_argument("metrics_params::threads must be in 1..64");
    }

    build_families();
    collectable_ = std::make_shared<scrape_collectable>(this);

    if (params_.serve) {
        if (const auto problem = listen_address_problem(params_.address); !problem.empty()) {
            throw std::runtime_error("metrics: cannot serve on " + params_.address + ": " +
                                     problem);
        }
        try {
            exposer_ = std::make_unique<prometheus::Exposer>(params_.address, params_.threads);
        } catch (const std::exception& e) {
            const std::string reason = reason_cannot_listen(params_.address);
            throw std::runtime_error("metrics: cannot serve on " + params_.address + ": " +
                                     (reason.empty() ? std::string(e.what()) : reason));
        }
        exposer_->RegisterCollectable(collectable_);
        const auto ports = exposer_->GetListeningPorts();
        if (!ports.empty()) port_ = static_cast<std::uint16_t>(ports.front());
    }
}

metrics_registry::~metrics_registry()
{
    // Stop serving before anything a scrape reads goes away; then make sure a collectable
    // still held elsewhere no longer points here.
    exposer_.reset();
    static_cast<scrape_collectable&>(*collectable_).detach();
}

void metrics_registry::build_families()
{
    auto& reg = *registry_;
    auto counter = [&](const char* name, const char* help) {
        return counter_state{
            &prometheus::BuildCounter().Name(name).Help(help).Register(reg).Add({})};
    };
    auto gauge = [&](const char* name, const char* help) {
        return &prometheus::BuildGauge().Name(name).Help(help).Register(reg).Add({});
    };

    // The original summary's table, names and types unchanged.
    connections_total_ = gauge("pool_connections_total", "Links in the pool");
    connections_active_ = gauge("pool_connections_active", "Links connected now");
    messages_sent_ = counter("pool_messages_sent_total", "CoT events written to TAK servers");
    messages_received_ =
        counter("pool_messages_received_total", "CoT events read from TAK servers");
    errors_ = counter("pool_errors_total", "Link errors of any kind");
    dropped_ = counter("distributor_messages_dropped_total",
                       "Deliveries dropped by backpressure (queue full or timed out)");
    duplicates_ = counter("aggregator_duplicate_messages_total", "Messages dropped as duplicates");
    unique_ = counter("aggregator_unique_messages_total", "Messages accepted as unique");
    dedup_ratio_ =
        gauge("aggregator_dedup_ratio", "Share of aggregated messages that were duplicates, 0..1");

    // What operators need beyond the table.
    reconnects_ = counter("pool_reconnects_total", "Reconnect attempts over all links");
    bytes_skipped_ =
        counter("pool_framer_bytes_skipped_total", "Stream bytes that belonged to no CoT event");
    framing_problems_ = counter("pool_framing_problems_total",
                                "Framer problems: skipped junk, oversized or cut-off events");
    open_breakers_ = gauge("pool_breakers_open", "Links whose circuit breaker is open");
    queue_depth_ =
        gauge("pool_outbound_queue_depth", "Messages waiting in outbound queues, all links");

    auto& states = prometheus::BuildGauge()
                       .Name("pool_links")
                       .Help("Links per connection state")
                       .Register(reg);
    for (std::size_t i = 0; i < link_state_label_count; ++i) {
        links_by_state_[i] = &states.Add({{"state", std::string(link_state_names[i])}});
    }

    auto& parse = prometheus::BuildCounter()
                      .Name("pool_parse_errors_total")
                      .Help("Inbound CoT events rejected, by reason")
                      .Register(reg);
    for (std::size_t i = 0; i < metrics_parse_reason_count; ++i) {
        parse_errors_[i].counter =
            &parse.Add({{"reason", std::string(parse_error_reason_name(i))}});
    }
}

metrics_registry::source_id metrics_registry::add_source(source fn)
{
    std::lock_guard lock(mutex_);
    const source_id id = next_id_++;
    sources_.emplace_back(id, std::move(fn));
    return id;
}

void metrics_registry::remove_source(source_id id)
{
    std::lock_guard lock(mutex_);
    std::erase_if(sources_, [id](const auto& entry) { return entry.first == id; });
}

void metrics_registry::refresh_locked() const
{
    metrics_snapshot s;
    for (const auto& [id, fn] : sources_)
        fn(s);

    // Counters: add what grew since the last scrape; a fall only moves the baseline.
    auto advance = [](counter_state& state, std::uint64_t total) {
        if (total > state.last) state.counter->Increment(static_cast<double>(total - state.last));
        state.last = total;
    };
    advance(messages_sent_, s.messages_sent);
    advance(messages_received_, s.messages_received);
    advance(errors_, s.errors);
    advance(reconnects_, s.reconnects);
    advance(bytes_skipped_, s.framer_bytes_skipped);
    advance(framing_problems_, s.framing_problems);
    advance(dropped_, s.distributor_dropped);
    advance(duplicates_, s.duplicates);
    advance(unique_, s.unique);
    for (std::size_t i = 0; i < metrics_parse_reason_count; ++i) {
        advance(parse_errors_[i], s.parse_errors[i]);
    }

    connections_total_->Set(static_cast<double>(s.connections_total));
    connections_active_->Set(static_cast<double>(s.connections_active));
    open_breakers_->Set(static_cast<double>(s.open_breakers));
    queue_depth_->Set(static_cast<double>(s.outbound_queue_depth));
    for (std::size_t i = 0; i < link_state_label_count; ++i) {
        links_by_state_[i]->Set(static_cast<double>(s.links_by_state[i]));
    }

    // The ratio over everything exported so far, so it agrees with the two counters.
    const double dup = duplicates_.counter->Value();
    const double seen = dup + unique_.counter->Value();
    dedup_ratio_->Set(seen > 0 ? dup / seen : 0.0);

    // A histogram whose total went down belongs to a restarted component; keep the last one
    // exported so the series stays monotonic.
    auto keep = [](histogram_snapshot& kept, histogram_snapshot fresh) {
        fresh = sanitised(std::move(fresh));
        if (fresh.count >= kept.count) kept = std::move(fresh);
    };
    keep(latency_, std::move(s.distributor_latency_seconds));
    keep(batch_size_, std::move(s.distributor_batch_size));
}

std::vector<prometheus::MetricFamily> metrics_registry::collect() const
{
    std::lock_guard lock(mutex_);
    refresh_locked();

    auto families = registry_->Collect();
    families.push_back(histogram_family("distributor_latency_seconds",
                                        "Time from submit to queued on every target link",
                                        latency_));
    families.push_back(
        histogram_family("distributor_batch_size", "Messages per distributor batch", batch_size_));
    return families;
}

std::string metrics_registry::text() const
{
    return prometheus::TextSerializer().Serialize(collect());
}

}  // namespace omnitak
