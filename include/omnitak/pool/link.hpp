// One TAK server endpoint: transport, connect and reconnect, read loop, write loop, liveness,
// outbound queue and statistics.
//
// Life of a link. A single supervisor coroutine owns the cycle
//
//     connecting ──ok──► connected (session) ──session ends──► backing_off ──► connecting ...
//         └──error / timeout──────────────────────────────────────┘
//
// so exactly one connect attempt is ever in flight, whatever ended the previous session.
// During a session two more coroutines run on the link's strand: the reader (framer + parser;
// each event goes to the inbound handler, tagged with the link id) and the writer (drains the
// outbound queue in batches, one gathered write per batch), while the supervisor itself
// watches the session (first-byte timeout, pings, health). One shortcut: messages the inbound
// handler queued on this same link while the writer was idle (a reply, say) are written by
// the reader right after the read, before it waits again, instead of waking the writer
// behind every other completion pending on the thread; what the socket does not take at
// once is left to the writer, which finishes it before anything else. Each of the three may only
// *request* the end of the session; the first request closes the socket once and wakes the
// others, and the supervisor waits for the reader and the writer to finish before it backs
// off. Every connect attempt asks the circuit breaker first; while it is open the link waits
// until the breaker's retry time instead of connecting. In a pool with a connect rate
// (pool_params::connect_rate) the link then waits its turn for a connect token, in a line
// shared by the pool's links (state backing_off meanwhile); a stop ends that wait at once.
//
// A connect attempt, name lookup included, ends at connect_timeout. Asio cannot interrupt a
// getaddrinfo call that has started, so at the deadline the link abandons a hanging lookup
// rather than waiting for it: the lookup finishes on its own later and its answer is thrown
// away without touching the link (which may have moved on, or be gone). Until then it holds
// Asio's resolver thread (one per io_context: later lookups there queue behind it), and
// destroying the io_context waits for it.
//
// Messages across a reconnect. What the queue holds stays for the next session. A batch
// whose write failed goes back to the head of the queue (see outbound_queue::push_front) and
// is written first on the next session, right after the session's first_message and ping; the
// room it takes counts against queue_capacity, and whatever no longer fits (pushers took the
// slots meanwhile) is dropped and counted in link_stats::dropped_unsent. Delivery is
// therefore at-least-once for that batch: part of it may have reached the peer before the
// write failed and arrives twice (a TAK server takes a repeated uid/time as the same event).
// Messages of earlier writes that completed were handed to the kernel and count as sent; if
// the connection dies before the peer read them they are lost without notice, since TCP gives
// the sender no receipt. Messages still queued when the link closes are dropped and counted.
//
// On every session the link first writes link_params::first_message (if any), then a t-x-c-t
// ping (when health pings are enabled) so that a live TAK server sends a first byte. Pongs
// (t-x-c-t-r) are consumed by the link and counted; every other inbound event is handed on.
//
// Thread safety: a link is used through a shared_ptr. All public members may be called from
// any thread at any time, on distinct and shared objects. Its coroutines run on its own strand
// of the executor it was given.
#pragma once

#include <asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "omnitak/pool/backoff.hpp"
#include "omnitak/pool/circuit_breaker.hpp"
#include "omnitak/pool/framer.hpp"
#include "omnitak/pool/health_monitor.hpp"
#include "omnitak/pool/link_stats.hpp"
#include "omnitak/pool/message.hpp"
#include "omnitak/pool/outbound_queue.hpp"
#include "omnitak/pool/parser.hpp"
#include "omnitak/pool/rate_limiter.hpp"

namespace omnitak {

/// Severity of a log line handed to a logging sink. A sink receives lines whose level is at
/// least its threshold; nothing below the threshold is formatted.
namespace log_level {
inline constexpr int debug = 10;
inline constexpr int info = 20;
inline constexpr int warning = 30;
inline constexpr int error = 40;
inline constexpr int off = 100;  ///< as a threshold: log nothing
}  // namespace log_level

/// How a link behaves: timeouts, reconnect schedule, queue, liveness. The pool has one set of
/// defaults (pool_params::link_defaults); a link may bring its own. Validated by validate(),
/// which the link's constructor calls (throws std::invalid_argument naming the field).
struct link_settings {
    /// Resolving plus TCP connect must finish within this, else the attempt fails with
    /// errc::connect_timeout (a name lookup still running then is abandoned). Default 15 s.
    /// Must be > 0.
    std::chrono::milliseconds connect_timeout{15'000};
    /// After connecting, the peer must send at least one byte within this, else the session
    /// fails with errc::first_byte_timeout (the link pings on connect, so a live TAK server
    /// answers). Default 10 s. 0 disables it: then set it to 0 too when pings are disabled
    /// and the server may legitimately stay silent.
    std::chrono::milliseconds first_byte_timeout{10'000};
    /// A session that ends sooner than this after connecting counts as a breaker failure
    /// (a server that accepts and drops us at once must not look healthy). Default 5 s.
    /// 0: never.
    std::chrono::milliseconds short_session{5'000};
    /// Reconnect schedule. Defaults: 1 s first, x2, 60 s cap, ±20 %, reset after 60 s up.
    backoff_params backoff{};
    /// Capacity of the outbound queue, in messages, including a failed batch kept for the
    /// next session. Default 1024. Must be > 0.
    std::size_t queue_capacity = 1024;
    /// Most messages the writer takes from the queue for one gathered write. Default 64.
    /// Range 1 .. 1024.
    std::size_t write_batch = 64;
    /// Optional cap on this link's outbound messages: a token bucket (rate per second, burst).
    /// The writer takes at most as many queued messages as there are tokens and otherwise
    /// waits for the next one; messages wait in the queue meanwhile, within its capacity
    /// (refused pushes are counted as usual). The link's own first message and pings are not
    /// counted. A stop's flush honours the cap too, within its flush timeout. Default nullopt:
    /// no cap. The bucket is validated as token_bucket_params says.
    std::optional<token_bucket_params> outbound_rate;
    /// Pings and liveness (see health_params). The breaker is fed missed pongs.
    health_params health{};
    /// The link's circuit breaker.
    circuit_breaker_params breaker{};
    /// Framing limits of inbound streams.
    framer_params framing{};
    /// Parser limits of inbound events.
    parse_params parsing{};
};

/// Throws std::invalid_argument naming the first bad field.
void validate(const link_settings& settings);

/// One TAK server endpoint.
struct link_params {
    /// Chosen by the application; must not be 0 (no_link) and must be unique in the pool.
    link_id id = no_link;
    /// Display name for logs; also the ping uid prefix ("<name>-ping"; "<id>-ping" if empty).
    std::string name;
    /// Host name or IP address literal. Must not be empty. Literals skip the resolver; a name
    /// is looked up again on every connect attempt (getaddrinfo on Asio's resolver thread).
    std::string host;
    /// TCP port. Must not be 0.
    std::uint16_t port = 0;
    /// Relative importance, 0 (lowest) .. 255. Default 128. Carried for admission and
    /// reporting; the link itself does not use it.
    std::uint8_t priority = 128;
    /// Bytes written first on every session, e.g. an <auth><cot .../></auth> element. Default
    /// empty (nothing).
    std::string first_message;
    /// This link's behaviour; nullopt (default) takes the pool's link_defaults.
    std::optional<link_settings> settings;
};

/// Throws std::invalid_argument naming the first bad field (settings included when set).
void validate(const link_params& params);

/// What a link calls back into. Every callback is optional (empty = not called) and is called
/// on the link's strand: it must be thread-safe (links call it concurrently), fast, and must
/// not block; exceptions it throws are caught, logged and otherwise ignored.
struct link_callbacks {
    /// Each inbound event except pongs, as a message whose origin() is the link id.
    std::function<void(message_ptr)> on_inbound;
    /// Every state change, after it happened.
    std::function<void(link_id, link_state)> on_state_change;
    /// Once, when the link's last coroutine has finished (state closed, socket closed).
    std::function<void(link_id)> on_finished;
    /// Logging sink and its threshold (see log_level). Empty sink: no logging.
    std::function<void(int level, std::string_view line)> log;
    int log_threshold = log_level::warning;
};

class link {
public:
    /// Validates `params` (std::invalid_argument) and builds the link; nothing runs until
    /// start(). `defaults` are used when params.settings is empty. The link runs on a strand
    /// of `executor`, or on `executor` itself when `executor_is_serial` says it never runs
    /// two handlers at once (an io_context run by one thread), which saves memory.
    /// `connect_tokens`, when set, is the line every connect attempt waits in for a token
    /// (shared by the links of a pool); null: attempts are not rate limited. Whoever owns it
    /// should close() it when shutting the links down, so that stopping links do not wake one
    /// another.
    static std::shared_ptr<link> make(asio::any_io_executor executor, link_params params,
                                      const link_settings& defaults, link_callbacks callbacks,
                                      bool executor_is_serial = false,
                                      std::shared_ptr<fair_token_bucket> connect_tokens = nullptr);
    /// The same, with defaults shared by every link made with them (the pool passes its
    /// link_defaults this way: one copy per pool instead of one per link). `defaults` may be
    /// null only when params.settings is set.
    static std::shared_ptr<link> make(asio::any_io_executor executor, link_params params,
                                      std::shared_ptr<const link_settings> defaults,
                                      link_callbacks callbacks, bool executor_is_serial = false,
                                      std::shared_ptr<fair_token_bucket> connect_tokens = nullptr);

    /// Requests stop(0) if nobody asked for a stop before: dropping the last handle to a
    /// running link closes it. The coroutines keep the internals alive until they finish.
    ~link();

    link(const link&) = delete;
    link& operator=(const link&) = delete;

    /// Starts the supervisor (first connect attempt at once, or as soon as a connect token is
    /// there). Idempotent; ignored after stop().
    void start();

    /// Stops the link: the queue is closed to new messages, what it holds is written within
    /// `flush_timeout` if a session is up (else dropped and counted), then the socket closes,
    /// the coroutines finish, the state becomes closed and on_finished is called. Returns at
    /// once. Only the first call counts; later calls do nothing.
    void stop(std::chrono::milliseconds flush_timeout);

    /// Ends the current session as if the transport had failed with `reason` (default
    /// errc::cancelled); the link then backs off and reconnects as usual. No-op when no
    /// session is up. Safe to call concurrently with anything, any number of times.
    void drop_session(std::error_code reason = make_error_code(errc::cancelled));

    link_id id() const noexcept;
    /// As given, except settings, which is always empty here: see settings(). Returns a copy
    /// (the link keeps its endpoint without the settings' inline storage).
    link_params params() const;
    const link_settings& settings() const noexcept;  ///< the settings in force
    link_state state() const noexcept;
    breaker_state breaker() const noexcept;
    health_status health() const noexcept;
    bool stop_requested() const noexcept;

    /// The outbound queue (the distributor pushes into it directly). Stays valid after the
    /// link closed; it is closed then and refuses pushes.
    const std::shared_ptr<outbound_queue>& queue() const noexcept;

    /// Queues `message` for writing: {} or errc::shut_down (stopping), errc::link_unavailable
    /// (breaker open), errc::queue_full.
    std::error_code send(message_ptr message);

    /// A copy of the counters. Lock-free.
    link_stats stats() const;

    struct impl;

private:
    explicit link(std::shared_ptr<impl> impl);

    std::shared_ptr<impl> impl_;
};

}  // namespace omnitak
