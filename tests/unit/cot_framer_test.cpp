// Stream framer: incremental framing of TAK streaming XML, whatever the network does to it.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "omnitak/pool/framer.hpp"
#include "omnitak/pool/parser.hpp"
#include "support/test_support.hpp"
#include "unit/cot_test_helpers.hpp"

namespace omnitak::test {
namespace {

using kind = frame_result::kind;

std::string pli(int n)
{
    return "<event version='2.0' uid='ANDROID-" + std::to_string(n) +
           "' type='a-f-G-U-C' how='m-g' time='2026-03-14T15:09:26Z' "
           "start='2026-03-14T15:09:26Z' stale='2026-03-14T15:15:41Z'><point lat='1.5' "
           "lon='2.5' hae='3' ce='4' le='5'/><detail><contact callsign='C" +
           std::to_string(n) + "'/></detail></event>";
}

const std::string decl = "<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\n";

std::vector<framed> events_of(std::vector<framed> results)
{
    std::vector<framed> out;
    for (auto& r : results)
        if (r.what == kind::event) out.push_back(std::move(r));
    return out;
}

TEST(StreamFramer, EventCutInsideClosingTagAcrossThreeReads)
{
    const std::string ev = pli(1);
    const std::size_t close = ev.rfind("</event>");
    stream_framer f;
    std::vector<framed> out;

    f.feed(std::string_view(ev).substr(0, close + 3));  // ... "</e"
    drain(f, out);
    EXPECT_TRUE(out.empty());
    f.feed(std::string_view(ev).substr(close + 3, 3));  // "ven"
    drain(f, out);
    EXPECT_TRUE(out.empty());
    f.feed(std::string_view(ev).substr(close + 6));  // "t>"
    drain(f, out);

    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], event_at(0, ev));
}

TEST(StreamFramer, ThreeEventsWithDeclarationsInOneReadThenFortyBytesOfAFourth)
{
    std::string first_read;
    std::vector<framed> expected;
    for (int i = 0; i < 3; ++i) {
        first_read += decl;
        expected.push_back(event_at(first_read.size(), pli(i)));
        first_read += pli(i);
    }
    const std::string fourth = decl + pli(3);
    const std::size_t fourth_offset = first_read.size() + decl.size();
    first_read += fourth.substr(0, decl.size() + 40);

    stream_framer f;
    std::vector<framed> out;
    f.feed(first_read);
    drain(f, out);
    EXPECT_EQ(out, expected);
    EXPECT_EQ(f.buffered(), 40u);

    f.feed(std::string_view(fourth).substr(decl.size() + 40));
    drain(f, out);
    expected.push_back(event_at(fourth_offset, pli(3)));
    EXPECT_EQ(out, expected);
    EXPECT_EQ(f.stats().problems, 0u);
}

TEST(StreamFramer, NewlinesCrlfAndTabsBetweenEventsAndAfterTheLast)
{
    const std::string stream = pli(1) + "\n" + pli(2) + "\r\n" + pli(3) + "\t\t" + pli(4) +
                               " \r\n\t\n" + pli(5) + "\n\r\n\t";
    const auto out = frame_whole(stream);
    ASSERT_EQ(out.size(), 5u);
    for (std::size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].what, kind::event);
        EXPECT_EQ(out[i].bytes, pli(static_cast<int>(i) + 1));
    }
    EXPECT_EQ(frame_bytewise(stream), out);
}

TEST(StreamFramer, CallsignWithFourByteCharacterCutBetweenItsBytes)
{
    const std::string callsign = "Eagle \xF0\x9F\xA6\x85 One";  // U+1F985
    const std::string ev =
        "<event uid='u' type='a-f-G' time='2026-01-01T00:00:00Z' start='2026-01-01T00:00:00Z' "
        "stale='2026-01-01T00:01:00Z'><point lat='1' lon='2'/><detail><contact callsign='" +
        callsign + "'/></detail></event>";
    const std::size_t emoji = ev.find('\xF0');
    for (std::size_t cut = emoji + 1; cut < emoji + 4; ++cut) {
        const auto out = frame_split(ev, {cut});
        ASSERT_EQ(out.size(), 1u) << "cut at " << cut;
        ASSERT_EQ(out[0].bytes, ev);
        cot_summary s;
        ASSERT_FALSE(parse_cot(out[0].bytes, s));
        EXPECT_EQ(s.callsign, callsign);
    }
    // And cut at all three places at once.
    const auto out = frame_split(ev, {emoji + 1, emoji + 2, emoji + 3});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].bytes, ev);
}

TEST(StreamFramer, EventWithoutClosingTagIsReportedAndTheNextTwoStillComeOut)
{
    const std::string broken =
        "<event uid='cut' type='a-f-G' time='2026-01-01T00:00:00Z'><point lat='1' lon='2'/>"
        "<detail><contact callsign='X'/></detail>\n";
    const std::string stream = broken + decl + pli(1) + "\n" + pli(2);
    const std::vector<framed> expected = {
        problem_at(errc::event_unterminated, 0, broken.size()),
        event_at(broken.size() + decl.size(), pli(1)),
        event_at(broken.size() + decl.size() + pli(1).size() + 1, pli(2)),
    };
    EXPECT_EQ(frame_whole(stream), expected);
    EXPECT_EQ(frame_bytewise(stream), expected);

    // The same without a declaration: the next <event shows the first cannot be completed.
    const std::string stream2 = broken + pli(1) + pli(2);
    const std::vector<framed> expected2 = {
        problem_at(errc::event_unterminated, 0, broken.size()),
        event_at(broken.size(), pli(1)),
        event_at(broken.size() + pli(1).size(), pli(2)),
    };
    EXPECT_EQ(frame_whole(stream2), expected2);
}

TEST(StreamFramer, TlsClientHelloIsSkippedAndCountedWithoutBeingBuffered)
{
    // The start of a TLS 1.2 ClientHello record, then its random bytes, as a TAK client
    // configured for TLS would send to a plain XML port.
    std::string hello = {'\x16', '\x03', '\x01', '\x02', '\x00', '\x01',
                         '\x00', '\x01', '\xfc', '\x03', '\x03'};
    std::mt19937 rng(7);
    while (hello.size() < 517) {
        char c = static_cast<char>(rng() & 0xFF);
        if (c == '<') c = '>';  // keep it free of markup so it is one run
        hello += c;
    }

    stream_framer f;
    std::vector<framed> out;
    for (int round = 0; round < 2000; ++round) {  // about 1 MB of handshake bytes
        f.feed(hello);
        drain(f, out);
        ASSERT_LE(f.buffered(), 8u) << "junk must not accumulate";
    }
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(f.stats().bytes_skipped, 2000u * hello.size());

    f.feed(pli(1));
    drain(f, out);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0], problem_at(errc::bytes_skipped, 0, 2000u * hello.size()));
    EXPECT_EQ(out[1], event_at(2000u * hello.size(), pli(1)));
    EXPECT_EQ(f.stats().junk_bytes, 2000u * hello.size());
}

TEST(StreamFramer, ClosingTagInsideCdataOrCommentDoesNotEndTheEvent)
{
    const std::string ev =
        "<event uid='c' type='a-f-G' time='2026-01-01T00:00:00Z' start='2026-01-01T00:00:00Z' "
        "stale='2026-01-01T00:01:00Z'><detail><remarks><![CDATA[</event> <event x='1'/> "
        "<?xml version='1.0'?>]]></remarks><!-- </event> <event> --><?pi </event> ?>"
        "</detail></event>";
    const auto out = frame_whole(ev + pli(1));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0], event_at(0, ev));
    EXPECT_EQ(out[1], event_at(ev.size(), pli(1)));
    EXPECT_EQ(frame_bytewise(ev + pli(1)), out);
}

TEST(StreamFramer, ClosingTagMayHaveWhitespaceBeforeTheBracket)
{
    const std::string ev = "<event uid='w' type='t'>\n<point lat='1' lon='2'/></event \r\n\t>";
    const auto out = frame_whole(ev + "\n" + pli(1));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].bytes, ev);
}

TEST(StreamFramer, SelfClosingEventIsAnEvent)
{
    const std::string ev = "<event uid='a/b' type='t' note='1>0' />";
    const auto out = frame_whole(ev + pli(1));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0], event_at(0, ev));
    EXPECT_EQ(frame_bytewise(ev + pli(1)), out);
}

TEST(StreamFramer, NamesThatOnlyStartLikeEventAreNotEvents)
{
    const std::string ev = "<event uid='e' type='t'><events/><eventual></eventual></event>";
    const auto out = frame_whole("<events>" + ev + "</events>");
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0], problem_at(errc::bytes_skipped, 0, 8));
    EXPECT_EQ(out[1], event_at(8, ev));
    EXPECT_EQ(out[2], problem_at(errc::bytes_skipped, 8 + ev.size(), 9));
}

TEST(StreamFramer, AuthBomsDeclarationsAndCommentsBetweenEventsAreSkippedSilently)
{
    const std::string auth = "<auth><cot username='u' password='p>w' uid='x'/></auth>";
    const std::string prefix = "\xEF\xBB\xBF" + decl + auth + "\n<!-- hello <event> -->\n";
    const std::string middle = "\r\n\xEF\xBB\xBF<?xml version='1.0'?><auth uid='y'/>\n";
    const std::string stream = prefix + pli(1) + middle + pli(2) + "\n";
    const std::vector<framed> expected = {
        event_at(prefix.size(), pli(1)),
        event_at(prefix.size() + pli(1).size() + middle.size(), pli(2)),
    };
    EXPECT_EQ(frame_whole(stream), expected);
    EXPECT_EQ(frame_bytewise(stream), expected);

    stream_framer f;
    f.feed(stream);
    std::vector<framed> out;
    drain(f, out);
    EXPECT_EQ(f.stats().problems, 0u);
    EXPECT_EQ(f.stats().bytes_skipped, stream.size() - pli(1).size() - pli(2).size());
}

TEST(StreamFramer, JunkBeforeBetweenAndAfterEventsIsReportedPerRun)
{
    const std::string stream = "GET / HTTP/1.1\r\n" + pli(1) + "\n}, {log: " + pli(2) + "<fake/>";
    const std::size_t a = 16;
    const std::size_t b = a + pli(1).size();
    const std::size_t c = b + 1 + 9;
    const std::vector<framed> expected = {
        problem_at(errc::bytes_skipped, 0, a),
        event_at(a, pli(1)),
        problem_at(errc::bytes_skipped, b + 1, 9),
        event_at(c, pli(2)),
        problem_at(errc::bytes_skipped, c + pli(2).size(), 7),
    };
    EXPECT_EQ(frame_whole(stream), expected);
    EXPECT_EQ(frame_bytewise(stream), expected);
}

TEST(StreamFramer, IsIdleOnlyBetweenEventsWithNothingPending)
{
    framer_params params;
    params.max_event_bytes = 300;
    stream_framer f(params);
    std::vector<framed> out;
    EXPECT_TRUE(f.idle());

    f.feed(pli(1) + "\n");
    drain(f, out);
    EXPECT_TRUE(f.idle());

    // Half an event holds bytes.
    f.feed(pli(2).substr(0, 40));
    drain(f, out);
    EXPECT_FALSE(f.idle());
    f.feed(pli(2).substr(40));
    drain(f, out);
    EXPECT_TRUE(f.idle());

    // A junk run not yet reported holds no bytes but is pending.
    f.feed("junk without a bracket");
    drain(f, out);
    EXPECT_EQ(f.buffered(), 0u);
    EXPECT_FALSE(f.idle());
    f.feed(pli(3));
    drain(f, out);
    EXPECT_TRUE(f.idle());

    // So is the rest of an oversized event being skipped.
    f.feed("<event uid='big'>" + std::string(1000, 'x'));
    drain(f, out);
    EXPECT_FALSE(f.idle());
    f.feed("</event>");
    drain(f, out);
    EXPECT_TRUE(f.idle());
    EXPECT_EQ(events_of(out).size(), 3u);
}

TEST(StreamFramer, OversizedEventIsReportedAndFramingResumesAfterIt)
{
    framer_params params;
    params.max_event_bytes = 300;
    const std::string big = "<event uid='big' type='t'><detail><remarks>" + std::string(1000, 'x') +
                            "<b/>" + std::string(1000, 'y') + "</remarks></detail></event>";
    const std::string stream = pli(1) + big + pli(2);
    ASSERT_LE(pli(1).size(), 300u);
    const std::vector<framed> expected = {
        event_at(0, pli(1)),
        problem_at(errc::event_too_large, pli(1).size(), 301),
        event_at(pli(1).size() + big.size(), pli(2)),
    };
    EXPECT_EQ(frame_whole(stream, params), expected);
    EXPECT_EQ(frame_bytewise(stream, params), expected);

    // Without its closing tag, the oversized event ends at the next <event.
    const std::string cut = big.substr(0, 1500);
    const std::vector<framed> expected2 = {
        problem_at(errc::event_too_large, 0, 301),
        event_at(cut.size(), pli(2)),
    };
    EXPECT_EQ(frame_whole(cut + pli(2), params), expected2);

    // Memory stays bounded while the oversized event streams in.
    stream_framer f(params);
    std::vector<framed> out;
    f.feed("<event uid='x'>");
    for (int i = 0; i < 1000; ++i) {
        f.feed(std::string(100, 'z'));
        drain(f, out);
        ASSERT_LE(f.buffered(), 400u);
    }
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], problem_at(errc::event_too_large, 0, 301));
}

TEST(StreamFramer, OversizedStartTagIsSkippedLikeAnyOversizedEvent)
{
    framer_params params;
    params.max_event_bytes = 300;
    const std::string tag = "<event uid='" + std::string(1000, 'u') + "' note='a>b' />";
    // Once the cap is reached the rest is skipped up to the next event, junk included, the
    // same way whether or not the tag's end was already in the buffer.
    const std::string stream = tag + "junk\n" + pli(1);
    const std::vector<framed> expected = {
        problem_at(errc::event_too_large, 0, 301),
        event_at(tag.size() + 5, pli(1)),
    };
    EXPECT_EQ(frame_whole(stream, params), expected);
    EXPECT_EQ(frame_bytewise(stream, params), expected);
    for (std::size_t cut = 0; cut <= stream.size(); cut += 7)
        ASSERT_EQ(frame_split(stream, {cut, std::min(stream.size(), cut + 350)}, params), expected);
}

TEST(StreamFramer, UnfinishedEventAtEndOfStreamIsTruncatedNeverEmitted)
{
    const std::string partial = pli(1).substr(0, 100);
    const std::string stream = pli(1) + "\n" + partial;
    const std::vector<framed> expected = {
        event_at(0, pli(1)),
        problem_at(errc::stream_truncated, pli(1).size() + 1, partial.size()),
    };
    EXPECT_EQ(frame_whole(stream), expected);
    EXPECT_EQ(frame_bytewise(stream), expected);

    // Before finish() nothing is reported: more bytes may come.
    stream_framer f;
    f.feed(stream);
    std::vector<framed> out;
    drain(f, out);
    EXPECT_EQ(out.size(), 1u);
    EXPECT_EQ(f.buffered(), partial.size());

    // A bare "<event" at the very end is an event cut short too; "<eve" is junk.
    EXPECT_EQ(frame_whole("<event"), std::vector<framed>{problem_at(errc::stream_truncated, 0, 6)});
    EXPECT_EQ(frame_whole("<eve"), std::vector<framed>{problem_at(errc::bytes_skipped, 0, 4)});
}

TEST(StreamFramer, UnterminatedDeclarationOrAuthBecomesJunk)
{
    const std::string stream = "<?xml version='1.0' " + pli(1) + "<auth><cot/>" + pli(2);
    const std::vector<framed> expected = {
        problem_at(errc::bytes_skipped, 0, 20),
        event_at(20, pli(1)),
        problem_at(errc::bytes_skipped, 20 + pli(1).size(), 12),
        event_at(32 + pli(1).size(), pli(2)),
    };
    EXPECT_EQ(frame_whole(stream), expected);
    EXPECT_EQ(frame_bytewise(stream), expected);
}

TEST(StreamFramer, StatisticsAccountForEveryByte)
{
    const std::string stream = "junk" + decl + pli(1) + "\n\n" + pli(2) + "<event uid='t'";
    stream_framer f;
    std::vector<framed> out;
    f.feed(stream);
    drain(f, out);
    const framer_stats& s = f.stats();
    EXPECT_EQ(s.bytes_in, stream.size());
    EXPECT_EQ(s.events, 2u);
    EXPECT_EQ(s.bytes_in, s.event_bytes + s.bytes_skipped + f.buffered());

    f.finish();
    drain(f, out);
    EXPECT_EQ(s.problems, 2u);  // the junk run and the truncated tail
    EXPECT_EQ(f.buffered(), 0u);
    EXPECT_EQ(s.bytes_in, s.event_bytes + s.bytes_skipped);
    EXPECT_EQ(s.junk_bytes, 4u);
}

TEST(StreamFramer, ResetStartsANewStreamAtOffsetZero)
{
    stream_framer f;
    std::vector<framed> out;
    f.feed("xx" + pli(1).substr(0, 50));
    drain(f, out);
    f.reset();
    EXPECT_EQ(f.stats().bytes_in, 0u);
    EXPECT_EQ(f.buffered(), 0u);
    out.clear();
    f.feed(pli(2));
    drain(f, out);
    EXPECT_EQ(out, std::vector<framed>{event_at(0, pli(2))});
}

TEST(StreamFramer, RejectsATinyEventCap)
{
    EXPECT_THROW(stream_framer(framer_params{.max_event_bytes = 63}), std::invalid_argument);
    EXPECT_NO_THROW(stream_framer(framer_params{.max_event_bytes = 64}));
}

// A stream that exercises every state, built from the project's fixtures.
std::string fixture_stream()
{
    const auto dir = fixtures_dir() / "cot";
    std::string s = "\xEF\xBB\xBF<auth><cot username='a' password='b'/></auth>\n";
    for (const char* name : {"pli.xml", "chat.xml", "shape.xml", "minimal.xml", "utf8.xml"}) {
        s += read_file(dir / name);
        s += "\r\n";
    }
    s += "garbage\x16\x03\x01 <!-- c --> <event uid='open' type='t'><detail>";
    s += read_file(dir / "pli.xml");
    s += "<event uid='self' type='t'/><event uid='tail' type='t'><![CDATA[</event>";
    return s;
}

TEST(StreamFramer, SplittingAtEveryOffsetGivesTheSameResultAsWhole)
{
    const std::string stream = fixture_stream();
    const auto whole = frame_whole(stream);
    ASSERT_GE(events_of(whole).size(), 7u);

    for (std::size_t cut = 0; cut <= stream.size(); ++cut)
        ASSERT_EQ(frame_split(stream, {cut}), whole) << "cut at " << cut;
    EXPECT_EQ(frame_bytewise(stream), whole);

    std::mt19937 rng(42);
    for (int round = 0; round < 200; ++round) {
        std::vector<std::size_t> cuts;
        std::size_t at = 0;
        while (true) {
            at += 1 + rng() % 97;
            if (at >= stream.size()) break;
            cuts.push_back(at);
        }
        ASSERT_EQ(frame_split(stream, cuts), whole) << "round " << round;
    }
}

TEST(StreamFramer, BorrowedFeedingGivesTheSameResultsAndCopiesWhatItKeeps)
{
    const std::string stream = fixture_stream();
    const auto whole = frame_whole(stream);
    std::mt19937 rng(3);
    for (int round = 0; round < 100; ++round) {
        stream_framer f;
        std::vector<framed> out;
        std::string read_buffer;
        for (std::size_t at = 0; at < stream.size();) {
            const std::size_t n = std::min<std::size_t>(1 + rng() % 300, stream.size() - at);
            read_buffer.assign(stream, at, n);
            at += n;
            f.feed_borrowed(read_buffer);
            drain(f, out);
            read_buffer.assign(read_buffer.size(), '#');  // the next read reuses the buffer
        }
        f.finish();
        drain(f, out);
        ASSERT_EQ(out, whole) << "round " << round;
    }
}

TEST(StreamFramer, CopiesAndMovesKeepTheirOwnBuffer)
{
    stream_framer f;
    f.feed(pli(1).substr(0, 120));
    std::vector<framed> out;
    drain(f, out);
    stream_framer copy = f;
    stream_framer moved = std::move(f);
    for (stream_framer* g : {&copy, &moved}) {
        g->feed(pli(1).substr(120));
        std::vector<framed> got;
        drain(*g, got);
        EXPECT_EQ(got, std::vector<framed>{event_at(0, pli(1))});
    }
}

TEST(StreamFramer, FixtureEventsParse)
{
    const auto out = events_of(frame_whole(fixture_stream()));
    std::size_t parsed = 0;
    for (const auto& e : out) {
        cot_summary s;
        if (!parse_cot(e.bytes, s)) ++parsed;
    }
    EXPECT_EQ(parsed, 6u);  // the five fixtures and the copy of pli.xml's event
}

}  // namespace
}  // namespace omnitak::test
