// Prometheus metrics for omnitak-pool: the families of the original summary's table plus what
// operators need to run thousands of links (reconnects, links per state, open breakers, framer
// bytes skipped, parse errors by reason, outbound queue depth).
//
// Pull design. The components already keep atomic counters; nothing on the message path
// touches Prometheus. At scrape time the registry asks every registered source to add its
// figures to one metrics_snapshot, then turns the snapshot into metric families. Sources are
// cheap callables (the system registers one that reads pool, distributor and aggregator
// stats), so a scrape costs one pass over those stats and nothing between scrapes.
//
// Cardinality is bounded on purpose: there are no per-link labels (a gateway may hold 10,000
// links). The only labels are `state` (four link states) and `reason` (the parse and framing
// error names of omnitak::errc, plus "unknown").
//
// Counters never go down. Sources report running totals, and a total can fall, for example
// when the pool sums over its live links and one is removed. The registry exports the sum of
// the increases it has seen: a fall re-baselines the counter instead of lowering it, so what
// the removed link counted stays exported and later growth is added on top.
//
// Naming note: `pool_connections_total` is a gauge because the original table says so.
// promtool's linter reports `non-counter metrics should not have "_total" suffix` for it;
// that single finding is expected and is the price of keeping the documented name.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "omnitak/pool/error.hpp"
#include "omnitak/pool/link_stats.hpp"

namespace prometheus {
class Collectable;
class Counter;
class Exposer;
class Gauge;
class Registry;
struct MetricFamily;
}  // namespace prometheus

namespace omnitak {

/// A histogram as a component keeps it: fixed upper bounds and cumulative counts.
struct histogram_snapshot {
    /// Finite upper bounds, strictly ascending. The implicit last bucket is +Inf.
    std::vector<double> upper_bounds;
    /// cumulative_counts[i] = observations <= upper_bounds[i]; same size as upper_bounds,
    /// non-decreasing, each <= count.
    std::vector<std::uint64_t> cumulative_counts;
    /// Every observation (the +Inf bucket).
    std::uint64_t count = 0;
    /// Sum of the observed values.
    double sum = 0.0;
};

/// Link states exported as the `state` label of pool_links.
enum class link_state_label : std::uint8_t { connecting, connected, backing_off, closed };
inline constexpr std::size_t link_state_label_count = 4;

/// The `reason` label values of pool_parse_errors_total: the omnitak::errc parse and framing
/// problem codes of parse_error_reasons (link_stats.hpp), in that order, then "unknown" (what
/// errc's to_string() calls any other code) for errors whose reason a source does not know or
/// that are not in the list. Slot i of metrics_snapshot::parse_errors is slot i of
/// link_stats::parse_errors_by_reason; parse_error_reason_name(i) is its label value.
inline constexpr std::array<errc, parse_error_reasons.size()> metrics_parse_reasons =
    parse_error_reasons;
inline constexpr std::size_t metrics_parse_reason_count = parse_error_reason_count;

/// Everything the registry exports, filled by the sources at scrape time. Sources add to the
/// fields (+=), so several sources may contribute to the same figure. Counters are running
/// totals since the source started; gauges are current values.
struct metrics_snapshot {
    // --- pool -------------------------------------------------------------------------------
    std::uint64_t connections_total = 0;   ///< gauge: links in the pool
    std::uint64_t connections_active = 0;  ///< gauge: links connected now
    std::uint64_t messages_sent = 0;       ///< counter: events written to TAK servers
    std::uint64_t messages_received = 0;   ///< counter: events read from TAK servers
    std::uint64_t errors = 0;              ///< counter: link errors of any kind
    std::uint64_t reconnects = 0;          ///< counter: reconnect attempts
    std::array<std::uint64_t, link_state_label_count> links_by_state{};  ///< gauge per state
    std::uint64_t open_breakers = 0;         ///< gauge: links whose breaker is open
    std::uint64_t framer_bytes_skipped = 0;  ///< counter: stream bytes in no event
    std::uint64_t framing_problems = 0;      ///< counter: framer problems of any kind
    std::array<std::uint64_t, metrics_parse_reason_count> parse_errors{};  ///< counter per reason
    std::uint64_t outbound_queue_depth = 0;  ///< gauge: messages queued, summed over links

    // --- distributor --------------------------------------------------------------------------
    histogram_snapshot distributor_latency_seconds;  ///< submit -> queued on every target
    histogram_snapshot distributor_batch_size;       ///< messages per batch
    std::uint64_t distributor_dropped = 0;           ///< counter: deliveries dropped

    // --- aggregator ---------------------------------------------------------------------------
    std::uint64_t duplicates = 0;  ///< counter: messages dropped as duplicates
    std::uint64_t unique = 0;      ///< counter: messages accepted as unique

    /// Adds n to the counter for `code` ("unknown" when it is not a parse/framing code).
    void add_parse_errors(errc code, std::uint64_t n) noexcept;
    /// Adds n to the links gauge of one state.
    void add_links(link_state_label state, std::uint64_t n) noexcept
    {
        links_by_state[static_cast<std::size_t>(state)] += n;
    }
};

/// Label value of a link state ("connecting", "connected", "backing_off", "closed").
std::string_view to_string(link_state_label state) noexcept;

struct metrics_params {
    /// Serve GET /metrics over HTTP. Default false: the application scrapes text() itself or
    /// registers collectable() with its own exposer.
    bool serve = false;
    /// "HOST:PORT" to bind when serve is true. Default "127.0.0.1:9090": loopback only;
    /// binding a wider address ("0.0.0.0:9090") is an explicit choice. Port 0 picks a free
    /// port (see port()). A bare "PORT" listens on every interface; a comma-separated list
    /// listens on each. HOST is a dotted IPv4 address or a name that resolves to one (the
    /// embedded HTTP server serves IPv4 only). Must not be empty when serve is true.
    std::string address = "127.0.0.1:9090";
    /// HTTP worker threads of the exposer. Default 2; range 1..64.
    std::size_t threads = 2;
};

/// Owns the prometheus::Registry holding omnitak's counters and gauges, builds the histogram
/// families from snapshots, and optionally serves everything over HTTP.
///
/// Thread safety: distinct objects: safe. Shared objects: every member is safe to call from
/// any thread, including while an HTTP scrape runs; scrapes are serialised internally.
/// Sources are called with an internal lock held, from the scraping thread, and must not call
/// back into this registry.
///
/// Object lifetimes: a source must stay callable until remove_source() returns (or until the
/// registry is destroyed). The destructor stops the HTTP exposer first, so no scrape runs
/// after it.
class metrics_registry {
public:
    using source = std::function<void(metrics_snapshot&)>;
    using source_id = std::uint64_t;

    /// Throws std::invalid_argument naming a bad field; throws std::runtime_error saying why
    /// when serve is true and the address is malformed, does not resolve or cannot be bound.
    explicit metrics_registry(metrics_params params = {});
    ~metrics_registry();

    metrics_registry(const metrics_registry&) = delete;
    metrics_registry& operator=(const metrics_registry&) = delete;

    /// Registers a source; it contributes to every scrape until removed.
    [[nodiscard]] source_id add_source(source fn);
    /// Unregisters a source. Once this returns the source is not running and will not run
    /// again. Unknown ids are ignored. Must not be called from inside a source.
    void remove_source(source_id id);

    /// Every family (ours, refreshed now, then whatever the application added to registry()).
    std::vector<prometheus::MetricFamily> collect() const;
    /// collect() in the Prometheus text exposition format (version 0.0.4).
    std::string text() const;

    /// The underlying registry, for the application's own metrics: whatever it adds there is
    /// exported with ours. Do not register names starting with pool_, distributor_ or
    /// aggregator_.
    prometheus::Registry& registry() noexcept { return *registry_; }
    /// A collectable producing collect(), to register with another exposer.
    std::shared_ptr<prometheus::Collectable> collectable() const { return collectable_; }

    /// The port the exposer listens on (the real one when the address asked for port 0);
    /// 0 when not serving.
    std::uint16_t port() const noexcept { return port_; }

private:
    class scrape_collectable;
    struct counter_state {
        prometheus::Counter* counter = nullptr;
        std::uint64_t last = 0;  // last running total seen from the sources
    };

    void refresh_locked() const;
    void build_families();

    metrics_params params_;
    std::shared_ptr<prometheus::Registry> registry_;
    std::shared_ptr<prometheus::Collectable> collectable_;

    // Guards sources_ and the counter baselines; held for a whole scrape.
    mutable std::mutex mutex_;
    std::vector<std::pair<source_id, source>> sources_;
    source_id next_id_ = 1;

    mutable counter_state messages_sent_, messages_received_, errors_, reconnects_, bytes_skipped_,
        framing_problems_, dropped_, duplicates_, unique_;
    mutable std::array<counter_state, metrics_parse_reason_count> parse_errors_;
    prometheus::Gauge* connections_total_ = nullptr;
    prometheus::Gauge* connections_active_ = nullptr;
    prometheus::Gauge* dedup_ratio_ = nullptr;
    prometheus::Gauge* open_breakers_ = nullptr;
    prometheus::Gauge* queue_depth_ = nullptr;
    std::array<prometheus::Gauge*, link_state_label_count> links_by_state_{};

    // Histograms are exported as built by their component (cumulative buckets), so they are
    // kept as snapshots rather than prometheus::Histogram objects with their own bounds.
    mutable histogram_snapshot latency_;
    mutable histogram_snapshot batch_size_;

    std::unique_ptr<prometheus::Exposer> exposer_;
    std::uint16_t port_ = 0;
};

}  // namespace omnitak
