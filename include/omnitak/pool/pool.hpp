// The connection pool: a libcuckoo map of links; add, remove, send to one, broadcast, stats,
// shutdown.
//
// The pool runs its links either on an io_context it owns (pool_params::threads threads) or
// on an executor the caller owns (pool_params::executor), e.g. the one io_context the System
// facade shares between pool and distributor. Each link runs on its own strand of it.
//
// Thread safety: distinct objects: safe. Shared objects: every member may be called from any
// thread, concurrently, including shutdown() (idempotent; concurrent callers all wait). The
// exception is blocking: shutdown() and the destructor wait for the links' coroutines, so call
// them from a thread that does not run the pool's executor (from inside a pool thread, e.g.
// in on_inbound, shutdown() starts the shutdown and returns without waiting).
//
// Errors: runtime failures are std::error_code (errc::link_exists, pool_full,
// link_not_found, queue_full, link_unavailable, shut_down); bad parameters throw
// std::invalid_argument naming the field (the constructor for pool_params, add_link for
// link_params).
//
// Limitations: libcuckoo's size is not a snapshot under concurrent writes; the pool keeps its
// own link count for max_links. broadcast() and stats() walk a snapshot of the links that is
// rebuilt after each add or remove, so a link added during a broadcast may miss it.
#pragma once

#include <array>
#include <asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include "omnitak/pool/link.hpp"
#include "omnitak/pool/link_stats.hpp"
#include "omnitak/pool/message.hpp"
#include "omnitak/pool/outbound_queue.hpp"

namespace omnitak {

/// Parameters of a connection pool. Validated by the constructor (std::invalid_argument
/// naming the field).
struct pool_params {
    /// Most links the pool holds at once; add_link beyond it returns errc::pool_full.
    /// Default 10'000. Must be > 0.
    std::size_t max_links = 10'000;
    /// Settings of links added without their own (link_params::settings empty).
    link_settings link_defaults{};
    /// Run on this executor (the caller owns and runs its io_context, and must keep running it
    /// until shutdown() returned). Default empty: the pool owns its io_contexts and threads.
    asio::any_io_executor executor{};
    /// Set true only when `executor` never runs two handlers at once (an io_context run by
    /// exactly one thread): links then use it directly instead of a strand of it, which
    /// saves about 1.5 KiB per link. Default false. Wrong when true: data races.
    bool executor_is_serial = false;
    /// Threads the pool runs itself when `executor` is empty; each runs its own io_context, and
    /// links are spread over them round-robin. Default 0: one per hardware thread. Ignored
    /// when `executor` is set.
    std::size_t threads = 0;
    /// Every inbound event (pongs excepted), origin() = the link id. Called on the link's
    /// strand, concurrently for different links: must be thread-safe and fast, must not block
    /// (hand heavy work elsewhere). Exceptions are caught and logged. Empty: events are
    /// counted and dropped.
    std::function<void(message_ptr)> on_inbound;
    /// Optional: every link state change, on that link's strand (same rules as on_inbound).
    std::function<void(link_id, link_state)> on_state_change;
    /// Optional logging sink, and the level threshold (see log_level). Default: none.
    std::function<void(int level, std::string_view line)> log;
    int log_level = log_level::warning;
    /// Flush timeout of remove_link(id) without an explicit one. Default 2 s. Must be >= 0.
    std::chrono::milliseconds remove_flush_timeout{2'000};
    /// Connect attempts per second across all links of the pool (a token bucket shared by
    /// them, served first come, first served), so that thousands of links coming back at
    /// once after an outage do not all connect in the same instant. Every attempt (the first
    /// one of a new link too) takes a token; a link waiting for one is backing_off. Default
    /// 1000: a pool of up to 1,000 links starts at once, and 5,000 links that lost their
    /// server together reach it again over about 4 s instead of within the 0.4 s their
    /// backoff jitter spreads them over. 0: unlimited. Otherwise must be in (0, 1e9]. At the
    /// default, 10,000 links added at once are all connecting within about 9 s.
    double connect_rate = 1000.0;
    /// Connect attempts allowed at once after a quiet period (the bucket's size). Default
    /// 1000. Must be >= 1 when connect_rate > 0; ignored when it is 0.
    double connect_burst = 1000.0;
};

/// A snapshot of the whole pool. Sums over the links in the pool now (removed links no
/// longer count).
struct pool_stats {
    std::size_t links_total = 0;
    std::size_t links_connected = 0;
    std::size_t links_connecting = 0;
    std::size_t links_backing_off = 0;
    std::size_t links_closed = 0;
    /// Removed (or shut down) links whose coroutines have not finished yet.
    std::size_t links_stopping = 0;
    std::size_t breakers_open = 0;
    /// Links waiting in line for a connect token (pool_params::connect_rate).
    std::size_t links_waiting_to_connect = 0;
    std::uint64_t messages_sent = 0;
    std::uint64_t messages_received = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t errors = 0;
    std::uint64_t parse_errors = 0;
    std::uint64_t framing_problems = 0;
    std::uint64_t framer_bytes_skipped = 0;  ///< see link_stats::framer_bytes_skipped
    /// Events rejected per reason, slots as link_stats::parse_errors_by_reason
    /// (parse_error_reason_name(i) names slot i).
    std::array<std::uint64_t, parse_error_reason_count> parse_errors_by_reason{};
    std::uint64_t reconnects = 0;
    std::uint64_t drops = 0;           ///< queue_rejected + dropped_unsent
    std::uint64_t queue_rejected = 0;  ///< pushes a link's queue refused (full or closed)
    std::uint64_t dropped_unsent = 0;  ///< queued messages lost with a session or a link
    std::uint64_t queue_depth = 0;     ///< sum of the outbound queues' depths
};

class connection_pool {
public:
    /// Validates params and, without an external executor, starts the pool's threads.
    explicit connection_pool(pool_params params);

    /// shutdown(remove_flush_timeout), then joins the pool's own threads. Must not run on a
    /// pool thread.
    ~connection_pool();

    connection_pool(const connection_pool&) = delete;
    connection_pool& operator=(const connection_pool&) = delete;

    /// Adds a link and starts connecting it. {} on success; errc::link_exists when the id is
    /// in the pool; errc::pool_full at max_links; errc::shut_down after shutdown() began.
    /// Throws std::invalid_argument for bad link_params (naming the field).
    std::error_code add_link(link_params params);

    /// Removes a link: it leaves the pool at once (send_to reports link_not_found), its queue
    /// refuses new messages, what is queued is written within `flush_timeout` when connected,
    /// then the session closes. Returns without waiting; errc::link_not_found when absent.
    std::error_code remove_link(link_id id, std::chrono::milliseconds flush_timeout);
    std::error_code remove_link(link_id id);  ///< with pool_params::remove_flush_timeout

    /// Queues a message on one link. {} or errc::link_not_found, errc::link_unavailable
    /// (breaker open), errc::queue_full (counted as a drop), errc::shut_down.
    std::error_code send_to(link_id id, message_ptr message);

    /// Queues a message on every link except message->origin(); returns how many links
    /// queued it (full queues and open breakers are skipped and counted there).
    std::size_t broadcast(const message_ptr& message);

    /// The link's outbound queue, for the distributor to push into; nullptr when absent.
    std::shared_ptr<outbound_queue> outbound_queue_of(link_id id) const;

    /// Ends the link's current session as if its transport failed (see link::drop_session).
    /// errc::link_not_found when absent.
    std::error_code drop_session(link_id id);

    std::optional<link_stats> stats_of(link_id id) const;
    std::vector<link_stats> link_stats_all() const;
    pool_stats stats() const;

    bool contains(link_id id) const;
    std::size_t size() const noexcept;

    /// Stops taking new links and messages, flushes the queues within `timeout`, closes the
    /// sockets and waits (at most a little longer than `timeout`) for every link coroutine to
    /// finish; then stops the pool's own threads. {} when everything finished in time, else
    /// errc::flush_timeout (the links still finish in the background). Idempotent: later and
    /// concurrent calls wait for the same result.
    std::error_code shutdown(std::chrono::milliseconds timeout);
    bool is_shut_down() const noexcept;

    /// The caller's executor, or the first of the pool's own io_contexts' executors.
    asio::any_io_executor get_executor() const;

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

}  // namespace omnitak
