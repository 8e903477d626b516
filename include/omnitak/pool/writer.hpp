// Building the CoT events the library sends itself, and serialising a summary back to XML.
//
// Every function returns one event, from `<event` to `</event>`, with no XML declaration and
// no trailing newline: exactly the bytes a cot_message holds. Attribute values are written in
// double quotes with `&`, `<`, `>`, `"` and control characters escaped, so any string a peer
// sent survives a round trip. What to_xml writes parses back (parse_cot) to the same summary,
// apart from detail_offset/detail_size, which describe the new bytes.
//
// Thread safety: the functions are reentrant.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "omnitak/pool/message.hpp"

namespace omnitak {

/// A `t-x-c-t` ping: uid as given (ATAK uses "<device uid>-ping"), how `h-g-i-g-o`, time and
/// start `now`, stale `now + stale`, point 0,0 with unknown hae/ce/le, empty detail.
std::string make_ping(std::string_view uid, cot_time now,
                      std::chrono::seconds stale = std::chrono::seconds{10});

/// A `t-x-c-t-r` pong as TAK Server sends it: uid `takPong`, how `h-g-i-g-o`, stale now + 20 s.
std::string make_pong(cot_time now);

/// Serialises a summary. With `detail_xml` empty, a <detail> is built from the summary's
/// callsign, group and destinations (and omitted when they are all empty); otherwise
/// `detail_xml` is written verbatim in its place and must be a whole `<detail>` element (for
/// instance cot_message::detail()). `how` is omitted when empty; a point is written when present.
/// Times are written with millisecond or, when needed, microsecond fractions.
std::string to_xml(const cot_summary& s, std::string_view detail_xml = {});

/// Appends `text` to `out` escaped for a double-quoted XML attribute value.
void append_xml_attribute_escaped(std::string& out, std::string_view text);

}  // namespace omnitak
