// Stream framer: a resumable scanner over a buffer that holds only the unfinished tail.
#include "omnitak/pool/framer.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "omnitak/pool/error.hpp"

namespace omnitak {
namespace {

bool is_xml_space(char c) noexcept
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool is_tag_delimiter(char c) noexcept
{
    return is_xml_space(c) || c == '>' || c == '/';
}

// Position of the first `c` at or after `from`, or `size` when none.
std::size_t find_char(std::string_view s, std::size_t from, char c) noexcept
{
    if (from >= s.size()) return s.size();
    const void* hit = std::memchr(s.data() + from, c, s.size() - from);
    return hit == nullptr ? s.size()
                          : static_cast<std::size_t>(static_cast<const char*>(hit) - s.data());
}

constexpr std::string_view bom = "\xEF\xBB\xBF";

}  // namespace

stream_framer::stream_framer(framer_params params) : params_(params)
{
    if (params_.max_event_bytes < 64)
        throw std::invalid_argument("framer_params::max_event_bytes must be at least 64");
}

// data_ may point into buf_, which moves with the object: copies and moves re-point it.
stream_framer::stream_framer(const stream_framer& other)
{
    *this = other;
}

stream_framer::stream_framer(stream_framer&& other) noexcept
{
    *this = std::move(other);
}

stream_framer& stream_framer::operator=(const stream_framer& other)
{
    if (this == &other) return *this;
    const bool owned = other.data_.data() == other.buf_.data();
    buf_ = other.buf_;
    data_ = owned ? std::string_view(buf_) : other.data_;
    copy_scalars(other);
    return *this;
}

stream_framer& stream_framer::operator=(stream_framer&& other) noexcept
{
    if (this == &other) return *this;
    const bool owned = other.data_.data() == other.buf_.data();
    buf_ = std::move(other.buf_);
    data_ = owned ? std::string_view(buf_) : other.data_;
    copy_scalars(other);
    return *this;
}

void stream_framer::copy_scalars(const stream_framer& other) noexcept
{
    params_ = other.params_;
    stats_ = other.stats_;
    base_ = other.base_;
    consumed_ = other.consumed_;
    pos_ = other.pos_;
    start_ = other.start_;
    junk_start_ = other.junk_start_;
    state_ = other.state_;
    quote_ = other.quote_;
    discard_ = other.discard_;
    eof_ = other.eof_;
}

void stream_framer::feed(std::string_view bytes)
{
    append(bytes, false);
}

void stream_framer::feed_borrowed(std::string_view bytes)
{
    append(bytes, true);
}

void stream_framer::append(std::string_view bytes, bool borrow)
{
    eof_ = false;
    if (bytes.empty()) return;
    stats_.bytes_in += bytes.size();

    // Nothing pending: start afresh, on the caller's bytes when allowed to borrow them.
    if (data_.size() == consumed_) {
        base_ += data_.size();
        pos_ = 0;
        start_ = 0;
        consumed_ = 0;
        if (borrow) {
            buf_.clear();
            data_ = bytes;
        } else {
            buf_.assign(bytes);
            data_ = buf_;
        }
        return;
    }

    // Pending bytes live in buf_. The accounted-for prefix is dropped only once it is at least
    // half the buffer, so each byte is moved O(1) times on average.
    settle();
    if (consumed_ != 0 && consumed_ >= buf_.size() / 2) {
        buf_.erase(0, consumed_);
        base_ += consumed_;
        pos_ -= consumed_;
        start_ = start_ >= consumed_ ? start_ - consumed_ : 0;
        consumed_ = 0;
    }
    buf_.append(bytes);
    data_ = buf_;
}

// Moves the bytes still needed into buf_, so the caller may reuse what it fed.
void stream_framer::settle()
{
    if (data_.data() == buf_.data()) return;
    base_ += consumed_;
    pos_ -= consumed_;
    start_ = start_ >= consumed_ ? start_ - consumed_ : 0;
    buf_.assign(data_.substr(consumed_));
    consumed_ = 0;
    data_ = buf_;
}

void stream_framer::finish()
{
    eof_ = true;
}

void stream_framer::reset()
{
    const framer_params params = params_;
    *this = stream_framer(params);
}

// ---- small helpers ---------------------------------------------------------------------------

stream_framer::match stream_framer::starts(std::size_t i, std::string_view literal) const noexcept
{
    const std::size_t avail = data_.size() - i;
    if (avail >= literal.size())
        return data_.compare(i, literal.size(), literal) == 0 ? match::yes : match::no;
    if (data_.compare(i, avail, literal, 0, avail) != 0) return match::no;
    return eof_ ? match::no : match::more;
}

stream_framer::match stream_framer::starts_tag(std::size_t i, std::string_view open) const noexcept
{
    const match m = starts(i, open);
    if (m != match::yes) return m;
    // At the end of the stream a bare "<event" is an event cut short, not junk.
    const std::size_t j = i + open.size();
    if (j >= data_.size()) return eof_ ? match::yes : match::more;
    return is_tag_delimiter(data_[j]) ? match::yes : match::no;
}

// `close` is e.g. "</event"; on yes, `end` is one past the '>' (whitespace may precede it).
stream_framer::match stream_framer::end_tag(std::size_t i, std::string_view close,
                                            std::size_t& end) const noexcept
{
    const match m = starts(i, close);
    if (m != match::yes) return m;
    std::size_t j = i + close.size();
    while (j < data_.size() && is_xml_space(data_[j]))
        ++j;
    if (j >= data_.size()) return eof_ ? match::no : match::more;
    if (data_[j] != '>') return match::no;
    end = j + 1;
    return match::yes;
}

void stream_framer::skip_to(std::size_t i) noexcept
{
    if (i <= consumed_) return;
    stats_.bytes_skipped += i - consumed_;
    consumed_ = i;
}

void stream_framer::begin_junk(std::size_t i) noexcept
{
    state_ = state::junk;
    junk_start_ = base_ + i;
    pos_ = i;
}

frame_result stream_framer::problem(std::error_code code, std::uint64_t offset,
                                    std::uint64_t length)
{
    ++stats_.problems;
    frame_result r;
    r.what = frame_result::kind::problem;
    r.offset = offset;
    r.problem = framer_problem{code, offset, length};
    return r;
}

frame_result stream_framer::end_junk(std::size_t i)
{
    skip_to(i);
    state_ = state::outside;
    pos_ = i;
    const std::uint64_t length = base_ + i - junk_start_;
    stats_.junk_bytes += length;
    return problem(errc::bytes_skipped, junk_start_, length);
}

// True when the scan position is already more than the cap past the event's start, so the
// event (which ends after it) cannot fit.
bool stream_framer::event_too_long() const noexcept
{
    return !discard_ && pos_ - start_ >= params_.max_event_bytes;
}

frame_result stream_framer::too_large()
{
    // Skipping needs no start-tag tracking: scan on as content until the event's end or the
    // next event or declaration.
    discard_ = true;
    if (state_ == state::event_tag) {
        state_ = state::event_body;
        quote_ = 0;
    }
    return problem(errc::event_too_large, base_ + start_, params_.max_event_bytes + 1);
}

frame_result stream_framer::emit(std::size_t end)
{
    pos_ = end;
    state_ = state::outside;
    if (discard_) {
        discard_ = false;
        skip_to(end);
        return next();
    }
    if (end - start_ > params_.max_event_bytes) {
        skip_to(end);
        return problem(errc::event_too_large, base_ + start_, params_.max_event_bytes + 1);
    }
    frame_result r;
    r.what = frame_result::kind::event;
    r.event = std::string_view(data_).substr(start_, end - start_);
    r.offset = base_ + start_;
    ++stats_.events;
    stats_.event_bytes += end - start_;
    consumed_ = end;
    return r;
}

// ---- between events ------------------------------------------------------------------------

frame_result stream_framer::scan_outside()
{
    const std::size_t n = data_.size();
    while (pos_ < n) {
        const char c = data_[pos_];
        if (state_ == state::outside && is_xml_space(c)) {
            ++pos_;
            skip_to(pos_);
            continue;
        }
        if (state_ == state::outside && c == bom[0]) {
            const match m = starts(pos_, bom);
            if (m == match::more) return {};
            if (m == match::yes) {
                pos_ += bom.size();
                skip_to(pos_);
                continue;
            }
            begin_junk(pos_);
            continue;
        }
        if (c != '<') {
            if (state_ == state::outside) begin_junk(pos_);
            pos_ = find_char(data_, pos_ + 1, '<');
            skip_to(pos_);
            continue;
        }

        // A '<': which construct starts here, if any?
        const match ev = starts_tag(pos_, "<event");
        const match decl = starts(pos_, "<?xml");
        const match decl_end = decl != match::yes ? decl
                               : pos_ + 5 >= n    ? (eof_ ? match::no : match::more)
                               : (is_xml_space(data_[pos_ + 5]) || data_[pos_ + 5] == '?')
                                   ? match::yes
                                   : match::no;
        const match auth = starts_tag(pos_, "<auth");
        const match comment = starts(pos_, "<!--");
        const bool any_yes = ev == match::yes || decl_end == match::yes || auth == match::yes ||
                             comment == match::yes;
        if (!any_yes && (ev == match::more || decl_end == match::more || auth == match::more ||
                         comment == match::more))
            return {};
        if (!any_yes) {
            if (state_ == state::outside) begin_junk(pos_);
            pos_ = find_char(data_, pos_ + 1, '<');
            skip_to(pos_);
            continue;
        }
        if (state_ == state::junk) return end_junk(pos_);

        start_ = pos_;
        if (ev == match::yes) {
            state_ = state::event_tag;
            quote_ = 0;
            pos_ += 6;
            return scan_event();
        }
        state_ = decl_end == match::yes ? state::declaration
                 : auth == match::yes   ? state::auth
                                        : state::comment;
        pos_ += decl_end == match::yes ? 5 : auth == match::yes ? 5 : 4;
        return scan_construct();
    }

    // Out of bytes.
    if (eof_ && state_ == state::junk) return end_junk(n);
    return {};
}

// Declarations, comments and <auth> between events: skipped whole when they end within the
// cap, otherwise their first byte becomes junk and scanning goes on after it.
frame_result stream_framer::scan_construct()
{
    const std::size_t n = data_.size();
    bool broken = false;  // a '<' where none may be: the construct cannot be completed

    if (state_ == state::comment) {
        const std::size_t q = data_.find("-->", pos_);
        if (q != std::string_view::npos && q + 3 - start_ <= params_.max_event_bytes) {
            pos_ = q + 3;
            skip_to(pos_);
            state_ = state::outside;
            return scan_outside();
        }
        pos_ = q != std::string_view::npos ? q : (n >= 2 ? std::max(pos_, n - 2) : pos_);
        broken = q != std::string_view::npos;
    } else if (state_ == state::declaration) {
        for (;;) {
            while (pos_ < n && data_[pos_] != '<' && data_[pos_] != '>')
                ++pos_;
            if (pos_ >= n) break;
            if (data_[pos_] == '<') {
                broken = true;
                break;
            }
            if (data_[pos_ - 1] == '?') {
                if (pos_ + 1 - start_ > params_.max_event_bytes) {
                    broken = true;
                    break;
                }
                ++pos_;
                skip_to(pos_);
                state_ = state::outside;
                return scan_outside();
            }
            ++pos_;
        }
    } else {  // auth
        // A self-closing <auth .../>: the start tag's first '>' is preceded by '/'.
        std::size_t tag_end = start_ + 5;
        while (tag_end < n && data_[tag_end] != '<' && data_[tag_end] != '>')
            ++tag_end;
        if (tag_end >= n) {
            pos_ = n;
        } else if (data_[tag_end] == '>' && data_[tag_end - 1] == '/') {
            if (tag_end + 1 - start_ > params_.max_event_bytes) {
                broken = true;
            } else {
                pos_ = tag_end + 1;
                skip_to(pos_);
                state_ = state::outside;
                return scan_outside();
            }
        } else {
            pos_ = std::max(pos_, tag_end);
            for (;;) {
                pos_ = find_char(data_, pos_, '<');
                if (pos_ >= n) break;
                std::size_t end = 0;
                const match close = end_tag(pos_, "</auth", end);
                if (close == match::more) return {};
                if (close == match::yes) {
                    if (end - start_ > params_.max_event_bytes) {
                        broken = true;
                        break;
                    }
                    pos_ = end;
                    skip_to(pos_);
                    state_ = state::outside;
                    return scan_outside();
                }
                const match ev = starts_tag(pos_, "<event");
                const match decl = starts(pos_, "<?xml");
                if (ev == match::more || decl == match::more) return {};
                if (ev == match::yes || decl == match::yes) {
                    broken = true;
                    break;
                }
                ++pos_;
            }
        }
    }

    if (broken || eof_ || pos_ - start_ >= params_.max_event_bytes) {
        begin_junk(start_);
        pos_ = start_ + 1;
        return scan_outside();
    }
    return {};
}

// ---- inside an event -----------------------------------------------------------------------

frame_result stream_framer::scan_event()
{
    const std::size_t n = data_.size();
    for (;;) {
        if (discard_) skip_to(pos_);
        switch (state_) {
            case state::event_tag: {
                // The root start tag: find its '>' (quotes respected) to spot `<event .../>`.
                // A tag reaching the cap makes the event too large right there, however the
                // bytes were split.
                const std::size_t stop = std::min(n, start_ + params_.max_event_bytes);
                while (pos_ < stop) {
                    const char c = data_[pos_];
                    if (quote_ != 0) {
                        if (c == quote_) quote_ = 0;
                        if (c == '<') break;
                    } else if (c == '"' || c == '\'') {
                        quote_ = c;
                    } else if (c == '>' || c == '<') {
                        break;
                    }
                    ++pos_;
                }
                if (pos_ >= stop) {
                    if (event_too_long()) return too_large();
                    break;
                }
                if (data_[pos_] == '>') {
                    if (data_[pos_ - 1] == '/' && quote_ == 0) return emit(pos_ + 1);
                    ++pos_;
                }
                quote_ = 0;
                state_ = state::event_body;
                continue;
            }
            case state::event_comment:
            case state::event_cdata:
            case state::event_pi: {
                const std::string_view close = state_ == state::event_comment ? "-->"
                                               : state_ == state::event_cdata ? "]]>"
                                                                              : "?>";
                const std::size_t q = data_.find(close, pos_);
                if (q == std::string_view::npos) {
                    if (n >= close.size() - 1) pos_ = std::max(pos_, n - (close.size() - 1));
                    break;
                }
                pos_ = q + close.size();
                state_ = state::event_body;
                continue;
            }
            case state::event_body: {
                // Fast path: most '<' open or close an ordinary child element; skip those
                // without leaving the loop. Anything that could matter (comments, CDATA,
                // processing instructions, "<e...", "</e...", the buffer's end) falls through.
                {
                    const char* const base = data_.data();
                    const char* const end = base + n;
                    const std::size_t limit =
                        discard_ ? n : std::min(n, start_ + params_.max_event_bytes);
                    const char* p = base + pos_;
                    for (;;) {
                        const void* hit = std::memchr(p, '<', static_cast<std::size_t>(end - p));
                        if (hit == nullptr) {
                            p = end;
                            break;
                        }
                        p = static_cast<const char*>(hit);
                        if (static_cast<std::size_t>(p - base) >= limit || end - p < 3) break;
                        const char c1 = p[1];
                        if (c1 == '!' || c1 == '?' || c1 == 'e' || (c1 == '/' && p[2] == 'e'))
                            break;
                        ++p;
                    }
                    pos_ = static_cast<std::size_t>(p - base);
                }
                if (pos_ >= n) break;
                if (event_too_long()) return too_large();
                if (pos_ + 1 >= n) {
                    if (eof_) {
                        pos_ = n;
                        break;
                    }
                    return {};
                }
                const char c = data_[pos_ + 1];
                match m = match::no;
                if (c == '/') {
                    std::size_t end = 0;
                    m = end_tag(pos_, "</event", end);
                    if (m == match::yes) return emit(end);
                } else if (c == '!') {
                    m = starts(pos_, "<!--");
                    if (m == match::yes) {
                        state_ = state::event_comment;
                        pos_ += 4;
                        continue;
                    }
                    if (m == match::no) {
                        m = starts(pos_, "<![CDATA[");
                        if (m == match::yes) {
                            state_ = state::event_cdata;
                            pos_ += 9;
                            continue;
                        }
                    }
                } else if (c == '?') {
                    m = starts(pos_, "<?xml");
                    if (m == match::yes) {
                        if (pos_ + 5 >= n) {
                            m = eof_ ? match::no : match::more;
                        } else if (is_xml_space(data_[pos_ + 5]) || data_[pos_ + 5] == '?') {
                            // A new document starts: this event cannot be completed.
                            const std::size_t at = pos_;
                            state_ = state::outside;
                            if (discard_) {
                                discard_ = false;
                                skip_to(at);
                                return next();
                            }
                            skip_to(at);
                            return problem(errc::event_unterminated, base_ + start_, at - start_);
                        } else {
                            m = match::no;
                        }
                    }
                    if (m == match::no) {
                        state_ = state::event_pi;
                        pos_ += 2;
                        continue;
                    }
                } else if (c == 'e') {
                    m = starts_tag(pos_, "<event");
                    if (m == match::yes) {
                        const std::size_t at = pos_;
                        const std::size_t old_start = start_;
                        const bool was_discarding = discard_;
                        skip_to(at);
                        discard_ = false;
                        start_ = at;
                        state_ = state::event_tag;
                        quote_ = 0;
                        pos_ = at + 6;
                        if (was_discarding) continue;
                        return problem(errc::event_unterminated, base_ + old_start, at - old_start);
                    }
                }
                if (m == match::more) return {};
                ++pos_;
                continue;
            }
            default:
                return {};
        }

        // Out of bytes inside the event.
        if (event_too_long()) return too_large();
        if (discard_) skip_to(pos_);
        if (!eof_) return {};
        if (discard_) {
            discard_ = false;
            skip_to(n);
            state_ = state::outside;
            pos_ = n;
            return {};
        }
        const std::size_t at = start_;
        skip_to(n);
        state_ = state::outside;
        pos_ = n;
        return problem(errc::stream_truncated, base_ + at, n - at);
    }
}

frame_result stream_framer::next()
{
    frame_result r;
    switch (state_) {
        case state::outside:
        case state::junk:
            r = scan_outside();
            break;
        case state::declaration:
        case state::comment:
        case state::auth:
            r = scan_construct();
            break;
        default:
            r = scan_event();
            break;
    }
    if (r.what == frame_result::kind::need_more) settle();
    return r;
}

}  // namespace omnitak
