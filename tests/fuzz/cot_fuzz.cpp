// libFuzzer target for the stream framer and the CoT parser.
//
// Oracles beyond "no crash, no sanitizer report":
// - the framer gives the same results whether the input is fed whole or split (at places the
//   input's first bytes choose), and accounts for every byte;
// - every event it emits starts with "<event" and lies within the input;
// - every event that parses is written back by to_xml and parses to the same summary.
//
// Run with the corpus as seeds (any folder of files works):
//   ./cot_fuzz -max_total_time=60 -max_len=65536 CORPUS_COPY_DIR /path/to/cot-corpus
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "omnitak/pool/error.hpp"
#include "omnitak/pool/framer.hpp"
#include "omnitak/pool/parser.hpp"
#include "omnitak/pool/writer.hpp"

namespace {

struct record {
    int what;
    std::string bytes;
    int code;
    std::uint64_t offset;
    std::uint64_t length;
    bool operator==(const record&) const = default;
};

void check(bool ok)
{
    if (!ok) std::abort();
}

std::vector<record> run(std::string_view input, const std::vector<std::size_t>& sizes,
                        std::size_t cap)
{
    omnitak::stream_framer framer(omnitak::framer_params{.max_event_bytes = cap});
    std::vector<record> out;
    const auto drain = [&] {
        for (;;) {
            const omnitak::frame_result r = framer.next();
            if (r.what == omnitak::frame_result::kind::need_more) return;
            if (r.what == omnitak::frame_result::kind::event) {
                check(r.event.substr(0, 6) == "<event");
                check(r.offset + r.event.size() <= input.size());
                check(input.substr(r.offset, r.event.size()) == r.event);
            }
            out.push_back(record{static_cast<int>(r.what), std::string(r.event),
                                 r.problem.code.value(), r.offset, r.problem.length});
        }
    };
    std::size_t at = 0;
    for (std::size_t i = 0; at < input.size(); ++i) {
        const std::size_t n = sizes.empty() ? input.size() : sizes[i % sizes.size()];
        framer.feed(input.substr(at, n));
        at += n;
        drain();
    }
    framer.finish();
    drain();
    const omnitak::framer_stats& s = framer.stats();
    check(framer.buffered() == 0);
    check(s.bytes_in == input.size());
    check(s.bytes_in == s.event_bytes + s.bytes_skipped);
    return out;
}

void round_trip(std::string_view event)
{
    omnitak::cot_summary s;
    if (omnitak::parse_cot(event, s)) return;
    const std::string detail(event.substr(s.detail_offset, s.detail_size));
    for (const std::string& xml : {omnitak::to_xml(s), omnitak::to_xml(s, detail)}) {
        omnitak::cot_summary back;
        check(!omnitak::parse_cot(xml, back));
        check(back.uid == s.uid && back.type == s.type && back.how == s.how);
        check(back.time == s.time && back.start == s.start && back.stale == s.stale);
        check(back.point.has_value() == s.point.has_value());
        if (s.point)
            check(back.point->lat == s.point->lat && back.point->lon == s.point->lon &&
                  back.point->hae == s.point->hae && back.point->ce == s.point->ce &&
                  back.point->le == s.point->le);
        check(back.callsign == s.callsign && back.group_name == s.group_name &&
              back.group_role == s.group_role && back.destinations == s.destinations);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size < 2) return 0;

    // The first two bytes choose the read sizes and a small or the default event cap.
    const std::size_t step = 1 + data[0] % 64;
    const std::size_t cap = data[1] & 1 ? 64 + data[1] * 8 : 8u * 1024u * 1024u;
    const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);

    const auto whole = run(input, {}, cap);
    check(run(input, {step, 1, step * 3 + 1}, cap) == whole);

    for (const record& r : whole)
        if (r.what == static_cast<int>(omnitak::frame_result::kind::event)) round_trip(r.bytes);

    // The parser on the raw input, as make_message would see a datagram.
    omnitak::cot_summary s;
    (void)omnitak::parse_cot(input, s);
    return 0;
}
