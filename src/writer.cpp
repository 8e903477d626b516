// CoT writer: small, allocation-light string building; numbers in shortest round-trip form.
#include "omnitak/pool/writer.hpp"

#include <charconv>

#include "omnitak/pool/parser.hpp"

namespace omnitak {
namespace {

void append_number(std::string& out, double v)
{
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc{} ? static_cast<std::size_t>(end - buf) : 0);
}

void append_attribute(std::string& out, std::string_view name, std::string_view value)
{
    out += ' ';
    out += name;
    out += "=\"";
    append_xml_attribute_escaped(out, value);
    out += '"';
}

void append_time(std::string& out, std::string_view name, cot_time t)
{
    append_attribute(out, name, format_cot_time(t, true));
}

void append_point(std::string& out, const cot_point& p)
{
    out += "<point lat=\"";
    append_number(out, p.lat);
    out += "\" lon=\"";
    append_number(out, p.lon);
    out += "\" hae=\"";
    append_number(out, p.hae);
    out += "\" ce=\"";
    append_number(out, p.ce);
    out += "\" le=\"";
    append_number(out, p.le);
    out += "\"/>";
}

std::string_view dest_attribute(cot_destination::kind by)
{
    switch (by) {
        case cot_destination::kind::uid:
            return "uid";
        case cot_destination::kind::callsign:
            return "callsign";
        case cot_destination::kind::group:
            return "group";
        case cot_destination::kind::mission:
            return "mission";
    }
    return "uid";
}

std::string control_event(std::string_view uid, std::string_view type, cot_time now,
                          std::chrono::seconds stale)
{
    cot_summary s;
    s.uid = uid;
    s.type = type;
    s.how = "h-g-i-g-o";
    s.time = now;
    s.start = now;
    s.stale = now + stale;
    s.point = cot_point{0.0, 0.0, 9999999.0, 9999999.0, 9999999.0};
    return to_xml(s, "<detail/>");
}

}  // namespace

void append_xml_attribute_escaped(std::string& out, std::string_view text)
{
    for (const char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    // Character references survive attribute-value normalisation.
                    char buf[8];
                    const int v = static_cast<unsigned char>(c);
                    out += "&#";
                    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
                    out.append(buf, static_cast<std::size_t>(end - buf));
                    out += ';';
                } else {
                    out += c;
                }
        }
    }
}

std::string make_ping(std::string_view uid, cot_time now, std::chrono::seconds stale)
{
    return control_event(uid, "t-x-c-t", now, stale);
}

std::string make_pong(cot_time now)
{
    return control_event("takPong", "t-x-c-t-r", now, std::chrono::seconds{20});
}

std::string to_xml(const cot_summary& s, std::string_view detail_xml)
{
    std::string out;
    out.reserve(256 + detail_xml.size() + s.uid.size() + s.callsign.size());

    out += "<event version=\"2.0\"";
    append_attribute(out, "uid", s.uid);
    append_attribute(out, "type", s.type);
    if (!s.how.empty()) append_attribute(out, "how", s.how);
    append_time(out, "time", s.time);
    append_time(out, "start", s.start);
    append_time(out, "stale", s.stale);
    out += '>';

    if (s.point) append_point(out, *s.point);

    if (!detail_xml.empty()) {
        out += detail_xml;
    } else if (!s.callsign.empty() || !s.group_name.empty() || !s.group_role.empty() ||
               !s.destinations.empty()) {
        out += "<detail>";
        if (!s.callsign.empty()) {
            out += "<contact";
            append_attribute(out, "callsign", s.callsign);
            out += "/>";
        }
        if (!s.group_name.empty() || !s.group_role.empty()) {
            out += "<__group";
            append_attribute(out, "name", s.group_name);
            append_attribute(out, "role", s.group_role);
            out += "/>";
        }
        if (!s.destinations.empty()) {
            out += "<marti>";
            for (const cot_destination& d : s.destinations) {
                out += "<dest";
                append_attribute(out, dest_attribute(d.by), d.value);
                out += "/>";
            }
            out += "</marti>";
        }
        out += "</detail>";
    }

    out += "</event>";
    return out;
}

}  // namespace omnitak
