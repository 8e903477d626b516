// The distributor: routes each message to the links whose filters want it.
//
// Messages enter a bounded intake queue (submit) and are drained by worker coroutines on the
// executor given at construction, in batches. For each message the route index (see
// detail/route_index.hpp) finds the matching links without evaluating every filter; the
// message is then pushed into each of those links' outbound queues, never into the queue of
// the link it came from (message->origin()). A full link queue is handled by the
// distributor's backpressure strategy, and every message that a strategy gives up on is
// counted, globally and for that link.
//
// A link added without a filter receives every message (filter::always()).
//
// Routes change rarely and messages flow constantly, so route changes only record the new
// set of routes; the index is rebuilt once, by the first router to see the change, and
// published as an immutable snapshot. A burst of N route changes therefore costs one rebuild,
// and routing takes a lock only long enough to copy one shared_ptr.
//
// Lifetime: start() spawns the workers; stop() closes the intake, after which the workers
// route what is already queued and exit. Workers keep the distributor's internal state alive,
// so destroying the distributor (which calls stop()) while they run is safe. A worker waiting
// on a full link queue under backpressure::block finishes when that queue gains space or is
// closed; close link queues (the pool does on shutdown) to end such waits.
//
// Thread safety: distinct objects: safe. Shared objects: every member may be called from any
// thread at once.
//
// Errors: route management returns std::error_code (errc::link_exists, errc::link_not_found);
// submit() returns false when the intake is full or stopped. The constructor throws
// std::invalid_argument naming the field for bad params.
#pragma once

#include <array>
#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "omnitak/pool/filter.hpp"
#include "omnitak/pool/message.hpp"
#include "omnitak/pool/outbound_queue.hpp"

namespace omnitak {

/// What a worker does when a link's outbound queue is full.
enum class backpressure : std::uint8_t {
    drop,     ///< drop the message for that link at once (counted); never waits
    block,    ///< wait until the link's queue has space; no loss, but one slow link holds up
              ///< the worker (and so every other link it would deliver to next)
    timeout,  ///< wait up to send_timeout for space, then drop (counted)
};

/// Short lower-case name ("drop", "block", "timeout") for logs.
std::string_view to_string(backpressure b) noexcept;

struct distributor_params {
    /// Worker coroutines draining the intake. Default 2. Must be > 0. More workers than the
    /// threads running the executor only help with backpressure::block and ::timeout, where a
    /// worker may wait on a full link.
    std::size_t workers = 2;

    /// Messages the intake queue holds; submit() drops beyond it. Default 10,000. Must be > 0.
    std::size_t intake_capacity = 10'000;

    /// Most messages a worker takes from the intake at once (one route-table snapshot per
    /// batch). Default 100. Must be > 0.
    std::size_t batch_size = 100;

    /// How long a worker holding a partial batch waits for it to fill before routing it.
    /// Default 0: route what is there at once (lowest latency; under load batches fill by
    /// themselves). Must be >= 0. Every message waits up to this long at low traffic.
    std::chrono::milliseconds flush_interval{0};

    /// What to do when a link's queue is full. Default drop.
    backpressure strategy = backpressure::drop;

    /// backpressure::timeout: how long to wait for space before dropping. Default 100 ms.
    /// Must be > 0 when strategy is timeout; ignored otherwise. Also the wait of
    /// async_submit() under the timeout strategy.
    std::chrono::milliseconds send_timeout{100};

    /// Side of the square geographic cells that index radius and box filters, degrees.
    /// Default 1. Range (0, 90]. Smaller cells mean fewer false candidates, more entries.
    double geo_cell_degrees = 1.0;

    /// Radius/box filters touching more cells than this are evaluated for every message
    /// instead of being indexed. Default 4096. Must be > 0.
    std::size_t geo_max_cells_per_filter = 4096;

    /// Logging sink (levels as omnitak::log_level: 10 debug, 20 info, 30 warning, 40 error)
    /// and its threshold. Empty sink: no logging. Called from the thread changing routes.
    std::function<void(int level, std::string_view line)> log{};
    int log_threshold = 30;
};

/// Upper bounds of the routing-latency histogram buckets, microseconds: latency is the time
/// from message->received_at() (framing, or construction of the message) until the message
/// has been offered to every matching link, so it includes the wait in the intake queue and
/// any backpressure wait. A final bucket (+Inf) follows the last bound.
inline constexpr std::array<std::uint64_t, 15> distributor_latency_bounds_us = {
    10,    25,     50,     100,    250,     500,     1'000,    2'500,
    5'000, 10'000, 25'000, 50'000, 100'000, 250'000, 1'000'000};

/// Upper bounds of the batch-size histogram buckets, messages per batch (a 1-2-5 series, so the
/// batch sizes of the defaults and the system presets, 10, 100 and 500, are bounds: full
/// batches are told apart from partial ones). A final bucket (+Inf) follows the last bound.
inline constexpr std::array<std::uint64_t, 13> distributor_batch_size_bounds = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1'000, 2'000, 5'000, 10'000};

/// Counters since construction. A snapshot of independent relaxed counters: each is exact,
/// but they are not read atomically together.
struct distributor_stats {
    std::uint64_t submitted = 0;       ///< submit()/async_submit()/route_now() calls
    std::uint64_t intake_dropped = 0;  ///< refused by a full or stopped intake
    std::uint64_t routed = 0;          ///< messages that went through routing
    std::uint64_t unrouted = 0;        ///< routed messages no link wanted
    std::uint64_t deliveries = 0;      ///< messages pushed into a link queue
    std::uint64_t dropped = 0;         ///< (message, link) pairs given up on (full/closed queue)
    std::uint64_t batches = 0;         ///< batches taken from the intake by the workers
    /// Per bucket (not cumulative) counts of batch sizes; index i counts batches of at most
    /// distributor_batch_size_bounds[i] messages and more than bounds[i-1]; the last element
    /// counts larger batches. Every batch is observed once: the counts add up to batches.
    std::array<std::uint64_t, distributor_batch_size_bounds.size() + 1> batch_size_buckets{};
    std::uint64_t batched_messages = 0;  ///< messages in those batches (sum of their sizes)
    /// Per bucket (not cumulative) counts; index i counts latencies <= bounds[i] and
    /// > bounds[i-1]; the last element counts everything above the last bound.
    std::array<std::uint64_t, distributor_latency_bounds_us.size() + 1> latency_buckets{};
    std::uint64_t latency_sum_ns = 0;  ///< sum of all recorded latencies
    std::uint64_t latency_count = 0;   ///< equals routed
};

/// Per-link counters, kept across set_filter() and lost by remove_route().
struct route_stats {
    link_id link = no_link;
    std::uint64_t delivered = 0;
    std::uint64_t dropped = 0;
    std::string filter;  ///< filter::to_string() of the current filter
};

class distributor {
public:
    /// Workers run on `executor` (typically an io_context run by several threads). Throws
    /// std::invalid_argument naming the field when params are invalid. Does not start workers.
    explicit distributor(asio::any_io_executor executor, distributor_params params = {});
    /// Calls stop(). Workers still running finish on their own (see Lifetime above).
    ~distributor();

    distributor(const distributor&) = delete;
    distributor& operator=(const distributor&) = delete;

    // --- routes --------------------------------------------------------------------------

    /// Routes messages matching `f` to `queue`. errc::link_exists when the link has a route;
    /// throws std::invalid_argument when link is no_link or queue is null.
    std::error_code add_route(link_id link, filter f, std::shared_ptr<outbound_queue> queue);
    /// Routes every message to `queue` (the link has no filter).
    std::error_code add_route(link_id link, std::shared_ptr<outbound_queue> queue);
    /// Replaces a link's filter, keeping its counters. errc::link_not_found when absent.
    std::error_code set_filter(link_id link, filter f);
    /// Stops routing to the link. Messages already being routed may still reach its queue.
    /// errc::link_not_found when absent.
    std::error_code remove_route(link_id link);
    bool has_route(link_id link) const;
    std::size_t route_count() const;

    // --- messages ------------------------------------------------------------------------

    /// Spawns the workers. Idempotent; does nothing after stop().
    void start();
    /// Closes the intake: submits fail from now on; workers route what is queued, then exit.
    /// Idempotent; does not wait.
    void stop();
    /// Workers currently running (0 before start() and once all have exited after stop()).
    std::size_t running_workers() const noexcept;

    /// Queues a message for the workers without waiting. False (counted in intake_dropped)
    /// when the intake is full or stopped. Preconditions: message is not null.
    bool submit(message_ptr message);
    /// Queues a message, waiting for intake space as the strategy says (drop: no wait; block:
    /// until space; timeout: up to send_timeout). False (counted) when not queued.
    asio::awaitable<bool> async_submit(message_ptr message);
    /// Routes a message now, on the calling thread, bypassing the intake. Never waits: a full
    /// link queue is a drop whatever the strategy. Returns the number of deliveries.
    std::size_t route_now(const message_ptr& message);

    /// The links a message would be delivered to now (origin excluded), in no set order.
    /// Evaluates filters (custom ones included) but delivers nothing and counts nothing.
    void matching_links(const cot_message& message, std::vector<link_id>& out) const;

    /// Messages waiting in the intake.
    std::size_t intake_size() const noexcept;

    distributor_stats stats() const;
    std::optional<route_stats> stats_of(link_id link) const;
    std::vector<route_stats> all_route_stats() const;

    const distributor_params& params() const noexcept;

    struct impl;  // opaque; shared with the worker coroutines

private:
    std::shared_ptr<impl> impl_;
};

}  // namespace omnitak
