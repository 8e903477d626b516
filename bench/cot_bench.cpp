// CoT parsing and framing throughput, each against a baseline measured in the same run:
// - parse_cot (pre-scan + pugixml + summary) vs pugixml's bare load_buffer on the same bytes,
//   for a typical ~600-byte PLI and for an event with a 60 KB detail;
// - stream_framer over a 100 MB stream of mixed events fed in random read sizes vs a bare
//   memchr scan for '<' over the same reads.
//
// Run from a Release build:  ./cot_bench --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <pugixml.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "omnitak/pool/framer.hpp"
#include "omnitak/pool/parser.hpp"

namespace {

const std::string pli_event =
    "<event version='2.0' uid='ANDROID-0a1b2c3d4e5f6789' type='a-f-G-U-C' how='m-g' "
    "time='2026-03-14T15:09:26.535Z' start='2026-03-14T15:09:26.535Z' "
    "stale='2026-03-14T15:15:41.535Z'><point lat='47.6205063' lon='-122.3492774' hae='56.2' "
    "ce='4.9' le='9999999.0'/><detail><takv os='34' version='4.10.0.7 (3c4e5a1b).1712345678-CIV' "
    "device='EXAMPLE PHONE 9' platform='ATAK-CIV'/><contact endpoint='*:-1:stcp' "
    "callsign='KESTREL'/><uid Droid='KESTREL'/><precisionlocation altsrc='GPS' "
    "geopointsrc='GPS'/><__group role='Team Lead' name='Cyan'/><status battery='87'/><track "
    "course='271.4' speed='1.3'/></detail></event>";

const std::string chat_event =
    "<event version=\"2.0\" uid=\"GeoChat.ANDROID-1.All Chat Rooms.5d1f0c9e\" type=\"b-t-f\" "
    "how=\"h-g-i-g-o\" time=\"2026-03-14T15:10:02.1Z\" start=\"2026-03-14T15:10:02.1Z\" "
    "stale=\"2026-03-15T15:10:02.1Z\"><point lat=\"0.0\" lon=\"0.0\" hae=\"9999999.0\" "
    "ce=\"9999999.0\" le=\"9999999.0\"/><detail><__chat parent=\"RootContactGroup\" "
    "chatroom=\"All Chat Rooms\" id=\"All Chat Rooms\" senderCallsign=\"KESTREL\"><chatgrp "
    "uid0=\"ANDROID-1\" uid1=\"All Chat Rooms\" id=\"All Chat Rooms\"/></__chat><remarks "
    "source=\"BAO.F.ATAK.ANDROID-1\" to=\"All Chat Rooms\">Rally at &lt;grid 4&gt; &amp; hold "
    "until 1600 <![CDATA[</event>]]></remarks><marti><dest callsign=\"OSPREY\"/></marti>"
    "</detail></event>";

// A TAK Server mission-change style event: ~60 KB of detail.
std::string big_detail_event()
{
    std::string s =
        "<event version='2.0' uid='mission-change-1' type='t-x-m-c' how='h-g-i-g-o' "
        "time='2026-03-14T15:09:26.535Z' start='2026-03-14T15:09:26.535Z' "
        "stale='2026-03-14T15:29:26.535Z'><point lat='0.0' lon='0.0' hae='9999999.0' "
        "ce='9999999.0' le='9999999.0'/><detail><mission type='CHANGE' tool='public' "
        "name='exercise' authorUid='ANDROID-1'><MissionChanges>";
    for (int i = 0; s.size() < 60 * 1024; ++i) {
        s += "<MissionChange><contentUid>uid-" + std::to_string(i) +
             "</contentUid><creatorUid>ANDROID-0a1b2c3d</creatorUid><missionName>exercise"
             "</missionName><timestamp>2026-03-14T15:09:26.535Z</timestamp><type>ADD_CONTENT"
             "</type><details type='a-h-G' callsign='Target &amp; " +
             std::to_string(i) +
             "' color='-65536'><location lat='47.1' lon='-122.2'/>"
             "</details></MissionChange>";
    }
    s += "</MissionChanges></mission></detail></event>";
    return s;
}

void run_parse_cot(benchmark::State& state, const std::string& bytes)
{
    omnitak::cot_summary summary;
    for (auto _ : state) {
        const std::error_code ec = omnitak::parse_cot(bytes, summary);
        benchmark::DoNotOptimize(ec);
        benchmark::DoNotOptimize(summary.uid.data());
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
}

void run_pugixml(benchmark::State& state, const std::string& bytes)
{
    pugi::xml_document doc;
    for (auto _ : state) {
        const pugi::xml_parse_result r = doc.load_buffer(bytes.data(), bytes.size());
        benchmark::DoNotOptimize(r.status);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
}

void BM_Baseline_PugixmlLoadBuffer_Pli(benchmark::State& state)
{
    run_pugixml(state, pli_event);
}
void BM_ParseCot_Pli(benchmark::State& state)
{
    run_parse_cot(state, pli_event);
}
void BM_Baseline_PugixmlLoadBuffer_BigDetail(benchmark::State& state)
{
    static const std::string big = big_detail_event();
    run_pugixml(state, big);
}
void BM_ParseCot_BigDetail(benchmark::State& state)
{
    static const std::string big = big_detail_event();
    run_parse_cot(state, big);
}

// ---- framing ---------------------------------------------------------------------------------

struct stream_data {
    std::string bytes;
    std::vector<std::size_t> reads;  // random read sizes covering bytes
    std::size_t events = 0;
};

const stream_data& mixed_stream()
{
    static const stream_data data = [] {
        stream_data d;
        const std::string big = big_detail_event();
        const std::string decl = "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n";
        std::mt19937_64 rng(2026);
        d.bytes.reserve(101u << 20);
        while (d.bytes.size() < 100u << 20) {
            const auto pick = rng() % 100;
            if (pick < 70) {
                d.bytes += decl;
                d.bytes += pli_event;
            } else if (pick < 95) {
                d.bytes += chat_event;
                d.bytes += "\r\n";
            } else {
                d.bytes += big;
                d.bytes += '\n';
            }
            ++d.events;
        }
        std::uniform_int_distribution<std::size_t> size(1, 65536);
        for (std::size_t at = 0; at < d.bytes.size();) {
            const std::size_t n = std::min(size(rng), d.bytes.size() - at);
            d.reads.push_back(n);
            at += n;
        }
        return d;
    }();
    return data;
}

void BM_Baseline_MemchrScan_Stream(benchmark::State& state)
{
    const stream_data& d = mixed_stream();
    for (auto _ : state) {
        std::size_t hits = 0;
        const char* p = d.bytes.data();
        for (const std::size_t n : d.reads) {
            const char* at = p;
            const char* end = p + n;
            while (at < end) {
                const void* hit = std::memchr(at, '<', static_cast<std::size_t>(end - at));
                if (hit == nullptr) break;
                ++hits;
                at = static_cast<const char*>(hit) + 1;
            }
            p = end;
        }
        benchmark::DoNotOptimize(hits);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(d.bytes.size()));
}

void run_framer(benchmark::State& state, bool borrowed)
{
    const stream_data& d = mixed_stream();
    for (auto _ : state) {
        omnitak::stream_framer framer;
        std::size_t events = 0;
        const char* p = d.bytes.data();
        for (const std::size_t n : d.reads) {
            if (borrowed)
                framer.feed_borrowed(std::string_view(p, n));
            else
                framer.feed(std::string_view(p, n));
            p += n;
            for (;;) {
                const omnitak::frame_result r = framer.next();
                if (r.what == omnitak::frame_result::kind::need_more) break;
                events += r.what == omnitak::frame_result::kind::event;
            }
        }
        if (events != d.events) state.SkipWithError("framer lost events");
        benchmark::DoNotOptimize(events);
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(d.bytes.size()));
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(d.events));
}

// feed(): the bytes are copied into the framer.
void BM_Framer_Stream(benchmark::State& state)
{
    run_framer(state, false);
}
// feed_borrowed(): the framer scans the reads in place and copies only unfinished tails.
void BM_Framer_Stream_Borrowed(benchmark::State& state)
{
    run_framer(state, true);
}

}  // namespace

BENCHMARK(BM_Baseline_PugixmlLoadBuffer_Pli);
BENCHMARK(BM_ParseCot_Pli);
BENCHMARK(BM_Baseline_PugixmlLoadBuffer_BigDetail);
BENCHMARK(BM_ParseCot_BigDetail);
BENCHMARK(BM_Baseline_MemchrScan_Stream)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Framer_Stream)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Framer_Stream_Borrowed)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
