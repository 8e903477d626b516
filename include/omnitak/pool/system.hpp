// The system facade: builds and wires every component of omnitak-pool from one params struct.
//
//  application ── submit() ──┐
//                              ├─► aggregator ─► distributor ─► link outbound queues ─► TAK servers
//  TAK servers ─► links ───────┘    (dedup)     (filters)
//                              └─► application: params.on_message and async_receive()
//
// One io_context, run by `threads` threads, carries every link, the distributor's workers and
// the admission waits. Each link added with add_link() gets a distributor route with its own
// filter onto its own outbound queue, so a message reaches exactly the links whose filters
// want it, once each, and never the link it came from. Inbound messages are deduplicated
// first: an event relayed by two servers reaches the application and the other links once.
//
// Including this header gives the whole public API (pool, links, distributor, filters,
// aggregator, admission, rate limiter, parser, writer, metrics).
//
// Thread safety: distinct objects: safe. Shared objects: every member may be called from any
// thread at once, except that shutdown() and the destructor block and must not run on one of
// the system's own threads (e.g. not from on_message).
//
// Errors: runtime failures are std::error_code values (omnitak::errc); bad parameters throw
// std::invalid_argument naming the field, from the constructor (system_params) and from
// add_link (link_params, filter). A metrics address that cannot be bound throws
// std::runtime_error from the constructor.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "omnitak/pool/admission.hpp"
#include "omnitak/pool/aggregator.hpp"
#include "omnitak/pool/distributor.hpp"
#include "omnitak/pool/error.hpp"
#include "omnitak/pool/filter.hpp"
#include "omnitak/pool/link.hpp"
#include "omnitak/pool/message.hpp"
#include "omnitak/pool/metrics.hpp"
#include "omnitak/pool/parser.hpp"
#include "omnitak/pool/pool.hpp"
#include "omnitak/pool/rate_limiter.hpp"
#include "omnitak/pool/writer.hpp"

namespace omnitak {

/// Everything a system is built from. Plain aggregate: start from the defaults or a preset
/// and change what you need.
struct system_params {
    /// Threads running the system's io_context. Default 0: one per hardware thread (at least
    /// 1). Range 0..1024.
    std::size_t threads = 0;

    /// The pool: max_links, link_defaults (timeouts, backoff, queue capacity, health and
    /// circuit-breaker settings of every link without its own), remove_flush_timeout, and
    /// the connect-attempt rate across all links (connect_rate, connect_burst). The
    /// system sets executor, on_inbound and on_state_change itself: they must be left empty
    /// (std::invalid_argument otherwise). pool.log is used when set, else `log` below.
    pool_params pool{};

    /// Deduplication of inbound and submitted messages. Defaults: key (uid, time), 60 s
    /// window, 100,000 entries.
    aggregator_params aggregator{};

    /// Routing: workers, intake capacity, batch size, flush interval, backpressure.
    distributor_params distributor{};

    /// Prometheus metrics. Default: collected, not served (see metrics_params::serve).
    metrics_params metrics{};

    /// Link slots. admission.max_permits 0 (default) means pool.max_links. add_link() takes a
    /// slot without waiting; async_add_link() waits for one in priority order
    /// (link_params::priority) up to admission.queue_timeout.
    admission_params admission{};

    /// Optional limit on the application's own traffic: submit() beyond it fails with
    /// errc::rate_limited. Default nullopt: unlimited.
    std::optional<token_bucket_params> submit_rate;

    /// Every accepted (non-duplicate) inbound message, on the thread of the link it came from.
    /// Called concurrently for different links: must be thread-safe and fast and must not
    /// block. Exceptions are caught and counted (system_stats::callback_errors). Optional.
    std::function<void(message_ptr)> on_message;

    /// Messages async_receive()/try_receive() can hold unread. When it is full, further
    /// inbound messages are not kept for them (counted in system_stats::receive_dropped; they
    /// are still routed and passed to on_message). Default 4096. 0: async_receive() is not
    /// used and nothing is kept.
    std::size_t receive_capacity = 4096;

    /// Logging sink (levels as omnitak::log_level) and its threshold; passed to the pool and
    /// the distributor unless they have their own. Empty: no logging.
    std::function<void(int level, std::string_view line)> log;
    int log_threshold = log_level::warning;

    /// What the destructor gives shutdown(). Default 5 s. Must be >= 0.
    std::chrono::milliseconds shutdown_timeout{5'000};

    /// Preset for 100k+ msg/s (the original summary's "High Throughput"): 5,000 links,
    /// link queues of 2,000, 32 distributor workers, batches of 500, drop when full.
    static system_params high_throughput();

    /// Preset for < 1 ms p99 (the summary's "Low Latency"): link queues of 500, 16 workers,
    /// batches of 10. The summary's 1 ms flush interval is deliberately 0 here: our
    /// distributor routes a partial batch at once, which is the lower-latency choice (a flush
    /// interval only makes a lone message wait).
    static system_params low_latency();

    /// Preset for < 100 MB (the summary's "Memory Constrained"): 1,000 links, link queues of
    /// 100, dedup cache of 10,000 entries over 30 s, a distributor intake of 1,000 and a
    /// receive buffer of 256.
    static system_params memory_constrained();
};

/// A link as the system adds it: the endpoint (with its own settings, if any) and the filter
/// deciding which messages are routed to it.
struct system_link {
    link_params endpoint;
    filter route = filter::always();
};

/// Counters since construction; the component stats are copied as those components report
/// them (see each one's header for what is exact).
struct system_stats {
    pool_stats pool;
    distributor_stats distributor;
    aggregator_stats aggregator;

    std::uint64_t inbound = 0;             ///< messages read from links
    std::uint64_t inbound_unique = 0;      ///< of those, accepted by the aggregator
    std::uint64_t inbound_duplicates = 0;  ///< of those, dropped as duplicates
    std::uint64_t submitted = 0;           ///< submit() calls that were accepted
    std::uint64_t submit_rejected = 0;     ///< submit() calls refused (any reason)
    std::uint64_t delivered_to_app = 0;    ///< on_message calls plus messages kept for receive
    std::uint64_t receive_dropped = 0;     ///< not kept for async_receive: its buffer was full
    std::uint64_t callback_errors = 0;     ///< exceptions thrown by on_message
    std::size_t links = 0;                 ///< links added and not removed
    std::size_t admission_waiting = 0;     ///< async_add_link() calls waiting for a slot
};

/// What shutdown() managed.
struct shutdown_report {
    /// {} when everything stopped within the timeout; errc::flush_timeout when not (what is
    /// left finishes in the background or is abandoned when the threads stop).
    std::error_code result;
    /// Messages still in the distributor's intake when the time for routing ran out.
    std::uint64_t unrouted = 0;
    /// Messages queued on links that were not written (dropped when their link closed).
    std::uint64_t unsent = 0;
    /// How long shutdown took.
    std::chrono::milliseconds took{0};
};

/// The facade; see the file comment.
///
/// Object lifetimes: callbacks in system_params must stay callable until shutdown() has
/// returned. Messages handed out stay valid as long as the application holds them.
class system {
public:
    /// Validates the params (std::invalid_argument naming the field), builds every component
    /// and starts the metrics exposer when asked. No thread runs until start().
    explicit system(system_params params = {});
    /// shutdown(params.shutdown_timeout) if it has not run, then joins the threads.
    ~system();

    system(const system&) = delete;
    system& operator=(const system&) = delete;

    /// Starts the threads and the distributor. Idempotent. Links added before start() begin
    /// connecting now.
    void start();

    /// Adds a link (it starts connecting) and its route. {} on success; errc::pool_full when
    /// no link slot is free; errc::link_exists; errc::shut_down. Throws std::invalid_argument
    /// for bad link_params.
    std::error_code add_link(system_link link);
    /// As add_link, but waits for a slot in priority order (endpoint.priority, higher first)
    /// up to admission.queue_timeout: errc::admission_timeout, admission_evicted,
    /// admission_queue_full, shut_down, cancelled. Must be awaited from a coroutine whose
    /// executor runs one handler at a time (a strand, or an io_context run by one thread).
    asio::awaitable<std::error_code> async_add_link(system_link link);
    /// Removes the route and the link (queued messages are flushed for up to the pool's
    /// remove_flush_timeout), and frees its slot. errc::link_not_found when absent.
    std::error_code remove_link(link_id id);
    /// Replaces a link's filter. errc::link_not_found when absent.
    std::error_code set_filter(link_id id, filter route);

    /// Sends the application's own message: deduplicated, then routed to every link whose
    /// filter wants it. {} when queued for routing; errc::shut_down; errc::rate_limited
    /// (submit_rate); errc::duplicate (seen within the dedup window); errc::queue_full (the
    /// distributor's intake is full). Preconditions: message is not null.
    std::error_code submit(message_ptr message);
    /// Parses one event's bytes first (an errc parse code when they are not CoT), then as
    /// above.
    std::error_code submit(std::string event_bytes);

    /// The next accepted inbound message, in arrival order; nullptr once the system is shut
    /// down and nothing is left. Needs receive_capacity > 0 (else returns nullptr at once).
    /// Cancellation: follows Asio channels (terminal, partial and total cancellation end the
    /// wait with nothing received; the coroutine then sees the cancellation exception).
    asio::awaitable<message_ptr> async_receive();
    /// Takes a kept inbound message without waiting; false when none.
    bool try_receive(message_ptr& out);

    system_stats stats() const;

    /// Stops accepting submissions, inbound messages and links; lets the distributor route
    /// what its intake holds, flushes the links' queues and closes them, all within
    /// `timeout`; then stops the threads. Idempotent: later calls return the first report.
    /// Must not run on one of the system's threads.
    shutdown_report shutdown(std::chrono::milliseconds timeout);
    bool is_shut_down() const noexcept;

    connection_pool& pool() noexcept;
    distributor& router() noexcept;
    aggregator& dedup() noexcept;
    metrics_registry& metrics() noexcept;
    /// The executor every component runs on.
    asio::any_io_executor get_executor() noexcept;
    const system_params& params() const noexcept;

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace omnitak
