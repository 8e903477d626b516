// Routing filters: predicates on a parsed CoT message that decide which links receive it.
//
// A filter is a small immutable value. Copying one copies a reference-counted pointer to a
// shared, never-modified tree, so filters are cheap to copy and to keep in route tables.
// Filters read only the message's summary (uid, type, point, callsign, group), never its
// bytes, except custom filters, which see the whole message.
//
// Matching rules:
//  - type: a list of patterns; the filter matches when any pattern matches. A pattern is
//    compared segment by segment ('-' separates segments), case-sensitively, and is a prefix
//    on segment boundaries: "a-f-G" matches "a-f-G" and "a-f-G-U-C" but not "a-f-GX" nor
//    "a-f". A pattern segment "." matches any one segment ("a-.-A" matches "a-h-A-M-F").
//    A trailing '-' is accepted and ignored ("a-f-" is the same pattern as "a-f").
//  - callsign, uid, group: exact, case-sensitive equality with any value in the list
//    (summary().callsign, summary().uid, summary().group_name).
//  - geo radius: great-circle (haversine) distance from the centre to the event's point is at
//    most the radius, on a sphere of radius earth_radius_km. Events without a point never match.
//  - geo box: south <= lat <= north and the longitude lies in [west, east]; when west > east
//    the box crosses the antimeridian and covers [west, 180] and [-180, east]. Events without a
//    point never match.
//  - any_of / all_of / negation combine filters. any_of of nothing never matches; all_of of
//    nothing always matches.
//
// In a distributor, a link added without a filter receives every message (filter::always()).
//
// Thread safety: distinct objects: safe. Shared objects: every const member is safe from any
// number of threads, provided a custom predicate is itself safe to call concurrently (the
// distributor calls it from its worker threads).
//
// Errors: the factory functions throw std::invalid_argument for bad arguments (an empty
// pattern list, an empty pattern, a latitude outside [-90, 90], ...). Matching never throws
// unless a custom predicate does.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "omnitak/pool/message.hpp"

namespace omnitak {

/// Mean Earth radius (IUGG R1), kilometres. Haversine on a sphere of this radius is within
/// about 0.5 % of the WGS-84 ellipsoidal distance, far finer than any routing radius needs.
inline constexpr double earth_radius_km = 6371.0088;

/// Great-circle distance in kilometres between two points given in degrees (haversine).
/// Longitudes may differ by more than 180 degrees; the shorter way round is measured.
double great_circle_km(double lat1, double lon1, double lat2, double lon2) noexcept;

/// A compiled CoT type pattern (see the matching rules above).
///
/// Thread safety: immutable after construction; safe to share.
class type_pattern {
public:
    /// Throws std::invalid_argument when the pattern is empty or is only "-".
    explicit type_pattern(std::string_view pattern);

    /// True when `type` is matched: every pattern segment equals the type's segment at the
    /// same position (or is "."), and the type has at least as many segments. No allocation.
    bool matches(std::string_view type) const noexcept;

    /// The pattern as given, without a trailing '-'.
    const std::string& text() const noexcept { return text_; }
    /// The pattern's segments, in order.
    const std::vector<std::string>& segments() const noexcept { return segments_; }

private:
    std::string text_;
    std::vector<std::string> segments_;
};

/// Shorthand for type_pattern(pattern).matches(type), for one-off checks; throws like the
/// type_pattern constructor.
bool type_matches(std::string_view pattern, std::string_view type);

/// A routing predicate on a message. See the file comment for the rules.
class filter {
public:
    enum class kind : std::uint8_t {
        always,
        never,
        type,
        callsign,
        uid,
        group,
        geo_radius,
        geo_box,
        custom,
        any_of,
        all_of,
        negation,
    };

    /// A circle on the Earth's surface: centre in degrees, radius in kilometres.
    struct circle {
        double lat = 0.0;
        double lon = 0.0;
        double radius_km = 0.0;
    };

    /// A latitude/longitude box in degrees, edges included; west > east wraps the antimeridian.
    struct box {
        double south = 0.0;
        double west = 0.0;
        double north = 0.0;
        double east = 0.0;
    };

    using predicate = std::function<bool(const cot_message&)>;

    /// The default filter matches everything (same as always()).
    filter();

    static filter always();
    static filter never();
    /// Throws std::invalid_argument when `patterns` is empty or holds a bad pattern.
    static filter by_type(std::vector<std::string> patterns);
    /// Throws std::invalid_argument when `callsigns` is empty or holds an empty string.
    static filter by_callsign(std::vector<std::string> callsigns);
    /// Throws std::invalid_argument when `uids` is empty or holds an empty string.
    static filter by_uid(std::vector<std::string> uids);
    /// Matches summary().group_name. Throws std::invalid_argument when `groups` is empty or
    /// holds an empty string.
    static filter by_group(std::vector<std::string> groups);
    /// Throws std::invalid_argument when lat is outside [-90, 90], lon outside [-180, 180], or
    /// radius_km is not a finite number > 0.
    static filter within_radius(double lat, double lon, double radius_km);
    /// Throws std::invalid_argument when a latitude is outside [-90, 90], a longitude outside
    /// [-180, 180], or south > north.
    static filter within_box(double south, double west, double north, double east);
    /// `name` is what to_string() prints. Throws std::invalid_argument when `fn` is empty.
    static filter custom(std::string name, predicate fn);
    static filter any_of(std::vector<filter> filters);
    static filter all_of(std::vector<filter> filters);
    static filter negate(filter f);

    /// Evaluates the filter. Allocates nothing (custom predicates aside).
    bool matches(const cot_message& message) const;

    kind what() const noexcept;
    /// type, callsign, uid, group: the values given (patterns without a trailing '-').
    const std::vector<std::string>& values() const noexcept;
    /// type: the compiled patterns.
    const std::vector<type_pattern>& patterns() const noexcept;
    /// geo_radius only (zeros otherwise).
    circle geo_circle() const noexcept;
    /// geo_box only (zeros otherwise).
    box geo_box() const noexcept;
    /// any_of, all_of, negation: the operands.
    const std::vector<filter>& children() const noexcept;

    /// A one-line, human-readable form for logs, e.g. `all(type(a-f-G), radius(45,7,10km))`.
    std::string to_string() const;

    friend filter operator||(filter a, filter b) { return any_of({std::move(a), std::move(b)}); }
    friend filter operator&&(filter a, filter b) { return all_of({std::move(a), std::move(b)}); }
    friend filter operator!(filter a) { return negate(std::move(a)); }
    friend std::ostream& operator<<(std::ostream& os, const filter& f);

    struct node;  // the implementation's tree node; opaque to users

private:
    explicit filter(std::shared_ptr<const node> n) : node_(std::move(n)) {}
    std::shared_ptr<const node> node_;
};

}  // namespace omnitak
