// A mock TAK server for tests, examples and benchmarks: a real TCP listener speaking TAK
// streaming XML ("protocol version 0") on its own io_context and threads.
//
// It relays each client's events to its other clients, answers pings (t-x-c-t) with pongs
// (t-x-c-t-r), records what it received, and can be switched into the failure modes a link
// must survive: refusing or resetting new connections, dropping every client, going away and
// coming back on the same port, not reading (a slow consumer), and cutting an event in half.
//
// Thread safety: every member function may be called from any thread, on distinct and shared
// objects, except that none may be called from inside the server's own threads (there are no
// callbacks, so only misuse gets there). The switches and actions are synchronous: when one
// returns, the server has applied it (for example, after stop_listening() a connect fails,
// after close_all_clients() connected_clients() is 0). After stop() every action is a no-op.
//
// Errors: the constructor throws std::invalid_argument for bad params (naming the field) and
// std::system_error when the address cannot be bound; resume_listening() throws
// std::system_error when the port cannot be bound again. Nothing else throws except
// std::bad_alloc.
//
// Limitations: received() keeps every event while recording is on (memory grows with the
// test; switch it off for long runs). Linux turns a close into a reset (RST) when input from
// the client is still unread, so close_all_clients() while reading is off, or a refused client
// that sends at once, may show the client connection_reset rather than end of stream. A read
// that had already completed when set_reading(false) was called is still processed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "omnitak/pool/framer.hpp"
#include "omnitak/pool/message.hpp"

namespace omnitak::testing {

struct mock_tak_server_params {
    /// IPv4 or IPv6 address to listen on. Default loopback. Must parse as an IP address.
    std::string address = "127.0.0.1";
    /// TCP port. 0 (default) picks an ephemeral port; port() tells which one was chosen, and
    /// resume_listening() re-binds that same port.
    std::uint16_t port = 0;
    /// Threads running the server's io_context. Default 1; must be at least 1.
    std::size_t threads = 1;
    /// Forward each client's events to every other connected client. Pings and pongs are
    /// control messages and are never relayed. Default true.
    bool relay = true;
    /// Answer each t-x-c-t with a t-x-c-t-r (uid takPong) to the sender. Default true.
    bool answer_pings = true;
    /// Also send each (non-control) event back to its sender. Default false.
    bool echo = false;
    /// Keep every parsed event for received(). Default true. Turn off for long benchmarks.
    bool record = true;
    /// Bytes queued for one client but not yet written to its socket, beyond which further
    /// messages to that client are dropped and counted in writes_dropped(). This keeps a client
    /// that does not read from growing the server's memory without bound. Default 64 MiB;
    /// must be at least 1.
    std::size_t max_pending_write_bytes = 64u * 1024u * 1024u;
    /// Size of each read from a client socket, in bytes. The buffer is one per server thread,
    /// shared by the sessions it serves (a session waits for readability without one).
    /// Default 64 KiB; must be at least 1.
    std::size_t read_buffer_bytes = 64u * 1024u;
    /// Framing limits applied to every client stream.
    framer_params framer{};
};

/// One event as the server received it.
struct received_event {
    std::uint64_t session = 0;  ///< server-assigned session number, 1 for the first accepted
    std::string bytes;          ///< the event's bytes as framed (from `<event` to `</event>`)
    cot_summary summary;        ///< the parsed summary
};

class mock_tak_server {
public:
    /// Binds, listens and starts the threads. Throws std::invalid_argument for bad params and
    /// std::system_error when binding fails (e.g. the port is in use).
    explicit mock_tak_server(mock_tak_server_params params = {});
    /// Calls stop().
    ~mock_tak_server();

    mock_tak_server(const mock_tak_server&) = delete;
    mock_tak_server& operator=(const mock_tak_server&) = delete;

    /// The port the server listens on (the ephemeral one when params.port was 0). Stays the
    /// same across stop_listening()/resume_listening().
    std::uint16_t port() const;

    /// Closes the listener and every client, waits for every session to finish and joins the
    /// threads. Idempotent; blocks until done.
    void stop();

    // --- behaviour switches: take effect for the next event / connection ------------------
    void set_relay(bool on);
    void set_echo(bool on);
    void set_answer_pings(bool on);
    void set_record(bool on);
    /// false: every session stops reading its socket (an in-flight read is cancelled without
    /// losing data), so the kernel buffers fill and clients see backpressure. true: resume.
    /// Applies to existing and new sessions.
    void set_reading(bool on);
    /// true: accept new connections and close them at once, gracefully (FIN). When the client
    /// had already sent bytes, Linux answers with RST instead; the server discards what it can
    /// read without waiting to reduce that chance. Existing sessions are not affected.
    void set_refuse(bool on);
    /// true: accept new connections and reset them at once (SO_LINGER 0, then close: RST).
    /// Takes precedence over set_refuse. Existing sessions are not affected.
    void set_reset(bool on);

    // --- actions ---------------------------------------------------------------------------
    /// Closes every connected client (FIN) and forgets queued writes to them.
    void close_all_clients();
    /// Closes the listening socket: new connects are refused by the kernel. Existing sessions
    /// go on. No-op when not listening.
    void stop_listening();
    /// Listens again on port() (SO_REUSEADDR). No-op when listening. Throws std::system_error
    /// when the port cannot be bound (another process took it meanwhile).
    void resume_listening();
    /// Queues raw bytes to every connected client (subject to max_pending_write_bytes).
    void send_to_all(std::string bytes);
    /// Queues raw bytes to one session; returns false when no such session is connected.
    bool send_to(std::uint64_t session, std::string bytes);
    /// Queues the first half of a valid event to every connected client and closes each of
    /// them (FIN) as soon as its queued writes are done; later messages to them are dropped.
    /// Returns once queued: a client that is not reading keeps its session open until it
    /// reads or stop() is called.
    void send_half_event_and_close();

    // --- observation ------------------------------------------------------------------------
    bool listening() const;
    std::size_t connected_clients() const;
    /// Session numbers of the connected clients, ascending.
    std::vector<std::uint64_t> sessions() const;
    /// TCP connections accepted since start, including those refused or reset at once.
    std::uint64_t sessions_accepted() const;
    /// Connections closed (refused) or reset at once because of set_refuse / set_reset.
    std::uint64_t connections_refused() const;
    std::uint64_t connections_reset() const;
    /// Events framed and parsed successfully (pings and pongs included).
    std::uint64_t events_received() const;
    /// Framed events that parse_cot rejected (not relayed, not recorded).
    std::uint64_t parse_failures() const;
    /// Problems the framers reported (skipped bytes, oversized or unterminated events).
    std::uint64_t framer_problems() const;
    std::uint64_t pings_answered() const;
    /// Events the relay handed to other clients, once per recipient (drops included).
    std::uint64_t events_relayed() const;
    /// Messages dropped because a client's pending writes exceeded max_pending_write_bytes.
    std::uint64_t writes_dropped() const;
    std::uint64_t bytes_received() const;

    /// Snapshot of the recorded events (every parsed event, pings and pongs included), in the
    /// order they were parsed: per session in stream order, sessions interleaved.
    std::vector<received_event> received() const;
    void clear_received();

    /// Polls `condition` (every millisecond or so, on the calling thread) until it returns
    /// true or `timeout` passes; returns the last result. Never holds a server lock while
    /// calling it, so the condition may call any observer.
    bool wait_for(std::function<bool()> condition, std::chrono::milliseconds timeout) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace omnitak::testing
