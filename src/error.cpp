#include "omnitak/pool/error.hpp"

#include <asio/error.hpp>
#include <string>

namespace omnitak {
namespace {

class omnitak_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "omnitak"; }

    std::string message(int value) const override
    {
        switch (static_cast<errc>(value)) {
            case errc::not_well_formed:
                return "CoT event is not well-formed XML";
            case errc::root_not_event:
                return "document element is not <event>";
            case errc::missing_uid:
                return "<event> has no uid";
            case errc::missing_type:
                return "<event> has no type";
            case errc::bad_time:
                return "time, start or stale is missing or not an xs:dateTime";
            case errc::bad_point:
                return "<point> coordinate is not a number";
            case errc::point_out_of_range:
                return "<point> lat or lon is out of range";
            case errc::doctype_forbidden:
                return "DOCTYPE and entity declarations are refused";
            case errc::too_many_elements:
                return "event has more elements than allowed";
            case errc::too_deep:
                return "event nests elements deeper than allowed";
            case errc::bytes_skipped:
                return "bytes outside any event were skipped";
            case errc::event_too_large:
                return "event exceeds the maximum event size";
            case errc::event_unterminated:
                return "event has no closing tag before the next event";
            case errc::stream_truncated:
                return "stream ended inside an unfinished event";
            case errc::link_exists:
                return "a link with this id already exists";
            case errc::link_not_found:
                return "no link with this id";
            case errc::pool_full:
                return "the pool holds its maximum number of links";
            case errc::shut_down:
                return "shutting down";
            case errc::queue_full:
                return "queue full, message dropped";
            case errc::link_unavailable:
                return "link unavailable: circuit breaker open";
            case errc::connect_timeout:
                return "connect timed out";
            case errc::first_byte_timeout:
                return "peer sent nothing within the first-byte timeout";
            case errc::handshake_timeout:
                return "TLS handshake timed out";
            case errc::pong_timeout:
                return "no pong or traffic before the liveness deadline";
            case errc::resolve_failed:
                return "host name did not resolve";
            case errc::peer_closed:
                return "peer closed the connection";
            case errc::flush_timeout:
                return "queued messages not written before the deadline";
            case errc::not_retryable:
                return "failure that retrying cannot fix";
            case errc::admission_timeout:
                return "admission wait timed out";
            case errc::admission_evicted:
                return "evicted from the admission queue";
            case errc::admission_queue_full:
                return "admission queue full";
            case errc::rate_limited:
                return "rate limited";
            case errc::cancelled:
                return "cancelled";
            case errc::duplicate:
                return "duplicate message";
            case errc::send_timeout:
                return "send timed out, message dropped";
        }
        return "unknown omnitak error " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& error_category() noexcept
{
    static const omnitak_category category;
    return category;
}

std::string_view to_string(errc code) noexcept
{
    switch (code) {
        case errc::not_well_formed:
            return "not_well_formed";
        case errc::root_not_event:
            return "root_not_event";
        case errc::missing_uid:
            return "missing_uid";
        case errc::missing_type:
            return "missing_type";
        case errc::bad_time:
            return "bad_time";
        case errc::bad_point:
            return "bad_point";
        case errc::point_out_of_range:
            return "point_out_of_range";
        case errc::doctype_forbidden:
            return "doctype_forbidden";
        case errc::too_many_elements:
            return "too_many_elements";
        case errc::too_deep:
            return "too_deep";
        case errc::bytes_skipped:
            return "bytes_skipped";
        case errc::event_too_large:
            return "event_too_large";
        case errc::event_unterminated:
            return "event_unterminated";
        case errc::stream_truncated:
            return "stream_truncated";
        case errc::link_exists:
            return "link_exists";
        case errc::link_not_found:
            return "link_not_found";
        case errc::pool_full:
            return "pool_full";
        case errc::shut_down:
            return "shut_down";
        case errc::queue_full:
            return "queue_full";
        case errc::link_unavailable:
            return "link_unavailable";
        case errc::connect_timeout:
            return "connect_timeout";
        case errc::first_byte_timeout:
            return "first_byte_timeout";
        case errc::handshake_timeout:
            return "handshake_timeout";
        case errc::pong_timeout:
            return "pong_timeout";
        case errc::resolve_failed:
            return "resolve_failed";
        case errc::peer_closed:
            return "peer_closed";
        case errc::flush_timeout:
            return "flush_timeout";
        case errc::not_retryable:
            return "not_retryable";
        case errc::admission_timeout:
            return "admission_timeout";
        case errc::admission_evicted:
            return "admission_evicted";
        case errc::admission_queue_full:
            return "admission_queue_full";
        case errc::rate_limited:
            return "rate_limited";
        case errc::cancelled:
            return "cancelled";
        case errc::duplicate:
            return "duplicate";
        case errc::send_timeout:
            return "send_timeout";
    }
    return "unknown";
}

bool is_fatal_link_error(const std::error_code& ec) noexcept
{
    if (!ec) return false;
    if (ec.category() == error_category()) {
        switch (static_cast<errc>(ec.value())) {
            case errc::connect_timeout:
            case errc::first_byte_timeout:
            case errc::handshake_timeout:
            case errc::pong_timeout:
            case errc::resolve_failed:
            case errc::peer_closed:
            case errc::not_retryable:
                return true;
            default:
                return false;
        }
    }
    // Any system or asio transport error (reset, refused, broken pipe, EOF) kills the link.
    // Asio reports socket errors in its own "asio.system" category, not std::system_category.
    return ec.category() == std::system_category() ||
           ec.category() == asio::error::get_system_category() ||
           ec.category() == asio::error::get_misc_category() ||
           ec.category() == asio::error::get_netdb_category() ||
           ec.category() == asio::error::get_addrinfo_category();
}

}  // namespace omnitak
