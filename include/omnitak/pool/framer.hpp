// Incremental framing of a TAK streaming-XML byte stream ("protocol version 0") into events.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace omnitak {

struct framer_params {
    /// Largest event accepted, in bytes from `<event` to the end of `</event>`. Default 8 MiB
    /// (TAK Server's cap). Must be at least 64. A larger event is reported as event_too_large,
    /// its bytes are skipped, and framing resumes at the next `<event`.
    std::size_t max_event_bytes = 8u * 1024u * 1024u;
};

/// One problem found in the stream. `offset` is the stream offset (bytes since construction
/// or reset()) of the first byte concerned; `length` how many bytes it covers.
struct framer_problem {
    std::error_code code;  ///< an omnitak::errc framing code
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
};

/// What next() found.
struct frame_result {
    enum class kind { need_more, event, problem };
    kind what = kind::need_more;
    /// For kind::event: the event's bytes, valid until the next call to feed(), next(),
    /// finish() or reset().
    std::string_view event;
    std::uint64_t offset = 0;  ///< stream offset of the event's first byte
    framer_problem problem;    ///< for kind::problem
};

/// Statistics since construction or reset().
struct framer_stats {
    std::uint64_t bytes_in = 0;
    std::uint64_t events = 0;
    std::uint64_t bytes_skipped = 0;  ///< bytes that belonged to no emitted event
    std::uint64_t problems = 0;
};

}  // namespace omnitak
