// Helpers shared by the CoT tests: run a framer over chunks and record what came out.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "omnitak/pool/error.hpp"
#include "omnitak/pool/framer.hpp"

namespace omnitak::test {

/// One framer result, owning its bytes, comparable.
struct framed {
    frame_result::kind what = frame_result::kind::need_more;
    std::string bytes;         // event bytes (events only)
    std::string code;          // problem name (problems only)
    std::uint64_t offset = 0;  // event or problem offset
    std::uint64_t length = 0;  // problem length
    friend bool operator==(const framed&, const framed&) = default;
};

inline std::ostream& operator<<(std::ostream& os, const framed& f)
{
    if (f.what == frame_result::kind::event)
        return os << "event@" << f.offset << "[" << f.bytes << "]";
    return os << f.code << "@" << f.offset << "+" << f.length;
}

inline framed event_at(std::uint64_t offset, std::string bytes)
{
    return framed{frame_result::kind::event, std::move(bytes), {}, offset, 0};
}

inline framed problem_at(errc code, std::uint64_t offset, std::uint64_t length)
{
    return framed{frame_result::kind::problem, {}, std::string(to_string(code)), offset, length};
}

inline void drain(stream_framer& f, std::vector<framed>& out)
{
    for (;;) {
        const frame_result r = f.next();
        if (r.what == frame_result::kind::need_more) return;
        framed x;
        x.what = r.what;
        if (r.what == frame_result::kind::event) {
            x.bytes = std::string(r.event);
            x.offset = r.offset;
        } else {
            x.code = std::string(to_string(static_cast<errc>(r.problem.code.value())));
            x.offset = r.problem.offset;
            x.length = r.problem.length;
        }
        out.push_back(std::move(x));
    }
}

/// Feeds `chunks` in order, then finishes the stream; returns every result.
inline std::vector<framed> frame_chunks(const std::vector<std::string_view>& chunks,
                                        framer_params params = {})
{
    stream_framer f(params);
    std::vector<framed> out;
    for (std::string_view c : chunks) {
        f.feed(c);
        drain(f, out);
    }
    f.finish();
    drain(f, out);
    return out;
}

inline std::vector<framed> frame_whole(std::string_view bytes, framer_params params = {})
{
    return frame_chunks({bytes}, params);
}

/// Splits `bytes` at the given offsets (ascending) and frames the pieces.
inline std::vector<framed> frame_split(std::string_view bytes, std::vector<std::size_t> cuts,
                                       framer_params params = {})
{
    std::vector<std::string_view> chunks;
    std::size_t from = 0;
    for (std::size_t cut : cuts) {
        chunks.push_back(bytes.substr(from, cut - from));
        from = cut;
    }
    chunks.push_back(bytes.substr(from));
    return frame_chunks(chunks, params);
}

inline std::vector<framed> frame_bytewise(std::string_view bytes, framer_params params = {})
{
    std::vector<std::string_view> chunks;
    for (std::size_t i = 0; i < bytes.size(); ++i)
        chunks.push_back(bytes.substr(i, 1));
    return frame_chunks(chunks, params);
}

}  // namespace omnitak::test
