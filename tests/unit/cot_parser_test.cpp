// CoT parser: strict about what makes an event, lenient about what real clients send.
#include <gtest/gtest.h>

#include <string>

#include "omnitak/pool/parser.hpp"
#include "support/test_support.hpp"

namespace omnitak::test {
namespace {

using namespace std::chrono;

cot_time utc(int y, unsigned mo, unsigned d, int h, int mi, int s, long long us = 0)
{
    return cot_time{sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s} +
                    microseconds{us}};
}

std::string fixture(const char* name)
{
    return read_file(fixtures_dir() / "cot" / name);
}

std::string event_with(std::string_view attributes, std::string_view body = "")
{
    return "<event " + std::string(attributes) + ">" + std::string(body) + "</event>";
}

const std::string times =
    "time='2026-01-01T00:00:00Z' start='2026-01-01T00:00:00Z' stale='2026-01-01T00:05:00Z'";

std::error_code parse(std::string_view bytes, const parse_params& p = {})
{
    cot_summary s;
    return parse_cot(bytes, s, p);
}

TEST(CotParser, ReadsATypicalPli)
{
    const std::string bytes = fixture("pli.xml");
    cot_summary s;
    ASSERT_FALSE(parse_cot(bytes, s));
    EXPECT_EQ(s.uid, "ANDROID-0a1b2c3d4e5f6789");
    EXPECT_EQ(s.type, "a-f-G-U-C");
    EXPECT_EQ(s.how, "m-g");
    EXPECT_EQ(s.time, utc(2026, 3, 14, 15, 9, 26, 535000));
    EXPECT_EQ(s.start, s.time);
    EXPECT_EQ(s.stale, utc(2026, 3, 14, 15, 15, 41, 535000));
    ASSERT_TRUE(s.point);
    EXPECT_DOUBLE_EQ(s.point->lat, 47.6205063);
    EXPECT_DOUBLE_EQ(s.point->lon, -122.3492774);
    EXPECT_DOUBLE_EQ(s.point->hae, 56.2);
    EXPECT_DOUBLE_EQ(s.point->ce, 4.9);
    EXPECT_DOUBLE_EQ(s.point->le, 9999999.0);
    EXPECT_EQ(s.callsign, "KESTREL");
    EXPECT_EQ(s.group_name, "Cyan");
    EXPECT_EQ(s.group_role, "Team Lead");
    EXPECT_TRUE(s.destinations.empty());
    EXPECT_EQ(s.control, cot_control::none);

    const std::string_view detail = std::string_view(bytes).substr(s.detail_offset, s.detail_size);
    EXPECT_TRUE(detail.starts_with("<detail><takv os='34'"));
    EXPECT_TRUE(detail.ends_with("<track course='271.4' speed='1.3'/></detail>"));
}

TEST(CotParser, ReadsChatWithDestinationsAndEntities)
{
    cot_summary s;
    ASSERT_FALSE(parse_cot(fixture("chat.xml"), s));
    EXPECT_EQ(s.uid, "GeoChat.ANDROID-0a1b2c3d4e5f6789.All Chat Rooms.5d1f0c9e");
    EXPECT_EQ(s.time, utc(2026, 3, 14, 15, 10, 2, 100000));
    const std::vector<cot_destination> dests = {
        {cot_destination::kind::callsign, "OSPREY"},
        {cot_destination::kind::uid, "ANDROID-99"},
        {cot_destination::kind::group, "Cyan"},
    };
    EXPECT_EQ(s.destinations, dests);
    EXPECT_TRUE(s.callsign.empty());
}

TEST(CotParser, AcceptsWhatRealClientsSend)
{
    // utf-16 declared over 8-bit bytes, CRLF, tabs, detail before point, offsets, 9 fraction
    // digits, entities, CDATA, comments, namespaced vendor elements, `</event >`, hae "+5".
    const std::string bytes = fixture("shape.xml");
    cot_summary s;
    ASSERT_FALSE(parse_cot(bytes, s));
    EXPECT_EQ(s.uid, "u-d-f.7c2e");
    EXPECT_EQ(s.time, utc(2026, 3, 14, 15, 11, 0));
    EXPECT_EQ(s.start, utc(2026, 3, 14, 15, 11, 0));  // 1 ns truncated
    EXPECT_EQ(s.stale, utc(2026, 3, 15, 15, 11, 0, 500000));
    EXPECT_EQ(s.callsign,
              "Line & \"Arc\" \xE2\x84\x96"
              "1");
    ASSERT_TRUE(s.point);
    EXPECT_DOUBLE_EQ(s.point->lat, -33.8688);
    EXPECT_DOUBLE_EQ(s.point->hae, 5.0);
    EXPECT_DOUBLE_EQ(s.point->ce, 9999999.0);
}

TEST(CotParser, UnknownVendorElementsInDetailAreKeptByteForByte)
{
    const std::string bytes = fixture("shape.xml");
    std::error_code ec;
    const message_ptr m = make_message(bytes, ec, 7);
    ASSERT_TRUE(m) << ec.message();
    const std::size_t begin = bytes.find("<detail>");
    const std::size_t end = bytes.find("</detail>") + 9;
    EXPECT_EQ(m->detail(), std::string_view(bytes).substr(begin, end - begin));
    EXPECT_NE(m->detail().find("<acme:sensor xmlns:acme=\"urn:example:acme\" mode='passive'>  "
                               "<!-- vendor </event> note --><![CDATA[raw </event> <x> & bytes]]>"
                               "</acme:sensor>\r\n<strokeColor value=\"-1\"/>"),
              std::string_view::npos);
    EXPECT_EQ(m->bytes(), bytes);
    EXPECT_EQ(m->origin(), 7u);
}

TEST(CotParser, DetailRangeIsExactWhateverSurroundsIt)
{
    const std::string head = "<event uid='u' type='t' " + times + ">";
    const std::string detail =
        "<detail a='x>y'><x/><detail>inner</detail><!-- </detail> --><y k='1'/>text</detail >";
    for (const std::string& before : {std::string(), std::string("<point lat='1' lon='2'/>")}) {
        for (const std::string& after :
             {std::string("</event>"), std::string("\n</event >\r\n"),
              std::string("<!-- </detail> --></event>"), std::string("<?pi </detail>?></event>"),
              std::string("<point lat='1' lon='2'/></event>"),
              std::string("<![CDATA[</detail>]]></event>") + "<!-- trailing -->"}) {
            const std::string bytes = head + before + detail + after;
            cot_summary s;
            ASSERT_FALSE(parse_cot(bytes, s)) << bytes;
            EXPECT_EQ(std::string_view(bytes).substr(s.detail_offset, s.detail_size), detail)
                << bytes;
        }
    }
    for (const std::string& empty : {std::string("<detail/>"), std::string("<detail x='/>' />"),
                                     std::string("<detail></detail>")}) {
        const std::string bytes = head + empty + "</event>";
        cot_summary s;
        ASSERT_FALSE(parse_cot(bytes, s));
        EXPECT_EQ(std::string_view(bytes).substr(s.detail_offset, s.detail_size), empty);
    }

    // Above the pre-scan threshold the range comes from the pre-scan: the same answer.
    const std::string big = head + "<detail><r>" + std::string(70000, 'z') + "</r></detail>" +
                            "<!-- </detail> --></event>";
    cot_summary s;
    ASSERT_FALSE(parse_cot(big, s));
    EXPECT_EQ(s.detail_offset, head.size());
    EXPECT_EQ(s.detail_size, big.size() - head.size() - 26);
}

TEST(CotParser, AcceptsEveryUnicodeAndABom)
{
    cot_summary s;
    ASSERT_FALSE(parse_cot(fixture("utf8.xml"), s));
    EXPECT_EQ(s.callsign, "Сокол 🦅 ü");
    EXPECT_EQ(s.group_name, "Dark Blue");
}

TEST(CotParser, MinimalEventWithoutDetailOrHow)
{
    cot_summary s;
    ASSERT_FALSE(parse_cot(fixture("minimal.xml"), s));
    EXPECT_TRUE(s.how.empty());
    EXPECT_EQ(s.detail_size, 0u);
    ASSERT_TRUE(s.point);
    EXPECT_EQ(s.point->lat, 90.0);
    EXPECT_EQ(s.point->lon, -180.0);
    EXPECT_EQ(s.point->hae, 9999999.0);
}

TEST(CotParser, PointIsOptional)
{
    cot_summary s;
    ASSERT_FALSE(parse_cot(event_with("uid='u' type='b-t-f' " + times), s));
    EXPECT_FALSE(s.point);
}

TEST(CotParser, SingleAndDoubleQuotesAndSpacesAroundEquals)
{
    cot_summary s;
    ASSERT_FALSE(parse_cot("<event uid = \"a'b\" type\n=\t'a-\"f' " + times +
                               "><detail><contact callsign = \"WOLF\"/></detail></event>",
                           s));
    EXPECT_EQ(s.uid, "a'b");
    EXPECT_EQ(s.type, "a-\"f");
    EXPECT_EQ(s.callsign, "WOLF");
}

TEST(CotParser, ReadsAttributeValuesAsAnXmlProcessorDoes)
{
    // References decoded, tab / LF / CR / CR LF each one space, nonsense references kept.
    cot_summary s;
    ASSERT_FALSE(
        parse_cot("<event uid='a&amp;b&#x9;c&#65;&#x1F985;' type='a\tb\r\nc\nd\re' "
                  "how='&bogus;&#0;&#xD800;&#;' " +
                      times +
                      "><point lat='&#52;7.5' lon=' -1.25 ' hae='1&#0;0'/><detail>"
                      "<nested><contact callsign='WRONG'/></nested>"
                      "<contact callsign='&quot;OWL&apos; &lt;1&gt;'/>"
                      "<__group name='Dark&#10;Blue' role='Team\tLead'/>"
                      "<marti><dest callsign='A&amp;B' uid='u1'/></marti></detail></event>",
                  s));
    EXPECT_EQ(s.uid, "a&b\tcA\xF0\x9F\xA6\x85");
    EXPECT_EQ(s.type, "a b c d e");
    EXPECT_EQ(s.how, "&bogus;&#0;&#xD800;&#;");
    ASSERT_TRUE(s.point);
    EXPECT_DOUBLE_EQ(s.point->lat, 47.5);
    EXPECT_DOUBLE_EQ(s.point->lon, -1.25);
    EXPECT_DOUBLE_EQ(s.point->hae, 9999999.0);  // "1&#0;0" is not a number: unknown
    EXPECT_EQ(s.callsign, "\"OWL' <1>");        // the nested contact is not detail's own
    EXPECT_EQ(s.group_name, "Dark\nBlue");
    EXPECT_EQ(s.group_role, "Team Lead");
    const std::vector<cot_destination> dests = {{cot_destination::kind::uid, "u1"},
                                                {cot_destination::kind::callsign, "A&B"}};
    EXPECT_EQ(s.destinations, dests);
}

TEST(CotParser, FirstOfARepeatedAttributeWins)
{
    // pugixml does not refuse a repeated attribute (a well-formedness error in XML 1.0); the
    // summary takes the first one.
    cot_summary s;
    ASSERT_FALSE(parse_cot("<event uid='first' uid='second' type='t' " + times +
                               "><point lat='1' lon='2' lat='3'/></event>",
                           s));
    EXPECT_EQ(s.uid, "first");
    ASSERT_TRUE(s.point);
    EXPECT_DOUBLE_EQ(s.point->lat, 1.0);
}

// The same event with its time written six ways.
class CotTimeForms : public ::testing::TestWithParam<std::pair<const char*, long long>> {};

TEST_P(CotTimeForms, ParseToTheSameInstant)
{
    const auto [text, micros] = GetParam();
    const std::string bytes = "<event uid='u' type='a-f-G' time='" + std::string(text) +
                              "' start='2026-01-01T00:00:00Z' stale='2026-01-01T00:05:00Z'/>";
    cot_summary s;
    ASSERT_FALSE(parse_cot(bytes, s)) << text;
    EXPECT_EQ(s.time, utc(2026, 1, 1, 0, 0, 0, micros)) << text;
}

INSTANTIATE_TEST_SUITE_P(CotParser, CotTimeForms,
                         ::testing::Values(std::pair{"2026-01-01T00:00:00Z", 0LL},
                                           std::pair{"2026-01-01T00:00:00.5Z", 500000LL},
                                           std::pair{"2026-01-01T00:00:00.123Z", 123000LL},
                                           std::pair{"2026-01-01T00:00:00.123456789Z", 123456LL},
                                           std::pair{"2026-01-01T00:00:00+00:00", 0LL},
                                           std::pair{"2026-01-01T02:30:00.25+02:30", 250000LL},
                                           std::pair{"2025-12-31T23:00:00-01:00", 0LL},
                                           std::pair{" 2026-01-01T00:00:00 ", 0LL}));

TEST(CotParser, RejectsUnparseableTimes)
{
    for (const char* bad :
         {"", "TIME", "2026-01-01", "2026-01-01 00:00:00Z", "2026-13-01T00:00:00Z",
          "2026-02-29T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z",
          "2026-01-01T00:00:60Z", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00.1234567890Z",
          "2026-01-01T00:00:00+0000", "2026-01-01T00:00:00ZZ", "26-01-01T00:00:00Z",
          "2026-01-01T00:00:00+25:00", "+2026-01-01T00:00:00Z"}) {
        cot_time t{};
        EXPECT_FALSE(parse_cot_time(bad, t)) << bad;
        EXPECT_EQ(parse(event_with("uid='u' type='t' time='" + std::string(bad) +
                                   "' start='2026-01-01T00:00:00Z' stale='2026-01-01T00:00:00Z'")),
                  errc::bad_time)
            << bad;
    }
    cot_time t{};
    EXPECT_TRUE(parse_cot_time("2024-02-29T23:59:59.999999Z", t));
    EXPECT_EQ(parse(event_with("uid='u' type='t' time='2026-01-01T00:00:00Z' "
                               "start='2026-01-01T00:00:00Z'")),
              errc::bad_time);
}

TEST(CotParser, FormatsTimesWithMilliseconds)
{
    EXPECT_EQ(format_cot_time(utc(2026, 3, 4, 5, 6, 7, 891234)), "2026-03-04T05:06:07.891Z");
    EXPECT_EQ(format_cot_time(utc(2026, 3, 4, 5, 6, 7, 891234), true),
              "2026-03-04T05:06:07.891234Z");
    EXPECT_EQ(format_cot_time(utc(1999, 12, 31, 23, 59, 59), true), "1999-12-31T23:59:59.000Z");
}

TEST(CotParser, TimesOfTheFirstAndLastFourDigitYearsFormatAsTheyWereRead)
{
    // January and February of year 0 once parsed a day late (the era was rounded toward zero).
    for (const char* text :
         {"0000-01-01T00:00:00.000Z", "0000-01-14T15:09:26.535Z", "0000-02-29T23:59:59.000Z",
          "0000-03-01T00:00:00.000Z", "0001-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z",
          "1970-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"}) {
        cot_time t{};
        ASSERT_TRUE(parse_cot_time(text, t)) << text;
        EXPECT_EQ(format_cot_time(t), text);
    }
    cot_time first{};
    ASSERT_TRUE(parse_cot_time("0000-01-01T00:00:00Z", first));
    EXPECT_EQ(first.time_since_epoch(), std::chrono::seconds{-62167219200});
}

TEST(CotParser, RejectsARootThatIsNotEvent)
{
    EXPECT_EQ(parse("<not-cot-xml uid='u'/>"), errc::root_not_event);
    EXPECT_EQ(parse("<cot:event xmlns:cot='x' uid='u' type='t' " + times + "/>"),
              errc::root_not_event);
    EXPECT_EQ(parse("<Event uid='u' type='t' " + times + "/>"), errc::root_not_event);
}

TEST(CotParser, RejectsMissingOrEmptyUidAndType)
{
    EXPECT_EQ(parse(event_with("type='t' " + times)), errc::missing_uid);
    EXPECT_EQ(parse(event_with("uid='' type='t' " + times)), errc::missing_uid);
    EXPECT_EQ(parse(event_with("uid='u' " + times)), errc::missing_type);
    EXPECT_EQ(parse(event_with("uid='u' type='' " + times)), errc::missing_type);
}

TEST(CotParser, RejectsBadCoordinates)
{
    const std::string head = "uid='u' type='t' " + times;
    EXPECT_EQ(parse(event_with(head, "<point lat='x' lon='1'/>")), errc::bad_point);
    EXPECT_EQ(parse(event_with(head, "<point lat='1' lon=''/>")), errc::bad_point);
    EXPECT_EQ(parse(event_with(head, "<point lon='1'/>")), errc::bad_point);
    EXPECT_EQ(parse(event_with(head, "<point lat='nan' lon='1'/>")), errc::bad_point);
    EXPECT_EQ(parse(event_with(head, "<point lat='inf' lon='1'/>")), errc::bad_point);
    EXPECT_EQ(parse(event_with(head, "<point lat='1.5.2' lon='1'/>")), errc::bad_point);
    EXPECT_EQ(parse(event_with(head, "<point lat='90.0001' lon='1'/>")), errc::point_out_of_range);
    EXPECT_EQ(parse(event_with(head, "<point lat='-91' lon='1'/>")), errc::point_out_of_range);
    EXPECT_EQ(parse(event_with(head, "<point lat='1' lon='180.5'/>")), errc::point_out_of_range);
    EXPECT_EQ(parse(event_with(head, "<point lat='1e2' lon='1'/>")), errc::point_out_of_range);

    // Unknown hae/ce/le as senders write them.
    cot_summary s;
    ASSERT_FALSE(parse_cot(event_with(head,
                                      "<point lat=' +1 ' lon='-2e1' hae='NaN' ce='nan' "
                                      "le=''/>"),
                           s));
    EXPECT_EQ(s.point->lat, 1.0);
    EXPECT_EQ(s.point->lon, -20.0);
    EXPECT_EQ(s.point->hae, 9999999.0);
    EXPECT_EQ(s.point->le, 9999999.0);
}

TEST(CotParser, RefusesDoctypeAndEntityDeclarations)
{
    const std::string ev = event_with("uid='u' type='t' " + times);
    for (const std::string& bad :
         {"<?xml version='1.0'?><!DOCTYPE event>" + ev,
          "<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]>" + ev,
          "<!doctype event>" + ev, "<!DoCtYpE event SYSTEM 'file:///etc/passwd'>" + ev,
          event_with("uid='u' type='t' " + times, "<!ENTITY x 'y'>"),
          event_with("uid='u' type='t' " + times, "<!ELEMENT x ANY>")}) {
        EXPECT_EQ(parse(bad), errc::doctype_forbidden) << bad;
    }
}

TEST(CotParser, EnforcesElementCountAndDepth)
{
    const std::string head = "uid='u' type='t' " + times;
    std::string many;
    for (int i = 0; i < 99; ++i)
        many += "<x/>";
    EXPECT_FALSE(parse(event_with(head, many), {.max_elements = 100, .max_depth = 32}));
    EXPECT_EQ(parse(event_with(head, many + "<y/>"), {.max_elements = 100, .max_depth = 32}),
              errc::too_many_elements);

    std::string deep_open, deep_close;
    for (int i = 0; i < 31; ++i) {
        deep_open += "<d>";
        deep_close += "</d>";
    }
    EXPECT_FALSE(parse(event_with(head, deep_open + deep_close)));
    EXPECT_EQ(parse(event_with(head, deep_open + "<d/>" + deep_close)), errc::too_deep);

    // Hostile depth far past the limit costs one scan, never recursion.
    std::string hostile_open;
    for (int i = 0; i < 100000; ++i)
        hostile_open += "<a>";
    EXPECT_EQ(parse(event_with(head, hostile_open)), errc::too_deep);
    EXPECT_FALSE(
        parse(event_with(head, deep_open + deep_close), {.max_elements = 0, .max_depth = 0}));
}

TEST(CotParser, RejectsMalformedXml)
{
    EXPECT_EQ(parse("<event uid='u' type='t' " + times + "><point lat='1' lon='2'>"),
              errc::not_well_formed);
    EXPECT_EQ(parse("<event uid='u><bad></event>"), errc::not_well_formed);
    EXPECT_EQ(parse(""), errc::not_well_formed);
    EXPECT_EQ(parse(event_with("uid='u' type='t' " + times) + "<event/>"), errc::not_well_formed);
}

TEST(CotParser, ClassifiesControlTypes)
{
    EXPECT_EQ(classify_control("t-x-c-t"), cot_control::ping);
    EXPECT_EQ(classify_control("t-x-c-t-r"), cot_control::pong);
    EXPECT_EQ(classify_control("t-x-takp-v"), cot_control::negotiation_offer);
    EXPECT_EQ(classify_control("t-x-takp-q"), cot_control::negotiation_request);
    EXPECT_EQ(classify_control("t-x-takp-r"), cot_control::negotiation_response);
    EXPECT_EQ(classify_control("t-x-c-t-x"), cot_control::none);
    EXPECT_EQ(classify_control("a-f-G"), cot_control::none);

    cot_summary s;
    ASSERT_FALSE(parse_cot(event_with("uid='takPong' type='t-x-c-t-r' " + times), s));
    EXPECT_EQ(s.control, cot_control::pong);
}

TEST(CotParser, MakeMessageReportsErrors)
{
    std::error_code ec = errc::queue_full;
    EXPECT_FALSE(make_message("<event/>", ec));
    EXPECT_EQ(ec, errc::missing_uid);

    const message_ptr m = make_message(fixture("minimal.xml"), ec);
    ASSERT_TRUE(m);
    EXPECT_FALSE(ec);
    EXPECT_EQ(m->origin(), no_link);
    EXPECT_TRUE(m->detail().empty());
}

}  // namespace
}  // namespace omnitak::test
