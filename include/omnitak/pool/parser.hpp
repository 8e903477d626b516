// Parsing one CoT event's bytes into a cot_summary, and wrapping it as a message.
//
// What is strict (the event is rejected, with the code in brackets):
// - The bytes must be one well-formed XML document (pugixml) [not_well_formed]. Any markup
//   declaration other than a comment or CDATA section (`<!DOCTYPE`, `<!ENTITY`, `<!ELEMENT`,
//   `<!ATTLIST`, in any case, anywhere in the bytes) [doctype_forbidden]. This is checked before
//   the XML parser runs, so entity expansion never happens.
// - More than parse_params::max_elements elements [too_many_elements]; nesting deeper than
//   parse_params::max_depth, the root counting as depth 1 [too_deep]. Also checked before the
//   XML parser runs.
// - The document element must be named exactly `event` (no namespace prefix) [root_not_event].
// - `uid` and `type` must be present and non-empty [missing_uid, missing_type].
// - `time`, `start` and `stale` must be present and be xs:dateTime values
//   `YYYY-MM-DDThh:mm:ss[.f{1,9}][Z|+hh:mm|-hh:mm]` with a real calendar date, hour 0-23,
//   minute 0-59, second 0-59 [bad_time]. Zone offsets are applied (the result is UTC).
// - When `<point>` is present: `lat` and `lon` must be present and be finite decimal numbers
//   [bad_point], within [-90, 90] and [-180, 180] [point_out_of_range].
//
// What is lenient (accepted as real clients send it):
// - Single or double quotes, whitespace around `=`, any attribute order, extra attributes
//   (`version`, `access`, `qos`, `opex`, vendor ones) which are ignored.
// - With or without an XML declaration; its `encoding` is ignored and the bytes are read as
//   UTF-8 (WinTAK-era senders declare utf-16 over 8-bit bytes). A leading UTF-8 BOM.
// - `how` missing or empty (summary how is then empty); `<detail>` before `<point>`; no
//   `<detail>`; no `<point>` (summary point is nullopt); `<point>` without hae/ce/le (they
//   default to 9999999, "unknown"); hae/ce/le that are not finite numbers (real senders write
//   `nan`, `NaN` or an empty value) are read as 9999999 too.
// - Times: 0 to 9 fraction digits (truncated to microseconds), no zone designator (read as
//   UTC), surrounding whitespace. Numbers: surrounding whitespace and a leading `+`.
// - Attribute values the summary keeps are read as an XML processor reads them: the predefined
//   entities and character references are replaced, and a tab, CR, LF or CR LF becomes one
//   space. A reference that does not stand for a character XML allows (`&#0;`, a surrogate,
//   an unknown `&name;`) is kept as written.
// - CDATA, comments, processing instructions, text and unknown elements anywhere (the detail
//   is kept byte for byte in the message, see cot_summary::detail_offset).
// - Any Unicode in attribute values and text; bytes are never re-encoded.
//
// Summary fields read from <detail>: the first `contact@callsign`, the first
// `__group@name`/`@role`, and every `marti/dest` (its `uid`, `callsign`, `group` and `mission`
// attributes, each present one giving a destination, in that order).
//
// Thread safety: the functions are reentrant; distinct calls may run concurrently on any
// threads (each thread keeps its own scratch parser state).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

#include "omnitak/pool/error.hpp"
#include "omnitak/pool/message.hpp"

namespace omnitak {

/// Limits applied before the XML parser runs, so hostile input costs at most one linear scan.
struct parse_params {
    /// Most elements one event may contain, the root included. Default 4096. 0 means no limit.
    std::size_t max_elements = 4096;
    /// Deepest nesting allowed; the <event> element is depth 1. Default 32. 0 means no limit.
    std::size_t max_depth = 32;
};

/// Parses one event's bytes (optionally preceded by an XML declaration, BOM, whitespace or
/// comments) into `out`. Returns {} on success or an omnitak::errc parse code (see the header
/// comment). On failure `out` is left in an unspecified but valid state.
std::error_code parse_cot(std::string_view event_bytes, cot_summary& out,
                          const parse_params& params = {});

/// Parses `event_bytes` and wraps them with their summary in an immutable message. Returns
/// nullptr and sets `ec` on failure; clears `ec` on success.
message_ptr make_message(std::string event_bytes, std::error_code& ec, link_id origin = no_link,
                         const parse_params& params = {});

/// Parses an xs:dateTime (see the header comment for the accepted forms) into `out`.
/// Returns false, leaving `out` unchanged, when the text is not acceptable.
bool parse_cot_time(std::string_view text, cot_time& out) noexcept;

/// Formats a time as `YYYY-MM-DDThh:mm:ss.fffZ` (milliseconds, truncated) when `micro` is
/// false, else with 6 fraction digits when the time has sub-millisecond precision.
std::string format_cot_time(cot_time t, bool micro = false);

}  // namespace omnitak
