// Minimal JSON output for omnitak-cot. Peer text is untrusted: strings are escaped per RFC 8259
// and invalid UTF-8 is replaced by U+FFFD, so every line is valid JSON whatever the input.
#pragma once

#include <string>
#include <string_view>

namespace omnitak::tool {

void append_json_string(std::string& out, std::string_view text);

/// null when `text` is empty, else a JSON string.
void append_json_string_or_null(std::string& out, std::string_view text);

/// Shortest round-trip form; null for NaN or infinity (JSON has no such numbers).
void append_json_number(std::string& out, double v);

}  // namespace omnitak::tool
