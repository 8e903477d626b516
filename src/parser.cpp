// CoT event parser: pugixml in situ (parse_minimal) on a per-thread scratch copy decides
// whether the event is well-formed; the limits are checked by counting '<' or, for large or
// dense events, by a linear pre-scan that also refuses markup declarations and finds the raw
// <detail> range. The summary is then read from the few elements it needs: pugixml's tree
// finds them, and their attributes are read straight from the caller's bytes.
#include "omnitak/pool/parser.hpp"

#include <pugixml.hpp>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>

namespace omnitak {
namespace {

constexpr std::size_t npos = std::string_view::npos;

bool is_xml_space(char c) noexcept
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view trim(std::string_view s) noexcept
{
    while (!s.empty() && is_xml_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_xml_space(s.back()))
        s.remove_suffix(1);
    return s;
}

// What the pre-scan learned about the bytes.
struct prescan_result {
    std::error_code ec;
    std::size_t detail_begin = npos;  // '<' of the first <detail> child of the root
    std::size_t detail_end = npos;    // one past the '>' that closes it
};

// Finds the '>' that ends the tag whose name starts at `p`, skipping quoted attribute values.
// Returns npos when the tag is not closed.
std::size_t find_tag_end(std::string_view s, std::size_t p) noexcept
{
    const std::size_t n = s.size();
    while (p < n) {
        const char c = s[p];
        if (c == '>') return p;
        if (c == '"' || c == '\'') {
            const std::size_t q = s.find(c, p + 1);
            if (q == npos) return npos;
            p = q + 1;
            continue;
        }
        ++p;
    }
    return npos;
}

// One pass over the bytes: '<' by '<'. Structure errors that pugixml reports anyway are left to
// it (the scan just stops); what must never reach pugixml is refused here.
prescan_result prescan(std::string_view s, const parse_params& params)
{
    prescan_result r;
    const std::size_t n = s.size();
    std::size_t depth = 0;
    std::size_t elements = 0;
    std::size_t detail_depth = 0;  // depth of the open <detail>, 0 when none is open
    bool root_closed = false;
    std::size_t p = 0;

    while (p < n) {
        const void* hit = std::memchr(s.data() + p, '<', n - p);
        if (hit == nullptr) break;
        p = static_cast<std::size_t>(static_cast<const char*>(hit) - s.data());
        if (p + 1 >= n) break;
        const char c = s[p + 1];

        // Comments, CDATA and declarations.
        if (c == '!') {
            if (s.compare(p, 4, "<!--") == 0) {
                const std::size_t q = s.find("-->", p + 4);
                if (q == npos) break;
                p = q + 3;
                continue;
            }
            if (s.compare(p, 9, "<![CDATA[") == 0) {
                const std::size_t q = s.find("]]>", p + 9);
                if (q == npos) break;
                p = q + 3;
                continue;
            }
            r.ec = errc::doctype_forbidden;
            return r;
        }

        // Processing instructions, the XML declaration included.
        if (c == '?') {
            const std::size_t q = s.find("?>", p + 2);
            if (q == npos) break;
            p = q + 2;
            continue;
        }

        // End tags.
        if (c == '/') {
            const std::size_t gt = s.find('>', p + 2);
            if (gt == npos) break;
            if (depth == 0) break;
            if (detail_depth != 0 && depth == detail_depth) {
                r.detail_end = gt + 1;
                detail_depth = 0;
            }
            --depth;
            if (depth == 0) root_closed = true;
            p = gt + 1;
            continue;
        }

        // Start tags (or a stray '<', which pugixml will refuse).
        const std::size_t gt = find_tag_end(s, p + 1);
        if (gt == npos) break;
        if (root_closed) {
            r.ec = errc::not_well_formed;  // a second document element
            return r;
        }
        ++elements;
        if (params.max_elements != 0 && elements > params.max_elements) {
            r.ec = errc::too_many_elements;
            return r;
        }
        const bool self_closing = s[gt - 1] == '/';
        const std::size_t this_depth = depth + 1;
        if (params.max_depth != 0 && this_depth > params.max_depth) {
            r.ec = errc::too_deep;
            return r;
        }
        if (this_depth == 2 && r.detail_begin == npos && s.compare(p + 1, 6, "detail") == 0 &&
            p + 7 < n && (is_xml_space(s[p + 7]) || s[p + 7] == '>' || s[p + 7] == '/')) {
            r.detail_begin = p;
            if (self_closing)
                r.detail_end = gt + 1;
            else
                detail_depth = this_depth;
        }
        if (!self_closing) depth = this_depth;
        if (self_closing && this_depth == 1) root_closed = true;
        p = gt + 1;
    }
    return r;
}

// ---- numbers and times --------------------------------------------------------------------

// Exact for plain decimals of up to 15 digits: both the digits and the power of ten are
// exact doubles, so one IEEE division rounds correctly (Clinger's fast path).
bool parse_plain_decimal(std::string_view text, double& out) noexcept
{
    static constexpr double powers[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                        1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    const char* p = text.data();
    const char* const end = p + text.size();
    bool negative = false;
    if (p != end && (*p == '-' || *p == '+')) negative = *p++ == '-';
    std::uint64_t mantissa = 0;
    int digits = 0;
    int fraction = 0;
    while (p != end && *p >= '0' && *p <= '9') {
        mantissa = mantissa * 10 + static_cast<std::uint64_t>(*p++ - '0');
        ++digits;
    }
    if (digits == 0) return false;
    if (p != end && *p == '.') {
        ++p;
        while (p != end && *p >= '0' && *p <= '9') {
            mantissa = mantissa * 10 + static_cast<std::uint64_t>(*p++ - '0');
            ++fraction;
        }
        if (fraction == 0) return false;
    }
    if (p != end || digits + fraction > 15) return false;
    const double v = static_cast<double>(mantissa) / powers[fraction];
    out = negative ? -v : v;
    return true;
}

bool parse_number(std::string_view text, double& out) noexcept
{
    if (parse_plain_decimal(text, out)) return true;
    std::string_view s = trim(text);
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    if (s.empty()) return false;
    double v = 0.0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(v)) return false;
    out = v;
    return true;
}

bool digits(std::string_view s, std::size_t pos, std::size_t count, int& out) noexcept
{
    if (pos + count > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + count; ++i) {
        const char c = s[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

}  // namespace

bool parse_cot_time(std::string_view text, cot_time& out) noexcept
{
    using namespace std::chrono;
    const std::string_view s = trim(text);

    // YYYY-MM-DDThh:mm:ss
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
    if (s.size() < 19) return false;
    if (!digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, h) ||
        s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, se))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return false;
    static constexpr int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > month_days[mo - 1] || (mo == 2 && d == 29 && !leap)) return false;

    // Optional fraction: 1 to 9 digits, truncated to microseconds.
    std::size_t p = 19;
    std::int64_t micros = 0;
    if (p < s.size() && s[p] == '.') {
        ++p;
        std::size_t count = 0;
        while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
            if (count < 6) micros = micros * 10 + (s[p] - '0');
            ++count;
            ++p;
        }
        if (count == 0 || count > 9) return false;
        for (std::size_t i = count; i < 6; ++i)
            micros *= 10;
    }

    // Optional zone: Z or +hh:mm / -hh:mm (absent = UTC).
    std::int64_t offset_minutes = 0;
    if (p < s.size()) {
        if ((s[p] == 'Z' || s[p] == 'z') && p + 1 == s.size()) {
            p = s.size();
        } else if ((s[p] == '+' || s[p] == '-') && p + 6 == s.size()) {
            int oh = 0, om = 0;
            if (!digits(s, p + 1, 2, oh) || s[p + 3] != ':' || !digits(s, p + 4, 2, om) ||
                oh > 14 || om > 59)
                return false;
            offset_minutes = oh * 60 + om;
            if (s[p] == '-') offset_minutes = -offset_minutes;
        } else {
            return false;
        }
    }

    // Days since 1970-01-01, proleptic Gregorian: the same calendar format_cot_time reads back.
    const std::int64_t days =
        std::chrono::sys_days{std::chrono::year{y} / std::chrono::month{static_cast<unsigned>(mo)} /
                              std::chrono::day{static_cast<unsigned>(d)}}
            .time_since_epoch()
            .count();

    const std::int64_t seconds_since_epoch =
        days * 86400 + h * 3600 + mi * 60 + se - offset_minutes * 60;

    // A zone offset may not carry the instant outside four-digit years in UTC.
    constexpr std::int64_t first = -62167219200;       // 0000-01-01T00:00:00Z
    constexpr std::int64_t after_last = 253402300800;  // 10000-01-01T00:00:00Z
    if (seconds_since_epoch < first || seconds_since_epoch >= after_last) return false;
    out = cot_time{microseconds{seconds_since_epoch * 1000000 + micros}};
    return true;
}

std::string format_cot_time(cot_time t, bool micro)
{
    using namespace std::chrono;
    const auto days = floor<std::chrono::days>(t);
    const year_month_day ymd{days};
    const hh_mm_ss hms{t - days};
    const auto us = hms.subseconds().count();

    char buf[40];
    const int y = static_cast<int>(ymd.year());
    int n = std::snprintf(
        buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", y, static_cast<unsigned>(ymd.month()),
        static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
        static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()));
    if (micro && us % 1000 != 0)
        n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ".%06lldZ",
                           static_cast<long long>(us));
    else
        n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ".%03lldZ",
                           static_cast<long long>(us / 1000));
    return std::string(buf, static_cast<std::size_t>(n));
}

namespace {

// True when the NUL-terminated `name` equals `literal`. Stops at the first difference, so it
// never reads past the name's terminator; the compiler unrolls it for short literals.
template <std::size_t N>
bool name_equals(const char* name, const char (&literal)[N]) noexcept
{
    for (std::size_t i = 0; i < N; ++i) {
        if (name[i] != literal[i]) return false;
    }
    return true;
}

template <std::size_t N>
bool name_is(const pugi::xml_node& node, const char (&literal)[N]) noexcept
{
    return name_equals(node.name(), literal);
}

void append_utf8(std::string& out, std::uint32_t cp)
{
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// Decodes one reference starting at the '&' in `s`. Appends what it stands for and returns the
// number of bytes it used, or 0 when it is not a predefined entity or a valid character
// reference (such text is kept as written).
std::size_t decode_reference(std::string_view s, std::string& out)
{
    static constexpr std::pair<std::string_view, char> predefined[] = {
        {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&apos;", '\''}, {"&quot;", '"'}};
    for (const auto& [text, c] : predefined) {
        if (s.starts_with(text)) {
            out += c;
            return text.size();
        }
    }
    if (!s.starts_with("&#")) return 0;
    const bool hex = s.size() > 2 && s[2] == 'x';
    const std::size_t first = hex ? 3 : 2;
    const std::size_t semicolon = s.find(';', first);
    if (semicolon == npos || semicolon == first || semicolon - first > 8) return 0;
    std::uint32_t cp = 0;
    const auto [end, ec] =
        std::from_chars(s.data() + first, s.data() + semicolon, cp, hex ? 16 : 10);
    if (ec != std::errc{} || end != s.data() + semicolon) return 0;
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    append_utf8(out, cp);
    return semicolon + 1;
}

// pugixml runs with parse_minimal, which leaves attribute values as written: most values need
// nothing, and decoding only the few the summary keeps is cheaper than decoding them all. This
// does what an XML processor does to an attribute value (XML 1.0, 2.11 and 3.3.3): a CR LF
// pair, a CR, a LF or a tab becomes one space; predefined entities and character references
// are replaced. Other `&` text is kept as written.
void assign_attribute_value(std::string& out, std::string_view raw)
{
    std::size_t special = 0;
    while (special < raw.size()) {
        const char c = raw[special];
        if (c == '&' || c == '\t' || c == '\n' || c == '\r') break;
        ++special;
    }
    out.assign(raw.data(), special);
    for (std::size_t i = special; i < raw.size();) {
        const char c = raw[i];
        if (c == '&') {
            if (const std::size_t used = decode_reference(raw.substr(i), out)) {
                i += used;
                continue;
            }
            out += c;
        } else if (c == '\r') {
            out += ' ';
            if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
        } else if (c == '\t' || c == '\n') {
            out += ' ';
        } else {
            out += c;
        }
        ++i;
    }
}

// A raw attribute value ready for the number and time parsers: the value itself when it holds
// no reference (whitespace is trimmed by those parsers), else its decoded form in `scratch`.
std::string_view attribute_text(std::string_view raw, std::string& scratch)
{
    if (raw.find('&') == npos) return raw;
    assign_attribute_value(scratch, raw);
    return scratch;
}

// Walks the attributes of one start tag in the caller's bytes, values as written. pugixml's
// tree is used to find the few elements the summary reads; their attributes are read here
// instead of through pugixml's accessors, which cost a library call per name, value and step.
// Only used on tags pugixml has accepted, so the syntax is known to be good; bounds are still
// checked on every step.
class start_tag_attributes {
public:
    // `lt` is the offset of the tag's '<'.
    start_tag_attributes(std::string_view bytes, std::size_t lt) noexcept
        : p_(bytes.data() + std::min(lt + 1, bytes.size())), end_(bytes.data() + bytes.size())
    {
        while (p_ != end_ && !is_xml_space(*p_) && *p_ != '>' && *p_ != '/')
            ++p_;
    }

    bool next(std::string_view& name, std::string_view& value) noexcept
    {
        while (p_ != end_ && is_xml_space(*p_))
            ++p_;
        if (p_ == end_ || *p_ == '>' || *p_ == '/') return false;
        const char* const name_begin = p_;
        while (p_ != end_ && *p_ != '=' && !is_xml_space(*p_))
            ++p_;
        name = std::string_view(name_begin, static_cast<std::size_t>(p_ - name_begin));
        while (p_ != end_ && *p_ != '"' && *p_ != '\'')
            ++p_;
        if (p_ == end_) return false;
        const char quote = *p_++;
        const void* close = std::memchr(p_, quote, static_cast<std::size_t>(end_ - p_));
        if (close == nullptr) return false;
        const char* const value_end = static_cast<const char*>(close);
        value = std::string_view(p_, static_cast<std::size_t>(value_end - p_));
        p_ = value_end + 1;
        return true;
    }

private:
    const char* p_;
    const char* end_;
};

// The caller's bytes and pugixml's in-situ copy of them: same offsets, so an element's name
// pointer into the copy gives the position of its start tag in the original.
struct parsed_source {
    std::string_view bytes;
    const char* copy;

    start_tag_attributes attributes_of(const pugi::xml_node& element) const noexcept
    {
        return {bytes, static_cast<std::size_t>(element.name() - copy) - 1};
    }
};

// The value of the first attribute of each of `names` in the tag (first one wins), nullopt for
// those absent, in one pass over the tag.
template <std::size_t N>
std::array<std::optional<std::string_view>, N> first_values(
    start_tag_attributes attributes, const std::array<std::string_view, N>& names) noexcept
{
    std::array<std::optional<std::string_view>, N> found{};
    for (std::string_view name, value; attributes.next(name, value);) {
        for (std::size_t i = 0; i < N; ++i) {
            if (name != names[i]) continue;
            if (!found[i]) found[i] = value;
            break;
        }
    }
    return found;
}

std::error_code read_point(const parsed_source& src, const pugi::xml_node& point, cot_point& out)
{
    static constexpr std::array<std::string_view, 5> names{"lat", "lon", "hae", "ce", "le"};
    const auto [lat, lon, hae, ce, le] = first_values(src.attributes_of(point), names);

    std::string scratch;
    if (!lat || !lon || !parse_number(attribute_text(*lat, scratch), out.lat) ||
        !parse_number(attribute_text(*lon, scratch), out.lon))
        return errc::bad_point;
    if (out.lat < -90.0 || out.lat > 90.0 || out.lon < -180.0 || out.lon > 180.0)
        return errc::point_out_of_range;

    // Real senders write "nan", "NaN" or nothing for unknown values: they mean "unknown".
    for (const auto& [text, field] :
         {std::pair{hae, &out.hae}, std::pair{ce, &out.ce}, std::pair{le, &out.le}}) {
        if (text && !parse_number(attribute_text(*text, scratch), *field)) *field = cot_point{}.hae;
    }
    return {};
}

void read_marti(const parsed_source& src, const pugi::xml_node& marti, cot_summary& out)
{
    using kind = cot_destination::kind;
    // Indexed by cot_destination::kind.
    static constexpr std::array<std::string_view, 4> names{"uid", "callsign", "group", "mission"};
    for (pugi::xml_node dest = marti.child("dest"); dest; dest = dest.next_sibling("dest")) {
        // One destination per present attribute, in this order whatever the document's.
        const auto values = first_values(src.attributes_of(dest), names);
        for (const kind by : {kind::uid, kind::callsign, kind::group, kind::mission}) {
            const auto& value = values[static_cast<std::size_t>(by)];
            if (!value) continue;
            cot_destination& dest_out = out.destinations.emplace_back();
            dest_out.by = by;
            assign_attribute_value(dest_out.value, *value);
        }
    }
}

// xml_node::child(name) walks the children inside pugixml, which costs less than a library
// call per child and step from here.
void read_detail(const parsed_source& src, const pugi::xml_node& detail, cot_summary& out)
{
    if (const pugi::xml_node contact = detail.child("contact")) {
        static constexpr std::array<std::string_view, 1> names{"callsign"};
        const auto [callsign] = first_values(src.attributes_of(contact), names);
        assign_attribute_value(out.callsign, callsign.value_or(std::string_view()));
    }
    if (const pugi::xml_node group = detail.child("__group")) {
        static constexpr std::array<std::string_view, 2> names{"name", "role"};
        const auto [name, role] = first_values(src.attributes_of(group), names);
        assign_attribute_value(out.group_name, name.value_or(std::string_view()));
        assign_attribute_value(out.group_role, role.value_or(std::string_view()));
    }
    for (pugi::xml_node marti = detail.child("marti"); marti; marti = marti.next_sibling("marti"))
        read_marti(src, marti, out);
}

// Per-thread scratch: the in-situ copy and the document (its memory pages are reused).
struct scratch {
    std::string buffer;
    pugi::xml_document doc;
};

scratch& thread_scratch()
{
    thread_local scratch s;
    return s;
}

// Events up to this size go straight to pugixml: the tree it builds for them stays small
// whatever they hold (pugixml parses without recursion), and the limits are checked after it,
// by counting '<' or, when that is not enough, by the exact pre-scan. Larger events are
// pre-scanned first, so hostile input never makes a large tree.
constexpr std::size_t prescan_threshold = 64 * 1024;

// True when the bytes hold a `<!` that opens neither a comment nor a CDATA section. Used to
// name the reason when pugixml refuses a document.
bool has_markup_declaration(std::string_view s) noexcept
{
    for (std::size_t p = s.find("<!"); p != npos; p = s.find("<!", p + 2)) {
        if (s.compare(p, 4, "<!--") == 0) {
            p = s.find("-->", p + 4);
            if (p == npos) return false;
            continue;
        }
        if (s.compare(p, 9, "<![CDATA[") == 0) {
            p = s.find("]]>", p + 9);
            if (p == npos) return false;
            continue;
        }
        return true;
    }
    return false;
}

// Number of '<' in `s`; counting may stop once it exceeds `limit`.
std::size_t count_angles(std::string_view s, std::size_t limit) noexcept
{
    std::size_t n = 0;
    std::size_t i = 0;
#if defined(__SSE2__)
    // Sixteen bytes at a time, with per-byte counters summed every 255 blocks (before they
    // could overflow).
    const __m128i angle = _mm_set1_epi8('<');
    const __m128i zero = _mm_setzero_si128();
    while (i + 16 <= s.size() && n <= limit) {
        __m128i counters = zero;
        const std::size_t stop = std::min(s.size(), i + 255 * 16);
        for (; i + 16 <= stop; i += 16) {
            const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
            counters = _mm_sub_epi8(counters, _mm_cmpeq_epi8(chunk, angle));
        }
        const __m128i sums = _mm_sad_epu8(counters, zero);
        n += static_cast<std::size_t>(_mm_cvtsi128_si32(sums)) +
             static_cast<std::size_t>(_mm_extract_epi16(sums, 4));
    }
    if (n > limit) return n;
#endif
    for (; i < s.size(); ++i)
        n += s[i] == '<' ? 1 : 0;
    return n;
}

// If s[0, e) ends with `close`, optional whitespace, '>' and optional whitespace, moves `e`
// back to where `close` starts and returns true.
bool strip_close_tag(std::string_view s, std::size_t& e, std::string_view close) noexcept
{
    std::size_t i = e;
    while (i > 0 && is_xml_space(s[i - 1]))
        --i;
    if (i == 0 || s[i - 1] != '>') return false;
    --i;
    while (i > 0 && is_xml_space(s[i - 1]))
        --i;
    if (i < close.size() || s.compare(i - close.size(), close.size(), close) != 0) return false;
    e = i - close.size();
    return true;
}

// Where the raw <detail> element lies in `s` (the bytes pugixml parsed in situ, so element
// names point into them). Returns false when a comment, CDATA section or processing
// instruction near its end makes the quick answer unsafe; the caller then pre-scans.
bool locate_detail(std::string_view s, const char* base, const pugi::xml_node& detail,
                   std::size_t& begin, std::size_t& end)
{
    begin = static_cast<std::size_t>(detail.name() - base) - 1;

    // The usual shape: the bytes end with "</detail>" and "</event>", only whitespace around.
    if (!detail.next_sibling()) {
        std::size_t e = s.size();
        if (strip_close_tag(s, e, "</event") && strip_close_tag(s, e, "</detail") && e > begin) {
            end = s.find('>', e) + 1;
            return true;
        }
    }

    // Self-closing <detail .../>: its start tag ends in "/>".
    const std::size_t gt = find_tag_end(s, begin + 1);
    if (gt == npos) return false;
    if (s[gt - 1] == '/') {
        end = gt + 1;
        return true;
    }

    // Otherwise the last "</detail" between its last element child and whatever follows it.
    pugi::xml_node last;
    for (pugi::xml_node c = detail.last_child(); c; c = c.previous_sibling()) {
        if (c.type() == pugi::node_element) {
            last = c;
            break;
        }
    }
    pugi::xml_node after = detail.next_sibling();
    while (after && after.type() != pugi::node_element)
        after = after.next_sibling();
    const std::size_t from = last ? static_cast<std::size_t>(last.name() - base) : gt;
    const std::size_t bound = after ? static_cast<std::size_t>(after.name() - base) - 1 : s.size();
    const std::string_view region = s.substr(from, bound - from);
    if (region.find("<!") != npos || region.find("<?") != npos) return false;
    const std::size_t close = region.rfind("</detail");
    if (close == npos) return false;
    const std::size_t close_gt = s.find('>', from + close);
    if (close_gt == npos) return false;
    end = close_gt + 1;
    return true;
}

// The event's own attributes, in one pass (first occurrence wins).
std::error_code read_event_attributes(const parsed_source& src, const pugi::xml_node& event,
                                      cot_summary& out)
{
    static constexpr std::array<std::string_view, 6> names{"uid",  "type",  "how",
                                                           "time", "start", "stale"};
    const auto [uid, type, how, time, start, stale] = first_values(src.attributes_of(event), names);

    if (!uid || uid->empty()) return errc::missing_uid;
    if (!type || type->empty()) return errc::missing_type;
    assign_attribute_value(out.uid, *uid);
    assign_attribute_value(out.type, *type);
    assign_attribute_value(out.how, how.value_or(std::string_view()));
    if (!time || !start || !stale) return errc::bad_time;
    std::string scratch;
    if (!parse_cot_time(attribute_text(*time, scratch), out.time)) return errc::bad_time;
    // Senders usually write `start` as a copy of `time`: same text, same instant.
    if (*start == *time)
        out.start = out.time;
    else if (!parse_cot_time(attribute_text(*start, scratch), out.start))
        return errc::bad_time;
    if (!parse_cot_time(attribute_text(*stale, scratch), out.stale)) return errc::bad_time;
    out.control = classify_control(out.type);
    return {};
}

}  // namespace

std::error_code parse_cot(std::string_view event_bytes, cot_summary& out,
                          const parse_params& params)
{
    // Large input: refuse what must never reach the XML parser before it builds a tree.
    bool prescanned = event_bytes.size() > prescan_threshold;
    prescan_result pre;
    if (prescanned) {
        pre = prescan(event_bytes, params);
        if (pre.ec) return pre.ec;
    }

    // pugixml in situ on a private copy: the caller's bytes stay untouched. DOCTYPE nodes are
    // kept so that they can be refused; pugixml never expands entities it does not know.
    scratch& sc = thread_scratch();
    sc.buffer.assign(event_bytes);
    // parse_minimal: values stay as written (the few the summary keeps are decoded by
    // assign_attribute_value), which saves pugixml a pass over every value in the event.
    constexpr unsigned options = pugi::parse_minimal | pugi::parse_doctype;
    const pugi::xml_parse_result result = sc.doc.load_buffer_inplace(
        sc.buffer.data(), sc.buffer.size(), options, pugi::encoding_utf8);
    if (!result)
        return has_markup_declaration(event_bytes) ? errc::doctype_forbidden
                                                   : errc::not_well_formed;

    // Exactly one document element, no DOCTYPE.
    pugi::xml_node event;
    for (pugi::xml_node n = sc.doc.first_child(); n; n = n.next_sibling()) {
        if (n.type() == pugi::node_doctype) return errc::doctype_forbidden;
        if (n.type() != pugi::node_element) continue;
        if (event) return errc::not_well_formed;
        event = n;
    }
    if (!event) return errc::not_well_formed;
    if (!prescanned) {
        // Every element takes at least one '<' and nesting d deep takes at least 2d - 1, so
        // counting them often proves the limits hold without the exact pre-scan.
        std::size_t allowed = std::numeric_limits<std::size_t>::max();
        if (params.max_elements != 0) allowed = params.max_elements;
        if (params.max_depth != 0) allowed = std::min(allowed, 2 * params.max_depth - 1);
        if (count_angles(event_bytes, allowed) > allowed) {
            // The exact count: one pass over the bytes, cheaper than walking the tree, and it
            // finds the detail's range on the way.
            pre = prescan(event_bytes, params);
            if (pre.ec) return pre.ec;
            prescanned = true;
        }
    }
    if (!name_is(event, "event")) return errc::root_not_event;

    // Reset field by field: a reused summary keeps its strings' capacity.
    out.uid.clear();
    out.type.clear();
    out.how.clear();
    out.time = out.start = out.stale = cot_time{};
    out.point.reset();
    out.callsign.clear();
    out.group_name.clear();
    out.group_role.clear();
    out.destinations.clear();
    out.control = cot_control::none;
    out.detail_offset = 0;
    out.detail_size = 0;
    const parsed_source src{event_bytes, sc.buffer.data()};
    if (auto ec = read_event_attributes(src, event, out)) return ec;

    // The first <point> and the first <detail>.
    if (const pugi::xml_node point = event.child("point")) {
        cot_point p;
        if (auto ec = read_point(src, point, p)) return ec;
        out.point = p;
    }
    const pugi::xml_node detail = event.child("detail");
    const bool have_detail = !detail.empty();
    if (have_detail) read_detail(src, detail, out);

    if (have_detail) {
        std::size_t begin = 0, end = 0;
        if (!prescanned && !locate_detail(event_bytes, sc.buffer.data(), detail, begin, end)) {
            pre = prescan(event_bytes, params);
            prescanned = true;
        }
        if (prescanned) {
            begin = pre.detail_begin;
            end = pre.detail_end;
        }
        if (begin != npos && end != npos && end > begin) {
            out.detail_offset = static_cast<std::uint32_t>(begin);
            out.detail_size = static_cast<std::uint32_t>(end - begin);
        }
    }
    return {};
}

message_ptr make_message(std::string event_bytes, std::error_code& ec, link_id origin,
                         const parse_params& params)
{
    cot_summary summary;
    ec = parse_cot(event_bytes, summary, params);
    if (ec) return nullptr;
    return std::make_shared<const cot_message>(std::move(event_bytes), std::move(summary), origin);
}

}  // namespace omnitak
