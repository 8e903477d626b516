// The CoT message model: immutable event bytes shared by every recipient, plus a summary of
// the fields routing, dedup and health need, parsed once where the message enters.
//
// Thread safety: a cot_message is immutable after construction; distinct and shared objects
// are safe to read from any number of threads. message_ptr is a shared_ptr<const ...>, so
// copying it between threads follows shared_ptr's rules.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace omnitak {

/// Identifies a link in a pool. Chosen by the application; 0 means "no link" (a message the
/// application submitted itself).
using link_id = std::uint64_t;
inline constexpr link_id no_link = 0;

/// CoT timestamps: UTC, microsecond resolution (finer fractions are truncated).
using cot_time = std::chrono::sys_time<std::chrono::microseconds>;

/// <point lat lon hae ce le/>. ce/le/hae default to 9999999 ("unknown") when absent.
struct cot_point {
    double lat = 0.0;        ///< degrees, [-90, 90]
    double lon = 0.0;        ///< degrees, [-180, 180]
    double hae = 9999999.0;  ///< height above ellipsoid, metres
    double ce = 9999999.0;   ///< circular error, metres
    double le = 9999999.0;   ///< linear error, metres
};

/// One <marti><dest .../></marti> target: directed delivery instead of broadcast.
struct cot_destination {
    enum class kind : std::uint8_t { uid, callsign, group, mission };
    kind by = kind::uid;
    std::string value;
    friend bool operator==(const cot_destination&, const cot_destination&) = default;
};

/// Control events the library itself understands.
enum class cot_control : std::uint8_t {
    none,                  ///< ordinary traffic
    ping,                  ///< t-x-c-t
    pong,                  ///< t-x-c-t-r
    negotiation_offer,     ///< t-x-takp-v
    negotiation_request,   ///< t-x-takp-q
    negotiation_response,  ///< t-x-takp-r
};

/// Classifies a CoT type string as a control event (exact match on the types above).
cot_control classify_control(std::string_view type) noexcept;

/// The fields of an event that routing, dedup and health read. Entities are decoded; text
/// from peers is untrusted and is never interpreted beyond these fields.
struct cot_summary {
    std::string uid;
    std::string type;
    std::string how;  ///< may be empty (lenient)
    cot_time time{};
    cot_time start{};
    cot_time stale{};
    std::optional<cot_point> point;             ///< nullopt when the event had no <point>
    std::string callsign;                       ///< detail/contact@callsign, empty if absent
    std::string group_name;                     ///< detail/__group@name, empty if absent
    std::string group_role;                     ///< detail/__group@role, empty if absent
    std::vector<cot_destination> destinations;  ///< detail/marti/dest, in document order
    cot_control control = cot_control::none;

    /// Byte range of the whole <detail ...>...</detail> element within the event bytes
    /// (size 0 when there is no detail). Kept as a range so the detail is never copied.
    std::uint32_t detail_offset = 0;
    std::uint32_t detail_size = 0;
};

/// An immutable CoT event: the exact bytes received (or built) plus their summary.
class cot_message {
public:
    cot_message(
        std::string bytes, cot_summary summary, link_id origin = no_link,
        std::chrono::steady_clock::time_point received_at = std::chrono::steady_clock::now())
        : bytes_(std::move(bytes)),
          summary_(std::move(summary)),
          origin_(origin),
          received_at_(received_at)
    {
    }

    /// The event's bytes exactly as framed: from `<event` to the end of `</event>`.
    std::string_view bytes() const noexcept { return bytes_; }
    const cot_summary& summary() const noexcept { return summary_; }

    /// The raw <detail>...</detail> element, byte for byte (empty when absent).
    std::string_view detail() const noexcept
    {
        return std::string_view(bytes_).substr(summary_.detail_offset, summary_.detail_size);
    }

    /// The link this message arrived on, or no_link for the application's own messages.
    link_id origin() const noexcept { return origin_; }
    /// When the message entered the process (framed, or submitted); used for latency.
    std::chrono::steady_clock::time_point received_at() const noexcept { return received_at_; }

private:
    std::string bytes_;
    cot_summary summary_;
    link_id origin_;
    std::chrono::steady_clock::time_point received_at_;
};

using message_ptr = std::shared_ptr<const cot_message>;

}  // namespace omnitak
