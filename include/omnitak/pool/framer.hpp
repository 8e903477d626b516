// Incremental framing of a TAK streaming-XML byte stream ("protocol version 0") into events.
//
// The framer is byte-oriented: it only ever cuts at ASCII delimiters, so a multi-byte UTF-8
// character split across reads comes out whole. It does not parse XML; it finds where each
// top-level <event> starts and ends, and hands the bytes to the parser (parser.hpp).
//
// Between events it skips, silently (the bytes are counted in framer_stats::bytes_skipped but
// are not a problem): XML whitespace, UTF-8 BOMs, XML declarations `<?xml ...?>`, comments
// `<!-- ... -->` and `<auth ...>...</auth>` (or `<auth .../>`) elements. Any other byte outside
// an event is junk: each contiguous run of junk is reported once, as errc::bytes_skipped with
// its offset and length, when the run ends (at the next construct above, or at finish()).
//
// Inside an event it tracks comments, CDATA sections and processing instructions, so
// `</event>` inside them does not end the event, and it accepts `</event >` (whitespace before
// `>`) and a self-closing `<event .../>`. An event ends at the first `</event>` outside those,
// whatever the nesting. If a new `<event` start tag or an `<?xml` declaration appears first,
// the current event cannot be completed: it is reported as errc::event_unterminated and
// framing continues with what follows. An event longer than framer_params::max_event_bytes
// is reported as errc::event_too_large and its bytes are skipped until its `</event>`, or the
// next `<event` / `<?xml`. After finish(), an unfinished event is reported as
// errc::stream_truncated; it is never emitted.
//
// The result sequence depends only on the bytes, not on how they were split into feed() calls.
// Scanning resumes where it stopped, so the total work is linear in the stream length. Junk is
// counted and dropped as it is scanned; the buffer holds at most the pending part of one event
// or construct (bounded by max_event_bytes), an already-consumed prefix no larger than that,
// and the last feed. A run of junk with no '<' in it (a TLS ClientHello, say) is never kept.
// Junk runs are reported when they end; framer_stats counts their bytes as they are seen.
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
/// or reset()) of the first byte concerned; `length` how many bytes it covers. For
/// event_too_large the length is max_event_bytes + 1 (the event is at least that long; the rest
/// of it is skipped and counted in framer_stats::bytes_skipped).
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
/// At any time bytes_in == event_bytes + bytes_skipped + stream_framer::buffered().
struct framer_stats {
    std::uint64_t bytes_in = 0;
    std::uint64_t events = 0;
    std::uint64_t bytes_skipped = 0;  ///< bytes that belonged to no emitted event
    std::uint64_t problems = 0;
    std::uint64_t event_bytes = 0;  ///< bytes of the emitted events
    std::uint64_t junk_bytes = 0;   ///< bytes reported in bytes_skipped problems
};

/// Turns a TAK streaming-XML byte stream into events (pull API).
///
/// Usage: feed() each read, then call next() until it returns need_more. An event's bytes are
/// a view into the framer's buffer, valid until the next call to feed(), next(), finish() or
/// reset(). At end of stream call finish(), then next() until need_more.
///
/// Thread safety: distinct objects are independent; a shared object is not thread-safe (one
/// framer per TCP session, used by one coroutine/strand at a time).
///
/// Errors: problems in the stream are results of kind::problem (see the header comment);
/// nothing is thrown after construction. The constructor throws std::invalid_argument when
/// params.max_event_bytes < 64.
class stream_framer {
public:
    explicit stream_framer(framer_params params = {});
    stream_framer(const stream_framer& other);
    stream_framer(stream_framer&& other) noexcept;
    stream_framer& operator=(const stream_framer& other);
    stream_framer& operator=(stream_framer&& other) noexcept;
    ~stream_framer() = default;

    /// Appends bytes that arrived (copied). May be called with any split, including an empty
    /// view. Feeding after finish() continues the same stream (the end-of-stream mark is
    /// cleared).
    void feed(std::string_view bytes);

    /// Like feed(), without copying up front: the bytes must stay valid and unchanged until
    /// next() has returned need_more, or until the next feed(), finish() or reset(). The
    /// framer then copies only the unfinished tail it still needs. Suits the usual read loop
    /// (read into a buffer, feed, next() until need_more, read again); never pass a temporary.
    void feed_borrowed(std::string_view bytes);

    /// The next event or problem, or need_more when the bytes fed so far hold nothing more.
    frame_result next();

    /// Marks the end of the stream: next() then reports whatever is left unfinished.
    void finish();

    /// Forgets everything, statistics included, and starts a new stream at offset 0.
    void reset();

    const framer_stats& stats() const noexcept { return stats_; }

    /// Bytes held in the buffer that are not yet accounted for (part of an unfinished event,
    /// declaration or comment, or undecided lookahead).
    std::size_t buffered() const noexcept { return data_.size() - consumed_; }

    const framer_params& params() const noexcept { return params_; }

    /// True when nothing is pending: the framer is between events, with no unfinished event,
    /// construct or run of junk. buffered() == 0 is not enough: a junk run not yet reported
    /// and the rest of an oversized event being skipped hold no bytes. An idle framer may be
    /// replaced by a fresh one without changing which events and problems come out (only
    /// offsets and stats restart).
    bool idle() const noexcept { return state_ == state::outside && buffered() == 0; }

private:
    enum class state : std::uint8_t {
        outside,        // between events
        junk,           // inside a run of junk bytes
        declaration,    // inside <?xml ...?> between events
        comment,        // inside <!-- ... --> between events
        auth,           // inside <auth>...</auth> between events
        event_tag,      // inside the <event ...> start tag
        event_body,     // inside an event's content
        event_comment,  // inside a comment within an event
        event_cdata,    // inside a CDATA section within an event
        event_pi,       // inside a processing instruction within an event
    };
    enum class match : std::uint8_t { no, yes, more };

    match starts(std::size_t i, std::string_view literal) const noexcept;
    match starts_tag(std::size_t i, std::string_view open) const noexcept;
    match end_tag(std::size_t i, std::string_view close, std::size_t& end) const noexcept;
    void skip_to(std::size_t i) noexcept;
    void begin_junk(std::size_t i) noexcept;
    frame_result end_junk(std::size_t i);
    frame_result problem(std::error_code code, std::uint64_t offset, std::uint64_t length);
    bool event_too_long() const noexcept;
    frame_result too_large();
    frame_result emit(std::size_t end);
    frame_result scan_outside();
    frame_result scan_construct();
    frame_result scan_event();
    void settle();
    void append(std::string_view bytes, bool borrow);
    void copy_scalars(const stream_framer& other) noexcept;

    framer_params params_;
    framer_stats stats_;
    std::string buf_;           // pending bytes, when they are not the caller's
    std::string_view data_;     // what is scanned: buf_, or the bytes just fed
    std::uint64_t base_ = 0;    // stream offset of data_[0]
    std::size_t consumed_ = 0;  // bytes of data_ already accounted for
    std::size_t pos_ = 0;       // where scanning resumes
    std::size_t start_ = 0;     // start of the current event or construct
    std::uint64_t junk_start_ = 0;
    state state_ = state::outside;
    char quote_ = 0;        // open quote in the event start tag
    bool discard_ = false;  // the current event was too large: skip it
    bool eof_ = false;
};

}  // namespace omnitak
