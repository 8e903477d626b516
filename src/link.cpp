#include "omnitak/pool/link.hpp"

#include <algorithm>
#include <array>
#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <exception>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "omnitak/pool/error.hpp"
#include "omnitak/pool/writer.hpp"

namespace omnitak {

namespace {

using clock_type = std::chrono::steady_clock;

// Reads go into one buffer per thread instead of one per link: a link waits for readability
// with async_wait and only then reads, so an idle link holds no read buffer at all. The
// buffer is used between two suspension points only, so a coroutine that moves to another
// thread never finds it half used.
constexpr std::size_t read_chunk = 64 * 1024;

std::array<char, read_chunk>& thread_read_buffer()
{
    thread_local std::array<char, read_chunk> buffer;
    return buffer;
}

// After this many reads without waiting the reader yields, so that one flooding peer cannot
// starve the writer, the watchdog and the other links sharing the thread.
constexpr int reads_before_yield = 16;

// last_error is kept as one atomic word (category index << 32 | value) so that a reader on
// another thread never sees the value of one error with the category of another.
enum : std::uint64_t {
    cat_none,
    cat_omnitak,
    cat_system,
    cat_generic,
    cat_misc,
    cat_netdb,
    cat_addrinfo,
    cat_asio_system
};

std::uint64_t encode_error(const std::error_code& ec) noexcept
{
    if (!ec) return 0;
    std::uint64_t cat = cat_system;
    const auto& c = ec.category();
    if (c == error_category()) {
        cat = cat_omnitak;
    } else if (c == std::generic_category()) {
        cat = cat_generic;
    } else if (c == asio::error::get_misc_category()) {
        cat = cat_misc;
    } else if (c == asio::error::get_netdb_category()) {
        cat = cat_netdb;
    } else if (c == asio::error::get_addrinfo_category()) {
        cat = cat_addrinfo;
    } else if (c == asio::error::get_system_category()) {
        cat = cat_asio_system;
    }
    return (cat << 32) | static_cast<std::uint32_t>(ec.value());
}

std::error_code decode_error(std::uint64_t word) noexcept
{
    const int value = static_cast<int>(static_cast<std::uint32_t>(word));
    switch (word >> 32) {
        case cat_omnitak:
            return {value, error_category()};
        case cat_system:
            return {value, std::system_category()};
        case cat_generic:
            return {value, std::generic_category()};
        case cat_misc:
            return {value, asio::error::get_misc_category()};
        case cat_netdb:
            return {value, asio::error::get_netdb_category()};
        case cat_addrinfo:
            return {value, asio::error::get_addrinfo_category()};
        case cat_asio_system:
            return {value, asio::error::get_system_category()};
        default:
            return {};
    }
}

bool is_stop_reason(const std::error_code& ec) noexcept
{
    return ec == errc::shut_down || ec == errc::flush_timeout || ec == errc::cancelled ||
           ec == asio::error::operation_aborted;
}

void check_duration(std::chrono::milliseconds d, const char* field, bool allow_zero)
{
    if (d.count() < 0 || (!allow_zero && d.count() == 0)) {
        throw std::invalid_argument(std::string("link_settings::") + field +
                                    (allow_zero ? " must be >= 0" : " must be > 0"));
    }
}

}  // namespace

void validate(const link_settings& s)
{
    check_duration(s.connect_timeout, "connect_timeout", false);
    check_duration(s.first_byte_timeout, "first_byte_timeout", true);
    check_duration(s.short_session, "short_session", true);
    validate(s.backoff);
    if (s.queue_capacity == 0) {
        throw std::invalid_argument("link_settings::queue_capacity must be > 0");
    }
    if (s.write_batch == 0 || s.write_batch > 1024) {
        throw std::invalid_argument("link_settings::write_batch must be in 1 .. 1024");
    }
    // The breaker and the tracker validate their own params; build throwaway ones so that a
    // bad value is reported here, at add_link, and not later on a strand.
    circuit_breaker check_breaker(s.breaker);
    if (s.outbound_rate) token_bucket check_rate(*s.outbound_rate);
    health_tracker check_health(s.health);
    stream_framer check_framer(s.framing);
}

void validate(const link_params& p)
{
    if (p.id == no_link) throw std::invalid_argument("link_params::id must not be 0");
    if (p.host.empty()) throw std::invalid_argument("link_params::host must not be empty");
    if (p.port == 0) throw std::invalid_argument("link_params::port must not be 0");
    if (p.settings) validate(*p.settings);
}

// ---------------------------------------------------------------------------------------------
// The link's internals. Members under "strand only" are touched by the link's coroutines and
// by handlers posted to its strand, never elsewhere; atomics are for readers on other threads.
// ---------------------------------------------------------------------------------------------
struct link::impl : std::enable_shared_from_this<link::impl> {
    enum class phase : std::uint8_t { idle, connecting, session, waiting, done };

    impl(asio::any_io_executor executor, link_params p,
         std::shared_ptr<const link_settings> defaults, link_callbacks cb, bool serial,
         std::shared_ptr<fair_token_bucket> tokens)
        : params(without_settings(p)),
          settings_holder(p.settings
                              ? std::make_shared<const link_settings>(std::move(*p.settings))
                              : std::move(defaults)),
          settings(*settings_holder),
          callbacks(std::move(cb)),
          ping_uid((params.name.empty() ? std::to_string(params.id) : params.name) + "-ping"),
          strand(serial ? executor : asio::any_io_executor(asio::make_strand(executor))),
          queue(std::make_shared<outbound_queue>(executor, settings.queue_capacity)),
          connect_tokens(std::move(tokens)),
          socket(executor),
          deadline_timer(executor),
          wait_timer(executor),
          watchdog_timer(executor),
          breaker(settings.breaker),
          health(settings.health),
          backoff(settings.backoff, params.id),
          outbound_tokens(settings.outbound_rate
                              ? std::make_unique<token_bucket>(*settings.outbound_rate)
                              : nullptr)
    {
    }

    // The endpoint as given, without its settings: link_params holds its optional settings
    // inline (about 200 bytes), which thousands of links using the pool's defaults would each
    // carry empty.
    struct endpoint {
        link_id id;
        std::string name;
        std::string host;
        std::uint16_t port;
        std::uint8_t priority;
        std::string first_message;
    };
    static endpoint without_settings(link_params& p)
    {
        return endpoint{p.id,         std::move(p.name),    std::move(p.host),
                        p.port,       p.priority,           std::move(p.first_message)};
    }

    // --- immutable after construction ----------------------------------------------------
    const endpoint params;
    // Shared with every other link that uses the same defaults (the pool's link_defaults):
    // one copy per pool, not one per link.
    const std::shared_ptr<const link_settings> settings_holder;
    const link_settings& settings;
    const link_callbacks callbacks;
    const std::string ping_uid;
    // The link's serial executor: a strand of the executor given, or that executor itself when
    // it already runs one handler at a time.
    const asio::any_io_executor strand;
    const std::shared_ptr<outbound_queue> queue;
    // The pool's connect-attempt rate, shared by its links; null: unlimited.
    const std::shared_ptr<fair_token_bucket> connect_tokens;

    // A name lookup in flight. Its completion handler owns it (and so the resolver) and the
    // link only points at it: getaddrinfo cannot be interrupted, so a lookup abandoned at the
    // connect deadline finishes whenever it finishes, into this object and not into the link.
    struct name_lookup {
        explicit name_lookup(const asio::any_io_executor& executor) : resolver(executor) {}
        asio::ip::tcp::resolver resolver;
        asio::ip::tcp::resolver::results_type results;
        std::error_code ec;
        bool done = false;
    };

    // I/O objects get the plain executor, not the strand: every completion is delivered to a
    // coroutine (which resumes on its own executor, the strand) or to a handler bound to the
    // strand, and a strand stored inside each object's type-erased executor would cost a heap
    // allocation per object, per link.

    // --- strand only -------------------------------------------------------------------------
    asio::ip::tcp::socket socket;
    asio::steady_timer deadline_timer;  // connect timeout; flush deadline while stopping
    // Backoff / breaker / connect-token wait; name lookup done; "session loops done" event.
    asio::steady_timer wait_timer;
    asio::steady_timer watchdog_timer;           // first-byte timeout, pings, health
    std::shared_ptr<name_lookup> lookup;         // the lookup this link waits for, if any
    fair_token_bucket::ticket token_ticket = 0;  // our place in the connect-token line
    circuit_breaker breaker;
    health_tracker health;
    backoff_schedule backoff;
    std::optional<stream_framer> framer;
    // framer->stats().bytes_skipped already added to framer_bytes_skipped. The framer is
    // recycled between reads and replaced on every session; what it skipped is added as it
    // grows so that recycling it never loses a byte.
    std::uint64_t framer_skipped_counted = 0;

    phase current = phase::idle;
    std::uint64_t deadline_gen = 0;  // invalidates deadline_timer handlers from earlier uses
    bool connect_timed_out = false;
    bool session_ending = false;
    bool got_first_byte = false;
    bool flushing = false;  // stop requested during a session: writer drains, then half-closes
    int loops_running = 0;
    std::error_code session_error;
    clock_type::time_point session_start{};
    std::vector<std::string> control_pending;  // control messages for the writer
    std::vector<std::string> control_writing;
    std::unique_ptr<message_ptr[]> batch;  // only while the writer is busy
    // batch[0, unfinished_count) was begun by write_now(); unfinished_offset bytes of it are
    // written. The writer finishes it before anything else.
    std::size_t unfinished_count = 0;
    std::size_t unfinished_offset = 0;
    bool writer_parked = false;  // the writer waits for the queue (it holds no batch then)
    int empty_wakeups = 0;       // the writer's wake-ups in a row that found nothing
    std::vector<asio::const_buffer> buffers;
    // The outbound cap (link_settings::outbound_rate), null without one, and the writer's
    // timer for the next token, made on first use.
    std::unique_ptr<token_bucket> outbound_tokens;
    std::unique_ptr<asio::steady_timer> outbound_timer;

    // --- any thread ----------------------------------------------------------------------------
    std::atomic<link_state> state{link_state::connecting};
    std::atomic<bool> started{false};
    std::atomic<bool> stop_requested{false};
    std::atomic<std::int64_t> stop_flush_ms{0};  // written before the queue is closed
    std::atomic<std::uint64_t> messages_sent{0}, bytes_sent{0}, messages_received{0},
        bytes_received{0}, pongs_received{0}, pings_sent{0}, errors{0}, parse_errors{0},
        framing_problems{0}, last_error{0}, connect_attempts{0}, sessions{0}, reconnects{0},
        dropped_unsent{0}, messages_writing{0}, framer_bytes_skipped{0}, messages_requeued{0};
    std::array<std::atomic<std::uint64_t>, parse_error_reason_count> parse_errors_by_reason{};
    std::atomic<std::uint32_t> attempts_in_flight{0}, max_attempts_in_flight{0};
    std::atomic<std::int64_t> connected_since{0};    // system_clock ticks; 0 = not connected
    std::atomic<std::int64_t> health_changed_at{0};  // system_clock ticks; 0 = never changed

    // --- helpers -------------------------------------------------------------------------------
    template <class MakeLine>
    void log(int level, MakeLine&& make_line) const
    {
        if (!callbacks.log || level < callbacks.log_threshold) return;
        try {
            callbacks.log(level, std::string("link ") + std::to_string(params.id) + " (" +
                                     params.name + "): " + make_line());
        } catch (...) {
            // A failing sink must not take the link down; there is nowhere left to report it.
        }
    }

    void set_state(link_state s)
    {
        if (state.exchange(s, std::memory_order_acq_rel) == s) return;
        log(log_level::debug, [&] { return std::string("state ") + std::string(to_string(s)); });
        if (!callbacks.on_state_change) return;
        try {
            callbacks.on_state_change(params.id, s);
        } catch (const std::exception& e) {
            log(log_level::error,
                [&] { return std::string("on_state_change threw: ") + e.what(); });
        } catch (...) {
            log(log_level::error, [] { return std::string("on_state_change threw"); });
        }
    }

    void count_rejection(const std::error_code& reason)
    {
        parse_errors_by_reason[parse_error_index(reason)].fetch_add(1, std::memory_order_relaxed);
    }

    // Call after feeding the health tracker, with its status from before: stamps a change.
    void note_health(health_status before)
    {
        if (health.status() == before) return;
        health_changed_at.store(std::chrono::system_clock::now().time_since_epoch().count(),
                                std::memory_order_relaxed);
    }

    void record_error(const std::error_code& ec)
    {
        errors.fetch_add(1, std::memory_order_relaxed);
        last_error.store(encode_error(ec), std::memory_order_relaxed);
        log(log_level::info, [&] { return "transport error: " + ec.message(); });
    }

    // --- stop and session control (strand) --------------------------------------------------
    void request_stop(std::chrono::milliseconds flush_timeout)
    {
        bool expected = false;
        if (!stop_requested.compare_exchange_strong(expected, true)) return;
        stop_flush_ms.store(flush_timeout.count(), std::memory_order_relaxed);
        // Closing the queue also tells a busy writer (which may see it before on_stop runs).
        queue->close();
        asio::post(strand, [self = shared_from_this()] { self->on_stop(); });
    }

    void on_stop()
    {
        switch (current) {
            case phase::connecting:
                abort_connect();
                break;
            case phase::waiting:
                wait_timer.cancel();
                break;
            case phase::session:
                begin_flush();
                break;
            case phase::idle:
            case phase::done:
                // The supervisor checks stop_requested before its next wait.
                break;
        }
    }

    void begin_flush()
    {
        if (session_ending || flushing) return;
        const std::chrono::milliseconds flush(stop_flush_ms.load(std::memory_order_relaxed));
        if (flush.count() <= 0) {
            end_session(make_error_code(errc::shut_down));
            return;
        }
        flushing = true;
        const auto gen = ++deadline_gen;
        deadline_timer.expires_after(flush);
        deadline_timer.async_wait(
            asio::bind_executor(strand, [self = shared_from_this(), gen](std::error_code ec) {
                if (ec || gen != self->deadline_gen) return;
                self->end_session(make_error_code(errc::flush_timeout));
            }));
        queue->wake_consumer();
    }

    // The single place a session ends: the first request wins; the socket closes once (which
    // cancels the reader and the writer) and the watchdog and writer are woken.
    void end_session(std::error_code reason)
    {
        if (current != phase::session || session_ending) return;
        session_ending = true;
        session_error = reason;

        std::error_code ignored;
        socket.close(ignored);
        watchdog_timer.cancel();
        if (outbound_timer) outbound_timer->cancel();
        ++deadline_gen;
        deadline_timer.cancel();
        queue->wake_consumer();
    }

    // Ends whichever step of a connect attempt is in flight: the TCP connect (closing the
    // socket), or the wait for a name lookup (which may go on running, abandoned).
    void abort_connect()
    {
        std::error_code ignored;
        socket.close(ignored);
        if (lookup) {
            lookup->resolver.cancel();
            wait_timer.cancel();
        }
    }

    void drop_session(std::error_code reason)
    {
        asio::post(strand, [self = shared_from_this(), reason] { self->end_session(reason); });
    }

    // --- supervisor ------------------------------------------------------------------------------
    void start()
    {
        bool expected = false;
        if (!started.compare_exchange_strong(expected, true)) return;
        auto self = shared_from_this();
        asio::co_spawn(strand, supervise(self), [self](std::exception_ptr ep) {
            if (ep) {
                try {
                    std::rethrow_exception(ep);
                } catch (const std::exception& e) {
                    self->log(log_level::error,
                              [&] { return std::string("supervisor failed: ") + e.what(); });
                } catch (...) {
                    self->log(log_level::error, [] { return std::string("supervisor failed"); });
                }
            }
            self->finish();
        });
    }

    asio::awaitable<void> supervise(std::shared_ptr<impl> /*keep alive*/)
    {
        while (!stop_requested.load(std::memory_order_acquire)) {
            // Ask the breaker first: while it is open, wait for its retry time instead.
            const auto now = clock_type::now();
            if (!breaker.allow_attempt(now)) {
                const auto retry = breaker.retry_at();
                co_await wait_until(retry > now ? retry : now + backoff.next_delay());
                continue;
            }

            if (connect_tokens) {
                co_await wait_for_connect_token();
                if (stop_requested.load(std::memory_order_acquire)) break;
            }

            const std::error_code connect_error = co_await connect_once();
            if (stop_requested.load(std::memory_order_acquire)) break;
            if (connect_error) {
                record_error(connect_error);
                // Every attempt the breaker allowed must be reported, or a half-open breaker
                // would wait for its trial for ever.
                if (counts_as_breaker_failure(connect_error) || breaker.trial_in_flight()) {
                    breaker.record_failure(clock_type::now());
                }
                co_await wait_until(clock_type::now() + backoff.next_delay());
                continue;
            }

            const std::error_code reason = co_await run_session();
            if (stop_requested.load(std::memory_order_acquire)) break;
            judge_session(reason);
            co_await wait_until(clock_type::now() + backoff.next_delay());
        }
    }

    // Feeds the breaker and the backoff schedule with how a session went.
    void judge_session(const std::error_code& reason)
    {
        const auto lasted = clock_type::now() - session_start;
        backoff.on_session_end(lasted);
        if (reason != errc::cancelled) record_error(reason);

        const bool short_lived =
            settings.short_session.count() > 0 && lasted < settings.short_session;
        const bool liveness_failure =
            reason == errc::first_byte_timeout || reason == errc::pong_timeout;
        const auto now = clock_type::now();
        if (liveness_failure || (short_lived && !is_stop_reason(reason))) {
            breaker.record_failure(now);
        } else if (breaker.trial_in_flight()) {
            breaker.record_success(now);
        }
    }

    asio::awaitable<void> wait_until(clock_type::time_point when)
    {
        if (stop_requested.load(std::memory_order_acquire)) co_return;
        current = phase::waiting;
        set_state(link_state::backing_off);
        wait_timer.expires_at(when);
        std::error_code ec;
        co_await wait_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        current = phase::idle;
    }

    // Leaves the connect-token line unless the token was taken, however the wait ends (also
    // when the coroutine is destroyed with its io_context).
    struct ticket_guard {
        fair_token_bucket& line;
        fair_token_bucket::ticket ticket;
        ~ticket_guard()
        {
            if (ticket != 0) line.leave(ticket);
        }
    };

    // Waits in the pool's line for a connect token. The line wakes us when we reach its head;
    // at the head we wait on our own timer for the token. A stop cancels the timer
    // (on_stop, phase::waiting), and leaving the line passes the head on.
    asio::awaitable<void> wait_for_connect_token()
    {
        const auto ticket = connect_tokens->join(clock_type::now(), [weak = weak_from_this()] {
            if (auto self = weak.lock()) {
                asio::post(self->strand, [self] { self->on_token_wake(); });
            }
        });
        if (ticket == 0) co_return;
        ticket_guard guard{*connect_tokens, ticket};
        token_ticket = ticket;
        current = phase::waiting;
        set_state(link_state::backing_off);
        while (!stop_requested.load(std::memory_order_acquire)) {
            const auto now = clock_type::now();
            const auto wait = connect_tokens->poll(ticket, now);
            if (wait == clock_type::duration::zero()) {
                guard.ticket = 0;
                break;
            }
            wait_timer.expires_at(
                wait == clock_type::duration::max() ? clock_type::time_point::max() : now + wait);
            std::error_code ec;
            co_await wait_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        token_ticket = 0;
        current = phase::idle;
    }

    // A wake-up can be stale (its ticket used up meanwhile): at worst the wait polls again.
    void on_token_wake()
    {
        if (token_ticket != 0 && current == phase::waiting) wait_timer.cancel();
    }

    asio::awaitable<std::error_code> connect_once()
    {
        current = phase::connecting;
        set_state(link_state::connecting);
        connect_attempts.fetch_add(1, std::memory_order_relaxed);
        const auto in_flight = attempts_in_flight.fetch_add(1, std::memory_order_acq_rel) + 1;
        auto seen = max_attempts_in_flight.load(std::memory_order_relaxed);
        while (in_flight > seen && !max_attempts_in_flight.compare_exchange_weak(seen, in_flight)) {
        }

        // The deadline closes the socket, or stops the wait for a name lookup: whichever step
        // is in flight ends there.
        connect_timed_out = false;
        const auto gen = ++deadline_gen;
        deadline_timer.expires_after(settings.connect_timeout);
        deadline_timer.async_wait(
            asio::bind_executor(strand, [self = shared_from_this(), gen](std::error_code ec) {
                if (ec || gen != self->deadline_gen || self->current != phase::connecting) return;
                self->connect_timed_out = true;
                self->abort_connect();
            }));

        std::error_code ec;
        std::error_code parse_ec;
        const auto address = asio::ip::make_address(params.host, parse_ec);
        if (!parse_ec) {
            co_await socket.async_connect({address, params.port},
                                          asio::redirect_error(asio::use_awaitable, ec));
        } else {
            auto pending = std::make_shared<name_lookup>(socket.get_executor());
            lookup = pending;
            pending->resolver.async_resolve(
                params.host, std::to_string(params.port),
                asio::bind_executor(strand, [pending, weak = weak_from_this()](
                                                const std::error_code& resolve_ec,
                                                asio::ip::tcp::resolver::results_type results) {
                    pending->ec = resolve_ec;
                    pending->results = std::move(results);
                    pending->done = true;
                    // Wake the link only if it is still waiting for this very lookup.
                    if (auto self = weak.lock(); self && self->lookup == pending) {
                        self->wait_timer.cancel();
                    }
                }));
            // Asio's resolver cannot interrupt a getaddrinfo that has started, so wait for the
            // answer, the deadline or a stop, whichever comes first.
            while (!pending->done && !connect_timed_out &&
                   !stop_requested.load(std::memory_order_acquire)) {
                wait_timer.expires_at(clock_type::time_point::max());
                std::error_code wait_ec;
                co_await wait_timer.async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
            }
            lookup.reset();
            if (!pending->done) {
                // Abandoned: a lookup still queued will not start; one running finishes
                // into `pending`, which its handler keeps alive.
                pending->resolver.cancel();
                ec = asio::error::operation_aborted;
            } else if (pending->ec) {
                ec = pending->ec;
                if (ec != asio::error::operation_aborted) {
                    log(log_level::info, [&] { return "resolve failed: " + ec.message(); });
                    ec = make_error_code(errc::resolve_failed);
                }
            }
            if (!ec && !connect_timed_out) {
                co_await asio::async_connect(socket, pending->results,
                                             asio::redirect_error(asio::use_awaitable, ec));
            }
        }

        ++deadline_gen;
        deadline_timer.cancel();
        attempts_in_flight.fetch_sub(1, std::memory_order_acq_rel);
        if (connect_timed_out) ec = make_error_code(errc::connect_timeout);
        if (!ec && !socket.is_open()) ec = asio::error::operation_aborted;
        if (ec) {
            std::error_code ignored;
            socket.close(ignored);
        }
        current = phase::idle;
        co_return ec;
    }

    asio::awaitable<std::error_code> run_session()
    {
        std::error_code ignored;
        socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        socket.non_blocking(true, ignored);

        current = phase::session;
        session_ending = false;
        flushing = false;
        got_first_byte = false;
        session_error = {};
        session_start = clock_type::now();
        drop_framer();
        connected_since.store(std::chrono::system_clock::now().time_since_epoch().count(),
                              std::memory_order_relaxed);
        if (sessions.fetch_add(1, std::memory_order_relaxed) > 0) {
            reconnects.fetch_add(1, std::memory_order_relaxed);
        }
        set_state(link_state::connected);
        log(log_level::info, [] { return std::string("connected"); });

        // The first message and the first ping go out before anything queued meanwhile: the
        // writer takes control messages first, and they are in place before it starts.
        const auto health_before = health.status();
        health.on_connected(session_start);
        note_health(health_before);
        if (!params.first_message.empty()) control_pending.push_back(params.first_message);
        if (settings.health.enabled && settings.health.ping_interval.count() > 0) {
            send_ping(session_start);
        }

        // A stop that arrived while connecting found nothing to abort; apply it now.
        if (stop_requested.load(std::memory_order_acquire)) begin_flush();

        auto self = shared_from_this();
        const auto on_loop_done = [self](std::exception_ptr ep) { self->loop_done(ep); };
        loops_running = 2;
        asio::co_spawn(strand, read_loop(self), on_loop_done);
        asio::co_spawn(strand, write_loop(self), on_loop_done);

        // The supervisor is the watchdog itself (one coroutine fewer per link); it returns when
        // the session is ending, then waits for the reader and the writer.
        co_await watchdog();
        while (loops_running > 0) {
            wait_timer.expires_at(clock_type::time_point::max());
            std::error_code ec;
            co_await wait_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }

        // Whatever the framer still holds belongs to this session's stream, which has ended
        // (after EOF end_of_stream() has already done this, and it finds nothing left).
        finish_framer();
        drop_framer();
        health.on_disconnected();
        control_pending.clear();
        control_pending.shrink_to_fit();
        connected_since.store(0, std::memory_order_relaxed);
        current = phase::idle;
        log(log_level::info, [&] { return "session ended: " + session_error.message(); });
        co_return session_error;
    }

    void loop_done(std::exception_ptr ep)
    {
        if (ep) {
            // The loops catch what they expect; anything else still ends the session cleanly.
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                log(log_level::error,
                    [&] { return std::string("session task failed: ") + e.what(); });
            } catch (...) {
                log(log_level::error, [] { return std::string("session task failed"); });
            }
            end_session(make_error_code(errc::cancelled));
        }
        if (--loops_running == 0) wait_timer.cancel();
    }

    void finish()
    {
        current = phase::done;
        ++deadline_gen;
        std::error_code ignored;
        socket.close(ignored);
        deadline_timer.cancel();
        wait_timer.cancel();
        watchdog_timer.cancel();
        if (outbound_timer) outbound_timer->cancel();

        queue->close();
        dropped_unsent.fetch_add(queue->drain(), std::memory_order_relaxed);
        drop_framer();
        set_state(link_state::closed);
        log(log_level::info, [] { return std::string("closed"); });
        if (callbacks.on_finished) {
            try {
                callbacks.on_finished(params.id);
            } catch (...) {
                log(log_level::error, [] { return std::string("on_finished threw"); });
            }
        }
    }

    // --- reader
    // ------------------------------------------------------------------------------------
    asio::awaitable<void> read_loop(std::shared_ptr<impl> /*keep alive*/)
    {
        int reads = 0;
        while (!session_ending) {
            auto& buffer = thread_read_buffer();
            std::error_code ec;
            const std::size_t n = socket.read_some(asio::buffer(buffer), ec);
            if (!ec) {
                on_bytes(std::string_view(buffer.data(), n));
                write_now();
                if (++reads >= reads_before_yield) {
                    reads = 0;
                    co_await asio::post(strand, asio::use_awaitable);
                }
                continue;
            }

            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                reads = 0;
                recycle_framer_if_idle();
                co_await socket.async_wait(asio::ip::tcp::socket::wait_read,
                                           asio::redirect_error(asio::use_awaitable, ec));
                if (ec) {
                    end_session(ec);
                    break;
                }
                continue;
            }

            end_session(ec == asio::error::eof ? end_of_stream() : ec);
            break;
        }
    }

    void on_bytes(std::string_view bytes)
    {
        const auto now = clock_type::now();
        bytes_received.fetch_add(bytes.size(), std::memory_order_relaxed);
        if (!got_first_byte) {
            got_first_byte = true;
            breaker.record_success(now);
        }
        const auto health_before = health.status();
        health.on_inbound(now);
        note_health(health_before);

        if (!framer) framer.emplace(settings.framing);
        // Borrowed: drain_framer() runs to need_more before the read buffer is used again, and
        // the framer copies only an unfinished tail, so a read is not copied twice.
        framer->feed_borrowed(bytes);
        drain_framer();
    }

    // Hands every complete event to deliver() and counts every problem, until the framer
    // needs more bytes. True when a problem was an event cut off by the end of the stream.
    bool drain_framer()
    {
        bool truncated = false;
        for (;;) {
            const frame_result r = framer->next();
            // Before the result is acted on, so that whoever sees an event or a problem
            // counted also sees the bytes skipped before it.
            count_skipped_bytes();
            if (r.what == frame_result::kind::need_more) return truncated;
            if (r.what == frame_result::kind::problem) {
                on_framing_problem(r.problem);
                if (r.problem.code == errc::stream_truncated) truncated = true;
                log(log_level::info, [&] {
                    return "framing: " + r.problem.code.message() + " (" +
                           std::to_string(r.problem.length) + " bytes)";
                });
                continue;
            }
            deliver(std::string(r.event));
        }
    }

    void deliver(std::string event)
    {
        std::error_code ec;
        message_ptr message = make_message(std::move(event), ec, params.id, settings.parsing);
        if (!message) {
            parse_errors.fetch_add(1, std::memory_order_relaxed);
            count_rejection(ec);
            log(log_level::info, [&] { return "unparsable event skipped: " + ec.message(); });
            return;
        }
        if (message->summary().control == cot_control::pong) {
            pongs_received.fetch_add(1, std::memory_order_relaxed);
            // Once closed, the breaker only needs to hear about failures; while half-open,
            // every answered ping is evidence towards closing it.
            if (breaker.state() != breaker_state::closed) breaker.record_success(clock_type::now());
            return;
        }
        messages_received.fetch_add(1, std::memory_order_relaxed);
        if (!callbacks.on_inbound) return;
        try {
            callbacks.on_inbound(std::move(message));
        } catch (const std::exception& e) {
            log(log_level::error, [&] { return std::string("on_inbound threw: ") + e.what(); });
        } catch (...) {
            log(log_level::error, [] { return std::string("on_inbound threw"); });
        }
    }

    // Junk runs are counted as framing problems only (their bytes are in
    // framer_bytes_skipped); problems with an event are event rejections too.
    void on_framing_problem(const framer_problem& problem)
    {
        framing_problems.fetch_add(1, std::memory_order_relaxed);
        if (problem.code != errc::bytes_skipped) count_rejection(problem.code);
    }

    // EOF: whatever the framer still holds is reported; a cut-off event makes the reason
    // stream_truncated instead of peer_closed, so the stats say what happened.
    std::error_code end_of_stream()
    {
        const bool truncated = finish_framer();
        return make_error_code(truncated ? errc::stream_truncated : errc::peer_closed);
    }

    // Ends the framer's stream: what it holds is reported (events delivered, problems
    // counted) and its skipped bytes are counted. True when an event was cut off.
    bool finish_framer()
    {
        if (!framer) return false;
        framer->finish();
        return drain_framer();
    }

    void count_skipped_bytes()
    {
        if (!framer) return;
        const std::uint64_t skipped = framer->stats().bytes_skipped;
        if (skipped > framer_skipped_counted) {
            framer_bytes_skipped.fetch_add(skipped - framer_skipped_counted,
                                           std::memory_order_relaxed);
            framer_skipped_counted = skipped;
        }
    }

    // The only way the framer goes away: its skipped bytes are counted first.
    void drop_framer()
    {
        count_skipped_bytes();
        framer.reset();
        framer_skipped_counted = 0;
    }

    // An idle session keeps no framer (and so no framer buffer) unless something is half in:
    // an event, a construct, a junk run not yet reported or an oversized event being skipped.
    void recycle_framer_if_idle()
    {
        if (!framer || !framer->idle()) return;
        drop_framer();
    }

    // --- writer
    // ------------------------------------------------------------------------------------
    asio::awaitable<void> write_loop(std::shared_ptr<impl> /*keep alive*/)
    {
        const std::size_t max_batch = settings.write_batch;
        empty_wakeups = 0;
        while (!session_ending) {
            buffers.clear();
            if (unfinished_count > 0) {
                // The rest of a batch write_now() began: part of it is on the wire, so it
                // goes before anything else, control messages included.
                const std::size_t n = std::exchange(unfinished_count, 0);
                add_batch_buffers(n, std::exchange(unfinished_offset, 0));
                if (!co_await write_batch(n)) break;
                continue;
            }

            control_writing.clear();
            control_writing.swap(control_pending);
            if (!batch) batch = std::make_unique<message_ptr[]>(max_batch);

            // With an outbound cap, take no more messages than there are tokens; with none,
            // and nothing else to write, wait for the next token.
            std::size_t allowed = max_batch;
            clock_type::time_point now{};  // read only when there is a cap to check
            if (outbound_tokens) {
                now = clock_type::now();
                allowed =
                    std::min(max_batch, static_cast<std::size_t>(outbound_tokens->available(now)));
                if (allowed == 0 && control_writing.empty() && queue->size() != 0) {
                    co_await wait_for_outbound_token(now);
                    continue;
                }
            }
            const std::size_t n = allowed == 0 ? 0 : queue->try_pop_bulk(batch.get(), allowed);
            if (outbound_tokens && n > 0) outbound_tokens->try_acquire(now, static_cast<double>(n));

            if (n == 0 && control_writing.empty()) {
                if (queue->closed()) {
                    // Only a stop closes the queue; the posted on_stop may not have run yet.
                    begin_flush();
                    if (session_ending) break;
                    if (queue->size() == 0) {
                        // Everything queued before the stop is written: half-close, and let
                        // the reader wait for the peer's EOF so that nothing in flight is
                        // reset.
                        std::error_code ignored;
                        socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
                        break;
                    }
                    // A push that passed its closed check is still landing.
                    co_await asio::post(strand, asio::use_awaitable);
                    continue;
                }
                release_write_memory();
                // A wait that keeps completing with nothing to pop must not starve the strand.
                if (++empty_wakeups > 1) co_await asio::post(strand, asio::use_awaitable);
                writer_parked = true;
                co_await queue->async_wait_nonempty();
                writer_parked = false;
                continue;
            }
            empty_wakeups = 0;

            for (const auto& c : control_writing)
                buffers.emplace_back(asio::buffer(c));
            add_batch_buffers(n, 0);
            if (!co_await write_batch(n)) break;
        }
        // A session that ended between write_now() and the writer's turn leaves its rest.
        if (unfinished_count > 0) requeue_batch(std::exchange(unfinished_count, 0));
        release_write_memory();
        control_writing.clear();
    }

    // Appends batch[0, n) to `buffers`, without its first `skip` bytes (already written).
    void add_batch_buffers(std::size_t n, std::size_t skip)
    {
        for (std::size_t i = 0; i < n; ++i) {
            const auto bytes = batch[i]->bytes();
            if (skip >= bytes.size()) {
                skip -= bytes.size();
                continue;
            }
            buffers.emplace_back(asio::buffer(bytes.data() + skip, bytes.size() - skip));
            skip = 0;
        }
    }

    // Writes `buffers`, which end with batch[0, n); false when that failed and ended the
    // session.
    asio::awaitable<bool> write_batch(std::size_t n)
    {
        std::error_code ec;
        messages_writing.store(n, std::memory_order_relaxed);
        const std::size_t written = co_await asio::async_write(
            socket, buffers, asio::redirect_error(asio::use_awaitable, ec));
        bytes_sent.fetch_add(written, std::memory_order_relaxed);
        if (ec) {
            requeue_batch(n);
            end_session(ec);
            co_return false;
        }
        for (std::size_t i = 0; i < n; ++i)
            batch[i].reset();
        messages_sent.fetch_add(n, std::memory_order_relaxed);
        messages_writing.store(0, std::memory_order_relaxed);
        co_return true;
    }

    // batch[0, n) goes back to the head of the queue for the next session, as far as the
    // queue has room. Some of it may have reached the peer already: a re-send can duplicate
    // those (at-least-once; TAK servers take a repeated uid/time as an update).
    void requeue_batch(std::size_t n)
    {
        const std::size_t kept = n > 0 ? queue->push_front(batch.get(), n) : 0;
        for (std::size_t i = 0; i < n; ++i)
            batch[i].reset();
        messages_requeued.fetch_add(kept, std::memory_order_relaxed);
        dropped_unsent.fetch_add(n - kept, std::memory_order_relaxed);
        messages_writing.store(0, std::memory_order_relaxed);
    }

    // Called by the reader once a read's events are handed out. When the handlers queued
    // messages on this link (a reply on the same link, say) and the writer is parked, they
    // are written from here and now: waking the writer would put the write behind every
    // other completion already pending on this thread (the rest of an epoll batch: tens of
    // links' reads under load), which showed as a second peak in round-trip times. Only the
    // plain case is taken: no outbound cap, no control message waiting, no stop under way.
    // What the socket does not take at once is left to the writer, which writes it first.
    void write_now()
    {
        if (!writer_parked || unfinished_count > 0 || session_ending || flushing ||
            outbound_tokens || !control_pending.empty() || queue->size() == 0) {
            return;
        }
        constexpr std::size_t most = 16;  // on the stack: a parked writer holds no memory
        message_ptr popped[most];
        const std::size_t n = queue->try_pop_bulk(popped, std::min(most, settings.write_batch));
        if (n == 0) return;
        asio::const_buffer pieces[most];
        std::size_t total = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const auto bytes = popped[i]->bytes();
            pieces[i] = asio::buffer(bytes.data(), bytes.size());
            total += bytes.size();
        }
        // The socket is non-blocking (run_session): this takes what fits and never waits.
        std::error_code ec;
        const std::size_t written =
            socket.write_some(std::span<const asio::const_buffer>(pieces, n), ec);
        bytes_sent.fetch_add(written, std::memory_order_relaxed);
        if (!ec && written == total) {
            messages_sent.fetch_add(n, std::memory_order_relaxed);
            // The pushes rang the parked writer, which will find nothing: a wake-up with a
            // cause, not the spinning that empty_wakeups guards against.
            empty_wakeups = 0;
            return;
        }
        // Short write, would-block or an error: the writer takes the rest (and meets the
        // error itself, through the usual path).
        batch = std::make_unique<message_ptr[]>(settings.write_batch);
        std::move(popped, popped + n, batch.get());
        unfinished_count = n;
        unfinished_offset = written;
        messages_writing.store(n, std::memory_order_relaxed);
        queue->wake_consumer();
    }

    asio::awaitable<void> wait_for_outbound_token(clock_type::time_point now)
    {
        // Made on first use: most links have no cap and need no timer.
        if (!outbound_timer)
            outbound_timer = std::make_unique<asio::steady_timer>(socket.get_executor());
        outbound_timer->expires_at(now + outbound_tokens->time_until_available(now, 1.0));
        std::error_code ec;  // cancelled when the session ends
        co_await outbound_timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    void release_write_memory()
    {
        batch.reset();
        buffers.clear();
        buffers.shrink_to_fit();
        control_writing.shrink_to_fit();
    }

    void queue_control(std::string bytes)
    {
        control_pending.push_back(std::move(bytes));
        queue->wake_consumer();
    }

    void send_ping(clock_type::time_point now)
    {
        const auto wall = std::chrono::time_point_cast<std::chrono::microseconds>(
            std::chrono::system_clock::now());
        queue_control(make_ping(ping_uid, wall));
        pings_sent.fetch_add(1, std::memory_order_relaxed);
        health.on_ping_sent(now);
    }

    // --- watchdog ------------------------------------------------------------------------------
    asio::awaitable<void> watchdog()
    {
        const auto first_byte_deadline = settings.first_byte_timeout.count() > 0
                                             ? session_start + settings.first_byte_timeout
                                             : clock_type::time_point::max();
        while (!session_ending) {
            const auto now = clock_type::now();
            if (!got_first_byte && now >= first_byte_deadline) {
                end_session(make_error_code(errc::first_byte_timeout));
                break;
            }
            if (settings.health.enabled) {
                if (health.ping_due(now)) send_ping(now);
                const auto health_before = health.status();
                const auto status = health.evaluate(now);
                note_health(health_before);
                if (status == health_status::unhealthy && settings.health.auto_reconnect) {
                    end_session(make_error_code(errc::pong_timeout));
                    break;
                }
            }

            auto wake = health.next_wakeup();
            if (!got_first_byte) wake = std::min(wake, first_byte_deadline);
            watchdog_timer.expires_at(wake);
            std::error_code ec;
            co_await watchdog_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
    }

    // --- stats -----------------------------------------------------------------------------------
    link_stats snapshot() const
    {
        link_stats s;
        s.id = params.id;
        s.state = state.load(std::memory_order_acquire);
        s.breaker = breaker.state();
        s.health = health.status();
        s.messages_sent = messages_sent.load(std::memory_order_relaxed);
        s.bytes_sent = bytes_sent.load(std::memory_order_relaxed);
        s.messages_received = messages_received.load(std::memory_order_relaxed);
        s.bytes_received = bytes_received.load(std::memory_order_relaxed);
        s.pongs_received = pongs_received.load(std::memory_order_relaxed);
        s.pings_sent = pings_sent.load(std::memory_order_relaxed);
        s.errors = errors.load(std::memory_order_relaxed);
        s.parse_errors = parse_errors.load(std::memory_order_relaxed);
        s.framing_problems = framing_problems.load(std::memory_order_relaxed);
        s.framer_bytes_skipped = framer_bytes_skipped.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < parse_error_reason_count; ++i) {
            s.parse_errors_by_reason[i] = parse_errors_by_reason[i].load(std::memory_order_relaxed);
        }
        s.last_error = decode_error(last_error.load(std::memory_order_relaxed));
        s.connect_attempts = connect_attempts.load(std::memory_order_relaxed);
        s.sessions = sessions.load(std::memory_order_relaxed);
        s.reconnects = reconnects.load(std::memory_order_relaxed);
        s.attempts_in_flight = attempts_in_flight.load(std::memory_order_relaxed);
        s.max_attempts_in_flight = max_attempts_in_flight.load(std::memory_order_relaxed);
        s.queue_depth = queue->size();
        s.messages_writing = messages_writing.load(std::memory_order_relaxed);
        s.queue_capacity = queue->capacity();
        s.queue_rejected = queue->rejected();
        s.dropped_unsent = dropped_unsent.load(std::memory_order_relaxed);
        s.drops = s.queue_rejected + s.dropped_unsent;
        s.messages_requeued = messages_requeued.load(std::memory_order_relaxed);
        s.requeued_pending = queue->front_size();
        const auto health_at = health_changed_at.load(std::memory_order_relaxed);
        if (health_at != 0) {
            s.health_changed_at = std::chrono::system_clock::time_point(
                std::chrono::system_clock::duration(health_at));
        }
        const auto since = connected_since.load(std::memory_order_relaxed);
        if (since != 0) {
            s.connected_since =
                std::chrono::system_clock::time_point(std::chrono::system_clock::duration(since));
        }
        return s;
    }
};

// ---------------------------------------------------------------------------------------------
// Public handle
// ---------------------------------------------------------------------------------------------
std::shared_ptr<link> link::make(asio::any_io_executor executor, link_params params,
                                 const link_settings& defaults, link_callbacks callbacks,
                                 bool executor_is_serial,
                                 std::shared_ptr<fair_token_bucket> connect_tokens)
{
    // The defaults are copied only when this link uses them.
    auto shared_defaults =
        params.settings ? nullptr : std::make_shared<const link_settings>(defaults);
    return make(std::move(executor), std::move(params), std::move(shared_defaults),
                std::move(callbacks), executor_is_serial, std::move(connect_tokens));
}

std::shared_ptr<link> link::make(asio::any_io_executor executor, link_params params,
                                 std::shared_ptr<const link_settings> defaults,
                                 link_callbacks callbacks, bool executor_is_serial,
                                 std::shared_ptr<fair_token_bucket> connect_tokens)
{
    validate(params);
    if (!params.settings) {
        if (!defaults) throw std::invalid_argument("link::make: no settings and no defaults");
        validate(*defaults);
    }
    auto state =
        std::make_shared<impl>(std::move(executor), std::move(params), defaults,
                               std::move(callbacks), executor_is_serial, std::move(connect_tokens));
    return std::shared_ptr<link>(new link(std::move(state)));
}

link::link(std::shared_ptr<impl> impl) : impl_(std::move(impl)) {}

link::~link()
{
    impl_->request_stop(std::chrono::milliseconds(0));
}

void link::start()
{
    if (impl_->stop_requested.load(std::memory_order_acquire)) return;
    impl_->start();
}

void link::stop(std::chrono::milliseconds flush_timeout)
{
    const bool was_started = impl_->started.load(std::memory_order_acquire);
    impl_->request_stop(flush_timeout);
    // A link that never started has no supervisor to finish it.
    if (!was_started) {
        bool expected = false;
        if (impl_->started.compare_exchange_strong(expected, true)) {
            asio::post(impl_->strand, [self = impl_] { self->finish(); });
        } else {
            // start() raced us; its supervisor sees the stop flag and finishes.
        }
    }
}

void link::drop_session(std::error_code reason)
{
    impl_->drop_session(reason);
}

link_id link::id() const noexcept
{
    return impl_->params.id;
}
link_params link::params() const
{
    const auto& e = impl_->params;
    link_params p;
    p.id = e.id;
    p.name = e.name;
    p.host = e.host;
    p.port = e.port;
    p.priority = e.priority;
    p.first_message = e.first_message;
    return p;
}
const link_settings& link::settings() const noexcept
{
    return impl_->settings;
}
link_state link::state() const noexcept
{
    return impl_->state.load(std::memory_order_acquire);
}
breaker_state link::breaker() const noexcept
{
    return impl_->breaker.state();
}
health_status link::health() const noexcept
{
    return impl_->health.status();
}
bool link::stop_requested() const noexcept
{
    return impl_->stop_requested.load(std::memory_order_acquire);
}
const std::shared_ptr<outbound_queue>& link::queue() const noexcept
{
    return impl_->queue;
}

std::error_code link::send(message_ptr message)
{
    if (stop_requested()) return make_error_code(errc::shut_down);
    if (impl_->breaker.state() == breaker_state::open) {
        return make_error_code(errc::link_unavailable);
    }
    if (!impl_->queue->try_push(std::move(message))) {
        return make_error_code(impl_->queue->closed() ? errc::shut_down : errc::queue_full);
    }
    return {};
}

link_stats link::stats() const
{
    return impl_->snapshot();
}

}  // namespace omnitak
