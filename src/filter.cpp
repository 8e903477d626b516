#include "omnitak/pool/filter.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <ostream>
#include <sstream>
#include <stdexcept>

namespace omnitak {

namespace {

constexpr double deg_to_rad = std::numbers::pi / 180.0;

const std::vector<std::string> no_values;
const std::vector<type_pattern> no_patterns;
const std::vector<filter> no_children;

void require(bool ok, const char* what)
{
    if (!ok) throw std::invalid_argument(what);
}

bool valid_lat(double lat)
{
    return std::isfinite(lat) && lat >= -90.0 && lat <= 90.0;
}
bool valid_lon(double lon)
{
    return std::isfinite(lon) && lon >= -180.0 && lon <= 180.0;
}

// Values are kept sorted and unique for a binary search; the order they were given in is
// irrelevant to matching, and a sorted form prints deterministically.
std::vector<std::string> checked_values(std::vector<std::string> values, const char* what)
{
    require(!values.empty(), what);
    for (const auto& v : values)
        require(!v.empty(), what);
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
}

bool contains(const std::vector<std::string>& sorted, std::string_view value)
{
    if (value.empty()) return false;
    const auto it =
        std::lower_bound(sorted.begin(), sorted.end(), value,
                         [](const std::string& a, std::string_view b) { return a < b; });
    return it != sorted.end() && *it == value;
}

// Formats a double without trailing zeros ("45", "7.25"), so log lines stay short.
std::string number(double v)
{
    std::ostringstream os;
    os.precision(10);
    os << v;
    return os.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

double great_circle_km(double lat1, double lon1, double lat2, double lon2) noexcept
{
    const double phi1 = lat1 * deg_to_rad;
    const double phi2 = lat2 * deg_to_rad;
    const double dphi = phi2 - phi1;
    const double dlambda = (lon2 - lon1) * deg_to_rad;

    // Haversine: well conditioned for the short distances routing cares about. sin^2 of half
    // the longitude difference is the same for d and d +- 360, so the antimeridian needs no
    // special case.
    const double s1 = std::sin(dphi / 2.0);
    const double s2 = std::sin(dlambda / 2.0);
    const double a = s1 * s1 + std::cos(phi1) * std::cos(phi2) * s2 * s2;
    return 2.0 * earth_radius_km * std::asin(std::min(1.0, std::sqrt(a)));
}

// ---------------------------------------------------------------------------------------------

type_pattern::type_pattern(std::string_view pattern)
{
    if (!pattern.empty() && pattern.back() == '-') pattern.remove_suffix(1);
    if (pattern.empty()) throw std::invalid_argument("type pattern: must not be empty");
    text_ = std::string(pattern);

    std::size_t begin = 0;
    for (;;) {
        const std::size_t dash = pattern.find('-', begin);
        segments_.emplace_back(pattern.substr(begin, dash - begin));
        if (dash == std::string_view::npos) break;
        begin = dash + 1;
    }
}

bool type_pattern::matches(std::string_view type) const noexcept
{
    std::size_t begin = 0;
    for (const auto& want : segments_) {
        if (begin > type.size()) return false;  // the type has fewer segments
        std::size_t dash = type.find('-', begin);
        if (dash == std::string_view::npos) dash = type.size();
        const std::string_view have = type.substr(begin, dash - begin);
        if (want != "." && want != have) return false;
        begin = dash + 1;
    }
    return true;
}

bool type_matches(std::string_view pattern, std::string_view type)
{
    return type_pattern(pattern).matches(type);
}

// ---------------------------------------------------------------------------------------------

struct filter::node {
    filter::kind k = filter::kind::always;
    std::vector<std::string> values;
    std::vector<type_pattern> patterns;
    filter::circle c;
    filter::box b;
    // Precomputed for the radius test: the centre in radians and its cosine.
    double phi = 0.0, lambda = 0.0, cos_phi = 1.0;
    // The radius as the haversine "a" it corresponds to, so a match needs no asin.
    double max_a = 0.0;
    std::string name;
    filter::predicate fn;
    std::vector<filter> children;
};

namespace {

std::shared_ptr<filter::node> make_node(filter::kind k)
{
    auto n = std::make_shared<filter::node>();
    n->k = k;
    return n;
}

}  // namespace

filter::filter() : filter(always()) {}

filter filter::always()
{
    // One shared node serves every always() filter: it is immutable.
    static const std::shared_ptr<const node> shared = make_node(kind::always);
    return filter(shared);
}

filter filter::never()
{
    static const std::shared_ptr<const node> shared = make_node(kind::never);
    return filter(shared);
}

filter filter::by_type(std::vector<std::string> patterns)
{
    require(!patterns.empty(), "filter::by_type: patterns must not be empty");
    auto n = make_node(kind::type);
    for (const auto& p : patterns)
        n->patterns.emplace_back(p);
    for (const auto& p : n->patterns)
        n->values.push_back(p.text());
    return filter(std::move(n));
}

filter filter::by_callsign(std::vector<std::string> callsigns)
{
    auto n = make_node(kind::callsign);
    n->values = checked_values(std::move(callsigns),
                               "filter::by_callsign: callsigns must be non-empty strings");
    return filter(std::move(n));
}

filter filter::by_uid(std::vector<std::string> uids)
{
    auto n = make_node(kind::uid);
    n->values = checked_values(std::move(uids), "filter::by_uid: uids must be non-empty strings");
    return filter(std::move(n));
}

filter filter::by_group(std::vector<std::string> groups)
{
    auto n = make_node(kind::group);
    n->values =
        checked_values(std::move(groups), "filter::by_group: groups must be non-empty strings");
    return filter(std::move(n));
}

filter filter::within_radius(double lat, double lon, double radius_km)
{
    require(valid_lat(lat), "filter::within_radius: lat must be in [-90, 90]");
    require(valid_lon(lon), "filter::within_radius: lon must be in [-180, 180]");
    require(std::isfinite(radius_km) && radius_km > 0.0,
            "filter::within_radius: radius_km must be a finite number > 0");
    auto n = make_node(kind::geo_radius);
    n->c = {lat, lon, radius_km};
    n->phi = lat * deg_to_rad;
    n->lambda = lon * deg_to_rad;
    n->cos_phi = std::cos(n->phi);
    // d = 2 R asin(sqrt(a))  <=>  a = sin^2(d / 2R); beyond half the circumference every
    // point is inside.
    const double half_angle = radius_km / (2.0 * earth_radius_km);
    n->max_a = half_angle >= std::numbers::pi / 2.0 ? 1.0 : std::pow(std::sin(half_angle), 2);
    return filter(std::move(n));
}

filter filter::within_box(double south, double west, double north, double east)
{
    require(valid_lat(south), "filter::within_box: south must be in [-90, 90]");
    require(valid_lat(north), "filter::within_box: north must be in [-90, 90]");
    require(valid_lon(west), "filter::within_box: west must be in [-180, 180]");
    require(valid_lon(east), "filter::within_box: east must be in [-180, 180]");
    require(south <= north, "filter::within_box: south must not exceed north");
    auto n = make_node(kind::geo_box);
    n->b = {south, west, north, east};
    return filter(std::move(n));
}

filter filter::custom(std::string name, predicate fn)
{
    require(static_cast<bool>(fn), "filter::custom: predicate must not be empty");
    auto n = make_node(kind::custom);
    n->name = std::move(name);
    n->fn = std::move(fn);
    return filter(std::move(n));
}

filter filter::any_of(std::vector<filter> filters)
{
    auto n = make_node(kind::any_of);
    n->children = std::move(filters);
    return filter(std::move(n));
}

filter filter::all_of(std::vector<filter> filters)
{
    auto n = make_node(kind::all_of);
    n->children = std::move(filters);
    return filter(std::move(n));
}

filter filter::negate(filter f)
{
    auto n = make_node(kind::negation);
    n->children.push_back(std::move(f));
    return filter(std::move(n));
}

// ---------------------------------------------------------------------------------------------

bool filter::matches(const cot_message& message) const
{
    const node& n = *node_;
    const cot_summary& s = message.summary();
    switch (n.k) {
        case kind::always:
            return true;
        case kind::never:
            return false;
        case kind::type:
            for (const auto& p : n.patterns) {
                if (p.matches(s.type)) return true;
            }
            return false;
        case kind::callsign:
            return contains(n.values, s.callsign);
        case kind::uid:
            return contains(n.values, s.uid);
        case kind::group:
            return contains(n.values, s.group_name);
        case kind::geo_radius: {
            if (!s.point) return false;
            const double phi2 = s.point->lat * deg_to_rad;
            const double s1 = std::sin((phi2 - n.phi) / 2.0);
            const double s2 = std::sin((s.point->lon * deg_to_rad - n.lambda) / 2.0);
            const double a = s1 * s1 + n.cos_phi * std::cos(phi2) * s2 * s2;
            return a <= n.max_a;
        }
        case kind::geo_box: {
            if (!s.point) return false;
            const double lat = s.point->lat;
            const double lon = s.point->lon;
            if (lat < n.b.south || lat > n.b.north) return false;
            if (n.b.west <= n.b.east) return lon >= n.b.west && lon <= n.b.east;
            return lon >= n.b.west || lon <= n.b.east;  // crosses the antimeridian
        }
        case kind::custom:
            return n.fn(message);
        case kind::any_of:
            for (const auto& c : n.children) {
                if (c.matches(message)) return true;
            }
            return false;
        case kind::all_of:
            for (const auto& c : n.children) {
                if (!c.matches(message)) return false;
            }
            return true;
        case kind::negation:
            return !n.children.front().matches(message);
    }
    return false;
}

filter::kind filter::what() const noexcept
{
    return node_->k;
}

const std::vector<std::string>& filter::values() const noexcept
{
    switch (node_->k) {
        case kind::type:
        case kind::callsign:
        case kind::uid:
        case kind::group:
            return node_->values;
        default:
            return no_values;
    }
}

const std::vector<type_pattern>& filter::patterns() const noexcept
{
    return node_->k == kind::type ? node_->patterns : no_patterns;
}

filter::circle filter::geo_circle() const noexcept
{
    return node_->c;
}

filter::box filter::geo_box() const noexcept
{
    return node_->b;
}

const std::vector<filter>& filter::children() const noexcept
{
    switch (node_->k) {
        case kind::any_of:
        case kind::all_of:
        case kind::negation:
            return node_->children;
        default:
            return no_children;
    }
}

// ---------------------------------------------------------------------------------------------

std::string filter::to_string() const
{
    const node& n = *node_;
    auto list = [](const char* head, const auto& items, auto&& each) {
        std::string out = head;
        out += '(';
        bool first = true;
        for (const auto& item : items) {
            if (!first) out += ", ";
            first = false;
            out += each(item);
        }
        out += ')';
        return out;
    };
    auto same = [](const std::string& v) { return v; };
    auto nested = [](const filter& f) { return f.to_string(); };

    switch (n.k) {
        case kind::always:
            return "always";
        case kind::never:
            return "never";
        case kind::type:
            return list("type", n.values, same);
        case kind::callsign:
            return list("callsign", n.values, same);
        case kind::uid:
            return list("uid", n.values, same);
        case kind::group:
            return list("group", n.values, same);
        case kind::geo_radius:
            return "radius(" + number(n.c.lat) + ", " + number(n.c.lon) + ", " +
                   number(n.c.radius_km) + "km)";
        case kind::geo_box:
            return "box(S" + number(n.b.south) + ", W" + number(n.b.west) + ", N" +
                   number(n.b.north) + ", E" + number(n.b.east) + ")";
        case kind::custom:
            return "custom(" + n.name + ")";
        case kind::any_of:
            return list("any", n.children, nested);
        case kind::all_of:
            return list("all", n.children, nested);
        case kind::negation:
            return "not(" + n.children.front().to_string() + ")";
    }
    return "?";
}

std::ostream& operator<<(std::ostream& os, const filter& f)
{
    return os << f.to_string();
}

}  // namespace omnitak
