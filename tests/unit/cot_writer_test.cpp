// CoT writer: the events the library sends itself, and summaries written back to XML.
#include <gtest/gtest.h>

#include <string>

#include "omnitak/pool/parser.hpp"
#include "omnitak/pool/writer.hpp"
#include "support/test_support.hpp"

namespace omnitak::test {
namespace {

using namespace std::chrono;

const cot_time now = cot_time{sys_days{year{2026} / 3 / 14} + hours{15} + minutes{9} + seconds{26} +
                              microseconds{535897}};

// Summaries compare equal apart from where their detail sits in the bytes.
void expect_same_summary(cot_summary a, cot_summary b)
{
    a.detail_offset = b.detail_offset = 0;
    a.detail_size = b.detail_size = 0;
    EXPECT_EQ(a.uid, b.uid);
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(a.how, b.how);
    EXPECT_EQ(a.time, b.time);
    EXPECT_EQ(a.start, b.start);
    EXPECT_EQ(a.stale, b.stale);
    ASSERT_EQ(a.point.has_value(), b.point.has_value());
    if (a.point) {
        EXPECT_EQ(a.point->lat, b.point->lat);
        EXPECT_EQ(a.point->lon, b.point->lon);
        EXPECT_EQ(a.point->hae, b.point->hae);
        EXPECT_EQ(a.point->ce, b.point->ce);
        EXPECT_EQ(a.point->le, b.point->le);
    }
    EXPECT_EQ(a.callsign, b.callsign);
    EXPECT_EQ(a.group_name, b.group_name);
    EXPECT_EQ(a.group_role, b.group_role);
    EXPECT_EQ(a.destinations, b.destinations);
    EXPECT_EQ(a.control, b.control);
}

TEST(CotWriter, PingIsATxctEventThatParses)
{
    const std::string ping = make_ping("ANDROID-1-ping", now);
    EXPECT_TRUE(ping.starts_with("<event "));
    EXPECT_TRUE(ping.ends_with("</event>"));
    cot_summary s;
    ASSERT_FALSE(parse_cot(ping, s));
    EXPECT_EQ(s.uid, "ANDROID-1-ping");
    EXPECT_EQ(s.type, "t-x-c-t");
    EXPECT_EQ(s.control, cot_control::ping);
    EXPECT_EQ(s.time, now);
    EXPECT_EQ(s.start, now);
    EXPECT_EQ(s.stale, now + seconds{10});
    EXPECT_EQ(make_ping("x", now, seconds{30}).find("stale=\"2026-03-14T15:09:56.535897Z\"") !=
                  std::string::npos,
              true);
}

TEST(CotWriter, PongLooksLikeTakServers)
{
    cot_summary s;
    ASSERT_FALSE(parse_cot(make_pong(now), s));
    EXPECT_EQ(s.uid, "takPong");
    EXPECT_EQ(s.type, "t-x-c-t-r");
    EXPECT_EQ(s.how, "h-g-i-g-o");
    EXPECT_EQ(s.control, cot_control::pong);
    EXPECT_EQ(s.stale, now + seconds{20});
    ASSERT_TRUE(s.point);
    EXPECT_EQ(s.point->ce, 9999999.0);
}

TEST(CotWriter, FixturesRoundTripThroughToXml)
{
    for (const char* name : {"pli.xml", "chat.xml", "shape.xml", "minimal.xml", "utf8.xml"}) {
        SCOPED_TRACE(name);
        const std::string bytes = read_file(fixtures_dir() / "cot" / name);
        cot_summary original;
        ASSERT_FALSE(parse_cot(bytes, original));

        // Detail rebuilt from the summary.
        cot_summary again;
        const std::string rebuilt = to_xml(original);
        ASSERT_FALSE(parse_cot(rebuilt, again)) << rebuilt;
        expect_same_summary(original, again);

        // Detail carried verbatim.
        const std::string_view detail =
            std::string_view(bytes).substr(original.detail_offset, original.detail_size);
        const std::string carried = to_xml(original, detail);
        ASSERT_FALSE(parse_cot(carried, again)) << carried;
        expect_same_summary(original, again);
        EXPECT_EQ(std::string_view(carried).substr(again.detail_offset, again.detail_size), detail);
    }
}

TEST(CotWriter, HostileStringsSurviveARoundTrip)
{
    cot_summary s;
    s.uid = "a\"b'c<d>&e\tf\ng\rh\x01i";
    s.type = "a-f-G";
    s.how = "";
    s.time = now;
    s.start = now;
    s.stale = now + hours{1};
    s.callsign = "</event><event uid=\"x\">";
    s.group_name = "  two  spaces  ";
    s.group_role = "Сокол";
    s.destinations = {{cot_destination::kind::mission, "m&m"},
                      {cot_destination::kind::uid, "u<1>"}};
    s.point = cot_point{-89.999999999, 179.123456789012, -12.5, 0.1, 1e-7};

    const std::string xml = to_xml(s);
    cot_summary back;
    ASSERT_FALSE(parse_cot(xml, back)) << xml;
    expect_same_summary(s, back);
    EXPECT_EQ(xml.find("<event uid"), std::string::npos);
}

}  // namespace
}  // namespace omnitak::test
