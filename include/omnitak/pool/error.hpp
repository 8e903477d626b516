// Error codes of omnitak-pool.
//
// Expected runtime failures (a peer sent bad XML, a queue is full, a link is unknown) are
// reported as std::error_code values in omnitak's own category. Bad parameters are reported
// once, at construction, by throwing std::invalid_argument naming the field.
#pragma once

#include <string_view>
#include <system_error>
#include <type_traits>

namespace omnitak {

/// Every error omnitak-pool reports itself. Values are stable within a major version.
/// `to_string` gives the short snake_case name used in logs, JSON and metric labels.
enum class errc : int {
    // --- CoT parsing: the bytes of one event are not an acceptable CoT event -------------
    not_well_formed = 1,  ///< not well-formed XML (pugixml rejected it)
    root_not_event,       ///< the document element is not <event>
    missing_uid,          ///< <event> has no uid attribute, or an empty one
    missing_type,         ///< <event> has no type attribute, or an empty one
    bad_time,             ///< time, start or stale is missing or not an xs:dateTime
    bad_point,            ///< <point> lat or lon is missing or not a finite number
    point_out_of_range,   ///< lat outside [-90, 90] or lon outside [-180, 180]
    doctype_forbidden,    ///< a DOCTYPE or entity declaration was present
    too_many_elements,    ///< more elements than parse_params::max_elements
    too_deep,             ///< nesting deeper than parse_params::max_depth

    // --- Stream framing: the TCP byte stream did not split cleanly into events -------
    bytes_skipped = 100,  ///< bytes belonging to no event were skipped (counted)
    event_too_large,      ///< an event exceeded framer_params::max_event_bytes
    event_unterminated,   ///< an event was cut off by the start of another one
    stream_truncated,     ///< end of stream arrived inside an unfinished event

    // --- Links and the pool ---------------------------------------------------------
    link_exists = 200,   ///< add_link with an id already in the pool
    link_not_found,      ///< no link with that id
    pool_full,           ///< the pool holds its maximum number of links
    shut_down,           ///< the component is shutting down or stopped
    queue_full,          ///< a bounded queue was full; the message was dropped
    link_unavailable,    ///< the link's circuit breaker is open
    connect_timeout,     ///< TCP connect did not finish in time
    first_byte_timeout,  ///< a connected peer sent nothing within the first-byte timeout
    handshake_timeout,   ///< TLS handshake did not finish in time
    pong_timeout,        ///< no pong or other traffic before the liveness deadline
    resolve_failed,      ///< the host name did not resolve
    peer_closed,         ///< the peer closed the connection
    flush_timeout,       ///< queued messages could not be written before the deadline
    not_retryable,       ///< a failure that retrying cannot fix (see the last error)

    // --- Admission and rate limiting -----------------------------------------------
    admission_timeout = 300,  ///< waited in the admission queue longer than allowed
    admission_evicted,        ///< pushed out of a full admission queue by a better request
    admission_queue_full,     ///< the admission queue is full and this request ranks lowest
    rate_limited,             ///< the token bucket had no token and waiting was not allowed
    cancelled,                ///< the operation was cancelled by its caller

    // --- Routing ---------------------------------------------------------------------
    duplicate = 400,  ///< dropped by the aggregator as a duplicate
    send_timeout,     ///< the distributor's try-for-timeout strategy gave up
};

/// The category of omnitak::errc; name() is "omnitak".
const std::error_category& error_category() noexcept;

/// Short snake_case name of a code, e.g. "event_too_large"; "unknown" for other values.
std::string_view to_string(errc code) noexcept;

inline std::error_code make_error_code(errc code) noexcept
{
    return {static_cast<int>(code), error_category()};
}

/// True for errors after which a link's transport is dead and must be reconnected
/// (as opposed to errors about one message, such as a parse failure or a full queue).
bool is_fatal_link_error(const std::error_code& ec) noexcept;

}  // namespace omnitak

template <>
struct std::is_error_code_enum<omnitak::errc> : std::true_type {
};
