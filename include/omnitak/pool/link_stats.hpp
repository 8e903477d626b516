// What a link reports about itself: its state and a snapshot of its counters.
//
// The link keeps its counters in atomics and copies them into the plain link_stats struct on
// request, so any thread can read them without a lock. Counters are read one by one: a
// snapshot taken while traffic flows is not a single instant (e.g. messages_sent may already
// include a message whose bytes are not yet in bytes_sent), but every counter is monotonic
// and exact once traffic stops.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>

#include "omnitak/pool/circuit_breaker.hpp"
#include "omnitak/pool/error.hpp"
#include "omnitak/pool/health_monitor.hpp"
#include "omnitak/pool/message.hpp"

namespace omnitak {

/// Where a link is in its connect / session / backoff cycle.
enum class link_state : std::uint8_t {
    connecting,   ///< resolving or connecting (one attempt in flight)
    connected,    ///< a TCP session is up; reader, writer and liveness watchdog run
    backing_off,  ///< waiting before the next attempt (backoff, breaker open, connect token)
    closed,       ///< stopped for good (removed, or the pool shut down)
};

/// Short lower-case name ("connecting", "connected", "backing_off", "closed").
constexpr std::string_view to_string(link_state state) noexcept
{
    switch (state) {
        case link_state::connecting:
            return "connecting";
        case link_state::connected:
            return "connected";
        case link_state::backing_off:
            return "backing_off";
        case link_state::closed:
            return "closed";
    }
    return "unknown";
}

/// Why an inbound event was rejected: the slots of link_stats::parse_errors_by_reason (and of
/// pool_stats and the `reason` label of pool_parse_errors_total), in this order, followed by
/// one last slot for any other code ("unknown"). The list holds every code the parser returns
/// and the framer's problems with an event (too large, cut off by the next one, cut off by the
/// end of the stream). Junk between events (errc::bytes_skipped) is not an event rejection:
/// its bytes are counted in link_stats::framer_bytes_skipped instead.
inline constexpr std::array<errc, 13> parse_error_reasons{
    errc::not_well_formed,    errc::root_not_event,    errc::missing_uid,
    errc::missing_type,       errc::bad_time,          errc::bad_point,
    errc::point_out_of_range, errc::doctype_forbidden, errc::too_many_elements,
    errc::too_deep,           errc::event_too_large,   errc::event_unterminated,
    errc::stream_truncated};
/// Slots of a per-reason array: one per parse_error_reasons entry plus "unknown".
inline constexpr std::size_t parse_error_reason_count = parse_error_reasons.size() + 1;

/// The slot counting `code`: its index in parse_error_reasons, or the last slot ("unknown")
/// for any other code, including codes of other categories.
inline std::size_t parse_error_index(const std::error_code& code) noexcept
{
    if (code.category() == error_category()) {
        for (std::size_t i = 0; i < parse_error_reasons.size(); ++i) {
            if (static_cast<int>(parse_error_reasons[i]) == code.value()) return i;
        }
    }
    return parse_error_reasons.size();
}

/// The stable snake_case name of a slot: to_string() of its code ("missing_uid",
/// "event_too_large", ...), "unknown" for the last slot and for indexes out of range. These
/// are the `reason` label values of pool_parse_errors_total.
inline std::string_view parse_error_reason_name(std::size_t index) noexcept
{
    return index < parse_error_reasons.size() ? to_string(parse_error_reasons[index]) : "unknown";
}

/// A copy of one link's counters. Counters run from the link's creation, across sessions.
struct link_stats {
    link_id id = no_link;
    link_state state = link_state::connecting;
    breaker_state breaker = breaker_state::closed;
    health_status health = health_status::healthy;
    /// When `health` last changed (wall clock); time_point{} when it never did, i.e. the link
    /// has been healthy since it was created. Changes happen on every session start after an
    /// unhealthy or degraded spell, on inbound traffic, and when the watchdog finds silence.
    std::chrono::system_clock::time_point health_changed_at{};

    std::uint64_t messages_sent = 0;      ///< queued messages written to the socket
    std::uint64_t bytes_sent = 0;         ///< every byte written (pings, first message included)
    std::uint64_t messages_received = 0;  ///< inbound events parsed and handed to the pool
    std::uint64_t bytes_received = 0;     ///< every byte read
    std::uint64_t pongs_received = 0;     ///< t-x-c-t-r events (consumed by the link)
    std::uint64_t pings_sent = 0;         ///< t-x-c-t events the link wrote itself

    std::uint64_t errors = 0;            ///< transport errors: failed connects, lost sessions
    std::uint64_t parse_errors = 0;      ///< framed events the parser rejected (skipped)
    std::uint64_t framing_problems = 0;  ///< framer problems: skipped bytes, cut-off events
    /// Stream bytes that belonged to no event handed to the parser, over every session: junk,
    /// whitespace, XML declarations and <auth> elements between events, the whole of events
    /// too large to frame, and events cut off by the next event or by the end of their
    /// session (a session that ends for any reason reports what its framer still held). Per
    /// session, bytes read = bytes of framed events + bytes skipped.
    std::uint64_t framer_bytes_skipped = 0;
    /// Events rejected, per reason; slot i counts parse_error_reasons[i] (name:
    /// parse_error_reason_name(i)), the last slot any other code. The parser's rejections add
    /// up to parse_errors; the framer's (event_too_large, event_unterminated,
    /// stream_truncated) are also counted in framing_problems.
    std::array<std::uint64_t, parse_error_reason_count> parse_errors_by_reason{};
    std::error_code last_error;  ///< the most recent transport error ({} if none)

    std::uint64_t connect_attempts = 0;  ///< TCP connect attempts started
    std::uint64_t sessions = 0;          ///< connects that succeeded
    std::uint64_t reconnects = 0;        ///< sessions after the first one
    /// Attempts in flight now (0 or 1) and the most ever seen at once. Both must stay <= 1:
    /// the tests hold the link to that.
    std::uint32_t attempts_in_flight = 0;
    std::uint32_t max_attempts_in_flight = 0;

    /// Messages in the outbound queue now, those put back after a failed write included.
    std::uint64_t queue_depth = 0;
    std::uint64_t messages_writing = 0;  ///< taken from the queue, their write in progress
    std::uint64_t queue_capacity = 0;
    std::uint64_t queue_rejected = 0;  ///< pushes refused: queue full or closed
    /// Messages whose write failed and that went back to the head of the queue, to be written
    /// first on the next session (each failure counts; the peer may get such a message twice).
    std::uint64_t messages_requeued = 0;
    /// Of queue_depth, the messages put back after a failed write that are not written yet.
    std::uint64_t requeued_pending = 0;
    /// Lost messages: of a failed write, those the queue had no room to take back; and those
    /// still queued when the link closed.
    std::uint64_t dropped_unsent = 0;
    std::uint64_t drops = 0;  ///< queue_rejected + dropped_unsent

    /// When the current session connected; time_point{} when not connected.
    std::chrono::system_clock::time_point connected_since{};
};

}  // namespace omnitak
