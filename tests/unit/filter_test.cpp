#include "omnitak/pool/filter.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>

namespace omnitak {
namespace {

cot_message make(std::string type, std::optional<cot_point> point = std::nullopt,
                 std::string callsign = {}, std::string uid = "u-1", std::string group = {})
{
    cot_summary s;
    s.uid = std::move(uid);
    s.type = std::move(type);
    s.point = point;
    s.callsign = std::move(callsign);
    s.group_name = std::move(group);
    return cot_message("<event/>", std::move(s));
}

cot_message at(double lat, double lon)
{
    return make("a-f-G", cot_point{lat, lon});
}

// --- type patterns --------------------------------------------------------------------------

TEST(TypePattern, MatchesOnSegmentBoundariesOnly)
{
    EXPECT_TRUE(type_matches("a-f-G", "a-f-G"));
    EXPECT_TRUE(type_matches("a-f-G", "a-f-G-U-C"));
    EXPECT_FALSE(type_matches("a-f-G", "a-f-GX"));
    EXPECT_FALSE(type_matches("a-f-G", "a-f"));
    EXPECT_FALSE(type_matches("a-f-G-U", "a-f-G"));
}

TEST(TypePattern, IsCaseSensitive)
{
    EXPECT_FALSE(type_matches("a-f-g", "a-f-G-U-C"));
    EXPECT_FALSE(type_matches("A", "a-f-G"));
}

TEST(TypePattern, DotMatchesAnyOneSegment)
{
    EXPECT_TRUE(type_matches("a-.-G", "a-h-G-U-C"));
    EXPECT_TRUE(type_matches("a-.-G", "a-f-G"));
    EXPECT_FALSE(type_matches("a-.-G", "a-f-A"));
    EXPECT_FALSE(type_matches("a-.-G", "a-f"));
    EXPECT_TRUE(type_matches(".", "xyz"));
    EXPECT_TRUE(type_matches(".-.", "b-m-p-s-p-i"));
}

TEST(TypePattern, HandlesOddTypesFromRealTraffic)
{
    // A literal "." in the type itself (CoTtypes.xml "any affiliation" entries).
    EXPECT_TRUE(type_matches("a-.-A-C-F", "a-.-A-C-F"));
    EXPECT_TRUE(type_matches("a", "a-.-A-C-F"));
    EXPECT_TRUE(type_matches("a-.", "a-.-A-C-F"));
    EXPECT_FALSE(type_matches("a-f-A", "a-.-A-C-F"));

    // Lower-case trailing segments.
    EXPECT_TRUE(type_matches("a-h-G-U-i", "a-h-G-U-i-m-etf"));
    EXPECT_TRUE(type_matches("a-h-G-U-i-m-etf", "a-h-G-U-i-m-etf"));
    EXPECT_FALSE(type_matches("a-h-G-U-I", "a-h-G-U-i-m-etf"));
    EXPECT_FALSE(type_matches("a-h-G-U-i-m-et", "a-h-G-U-i-m-etf"));

    // A bare root and a non-CoT type.
    EXPECT_TRUE(type_matches("a", "a"));
    EXPECT_FALSE(type_matches("a-f", "a"));
    EXPECT_TRUE(type_matches("xyz", "xyz"));
    EXPECT_FALSE(type_matches("x", "xyz"));
    EXPECT_FALSE(type_matches("xy", "xyz"));
}

TEST(TypePattern, TrailingDashIsIgnored)
{
    EXPECT_TRUE(type_matches("a-f-", "a-f-G"));
    EXPECT_EQ(type_pattern("a-f-").text(), "a-f");
}

TEST(TypePattern, EmptyPatternIsRejected)
{
    EXPECT_THROW(type_pattern(""), std::invalid_argument);
    EXPECT_THROW(type_pattern("-"), std::invalid_argument);
    EXPECT_THROW(filter::by_type({}), std::invalid_argument);
}

TEST(Filter, TypeFilterMatchesAnyOfItsPatterns)
{
    const auto f = filter::by_type({"a-h", "b-m-p"});
    EXPECT_TRUE(f.matches(make("a-h-G")));
    EXPECT_TRUE(f.matches(make("b-m-p-s-p-i")));
    EXPECT_FALSE(f.matches(make("a-f-G")));
    EXPECT_FALSE(f.matches(make("a-hX")));
}

// --- exact-value filters --------------------------------------------------------------------

TEST(Filter, CallsignUidAndGroupAreExactAndCaseSensitive)
{
    const auto cs = filter::by_callsign({"ALPHA", "BRAVO"});
    EXPECT_TRUE(cs.matches(make("a-f-G", {}, "BRAVO")));
    EXPECT_FALSE(cs.matches(make("a-f-G", {}, "bravo")));
    EXPECT_FALSE(cs.matches(make("a-f-G", {}, "BRAVO-2")));
    EXPECT_FALSE(cs.matches(make("a-f-G", {}, "")));

    const auto uid = filter::by_uid({"ANDROID-1"});
    EXPECT_TRUE(uid.matches(make("a-f-G", {}, {}, "ANDROID-1")));
    EXPECT_FALSE(uid.matches(make("a-f-G", {}, {}, "ANDROID-12")));

    const auto grp = filter::by_group({"Cyan"});
    EXPECT_TRUE(grp.matches(make("a-f-G", {}, {}, "u", "Cyan")));
    EXPECT_FALSE(grp.matches(make("a-f-G", {}, {}, "u", "Blue")));
}

TEST(Filter, EmptyValuesAreRejected)
{
    EXPECT_THROW(filter::by_callsign({}), std::invalid_argument);
    EXPECT_THROW(filter::by_callsign({""}), std::invalid_argument);
    EXPECT_THROW(filter::by_uid({"a", ""}), std::invalid_argument);
}

// --- geo --------------------------------------------------------------------------------------

TEST(GreatCircle, KnownDistances)
{
    // One degree of latitude on this sphere: 2 pi R / 360.
    EXPECT_NEAR(great_circle_km(0, 0, 1, 0), 111.195, 0.01);
    // Across the antimeridian the short way: 0.2 degrees of longitude at the equator.
    EXPECT_NEAR(great_circle_km(0, 179.9, 0, -179.9), 22.239, 0.01);
    // Antipodes: half the circumference.
    EXPECT_NEAR(great_circle_km(0, 0, 0, 180), 20015.1, 0.1);
    EXPECT_DOUBLE_EQ(great_circle_km(45, 7, 45, 7), 0.0);
}

TEST(Filter, RadiusMatchesAcrossTheAntimeridian)
{
    const auto f = filter::within_radius(0.0, 179.95, 20.0);
    EXPECT_TRUE(f.matches(at(0.0, -179.95)));  // 11 km away, on the other side
    EXPECT_TRUE(f.matches(at(0.0, 180.0)));
    EXPECT_FALSE(f.matches(at(0.0, -179.7)));  // 39 km
    EXPECT_FALSE(f.matches(at(0.0, 179.5)));   // 50 km
}

TEST(Filter, RadiusNearAPoleCoversEveryLongitude)
{
    const auto f = filter::within_radius(89.9, 0.0, 50.0);
    EXPECT_TRUE(f.matches(at(90.0, 0.0)));
    EXPECT_TRUE(f.matches(at(89.8, 180.0)));   // across the pole: about 33 km
    EXPECT_TRUE(f.matches(at(89.9, -90.0)));   // about 16 km
    EXPECT_FALSE(f.matches(at(89.0, 0.0)));    // 100 km
    EXPECT_FALSE(f.matches(at(89.5, 180.0)));  // about 67 km
}

TEST(Filter, RadiusIsInclusiveAndNeedsAPoint)
{
    const auto f = filter::within_radius(10.0, 10.0, 111.2);
    EXPECT_TRUE(f.matches(at(11.0, 10.0)));  // 111.195 km
    EXPECT_FALSE(f.matches(make("a-f-G")));
    EXPECT_THROW(filter::within_radius(91, 0, 1), std::invalid_argument);
    EXPECT_THROW(filter::within_radius(0, 181, 1), std::invalid_argument);
    EXPECT_THROW(filter::within_radius(0, 0, 0), std::invalid_argument);
    EXPECT_THROW(filter::within_radius(0, 0, -1), std::invalid_argument);
}

TEST(Filter, HugeRadiusMatchesEverywhere)
{
    const auto f = filter::within_radius(0.0, 0.0, 25'000.0);
    EXPECT_TRUE(f.matches(at(0.0, 180.0)));
    EXPECT_TRUE(f.matches(at(-90.0, 0.0)));
}

TEST(Filter, BoxWithinOneHemisphere)
{
    const auto f = filter::within_box(40.0, -10.0, 50.0, 10.0);
    EXPECT_TRUE(f.matches(at(45.0, 0.0)));
    EXPECT_TRUE(f.matches(at(40.0, -10.0)));  // edges included
    EXPECT_TRUE(f.matches(at(50.0, 10.0)));
    EXPECT_FALSE(f.matches(at(39.99, 0.0)));
    EXPECT_FALSE(f.matches(at(45.0, 10.01)));
    EXPECT_FALSE(f.matches(make("a-f-G")));
}

TEST(Filter, BoxThatWrapsTheAntimeridian)
{
    const auto f = filter::within_box(-20.0, 170.0, -10.0, -170.0);  // Fiji
    EXPECT_TRUE(f.matches(at(-15.0, 175.0)));
    EXPECT_TRUE(f.matches(at(-15.0, -175.0)));
    EXPECT_TRUE(f.matches(at(-15.0, 180.0)));
    EXPECT_TRUE(f.matches(at(-15.0, -180.0)));
    EXPECT_FALSE(f.matches(at(-15.0, 0.0)));
    EXPECT_FALSE(f.matches(at(-15.0, 169.0)));
    EXPECT_FALSE(f.matches(at(-15.0, -169.0)));
    EXPECT_FALSE(f.matches(at(-21.0, 175.0)));
}

TEST(Filter, BoxRejectsBadEdges)
{
    EXPECT_THROW(filter::within_box(10, 0, 0, 10), std::invalid_argument);  // south > north
    EXPECT_THROW(filter::within_box(-91, 0, 0, 10), std::invalid_argument);
    EXPECT_THROW(filter::within_box(0, 0, 10, 181), std::invalid_argument);
}

// --- combinators ------------------------------------------------------------------------------

TEST(Filter, AlwaysNeverAndDefault)
{
    EXPECT_TRUE(filter::always().matches(make("x")));
    EXPECT_FALSE(filter::never().matches(make("x")));
    EXPECT_TRUE(filter().matches(make("x")));
    EXPECT_EQ(filter().what(), filter::kind::always);
}

TEST(Filter, CombinatorsCompose)
{
    const auto hostile = filter::by_type({"a-h"});
    const auto near = filter::within_radius(45.0, 7.0, 10.0);
    const auto both = hostile && near;
    const auto either = hostile || near;
    const auto not_hostile = !hostile;

    const auto hostile_near = make("a-h-G", cot_point{45.0, 7.0});
    const auto hostile_far = make("a-h-G", cot_point{0.0, 0.0});
    const auto friend_near = make("a-f-G", cot_point{45.01, 7.0});

    EXPECT_TRUE(both.matches(hostile_near));
    EXPECT_FALSE(both.matches(hostile_far));
    EXPECT_FALSE(both.matches(friend_near));
    EXPECT_TRUE(either.matches(hostile_far));
    EXPECT_TRUE(either.matches(friend_near));
    EXPECT_FALSE(not_hostile.matches(hostile_far));
    EXPECT_TRUE(not_hostile.matches(friend_near));

    EXPECT_FALSE(filter::any_of({}).matches(hostile_near));
    EXPECT_TRUE(filter::all_of({}).matches(hostile_near));
}

TEST(Filter, CustomSeesTheWholeMessage)
{
    const auto f =
        filter::custom("long", [](const cot_message& m) { return m.bytes().size() > 5; });
    EXPECT_TRUE(f.matches(make("a")));  // "<event/>" is 8 bytes
    EXPECT_THROW(filter::custom("empty", {}), std::invalid_argument);
}

TEST(Filter, CopiesShareTheTreeAndStayEquivalent)
{
    const auto f = filter::by_type({"a-f"}) && filter::by_callsign({"A"});
    const filter copy = f;  // NOLINT(performance-unnecessary-copy-initialization)
    EXPECT_EQ(copy.to_string(), f.to_string());
    EXPECT_TRUE(copy.matches(make("a-f-G", {}, "A")));
}

TEST(Filter, PrintsAReadableForm)
{
    const auto f = filter::all_of(
        {filter::by_type({"a-f-G", "a-.-A"}), filter::within_radius(45.0, 7.25, 10.0),
         !filter::by_callsign({"X"}), filter::custom("mine", [](auto&) { return true; })});
    EXPECT_EQ(f.to_string(),
              "all(type(a-f-G, a-.-A), radius(45, 7.25, 10km), not(callsign(X)), custom(mine))");
    std::ostringstream os;
    os << filter::within_box(-20, 170, -10, -170);
    EXPECT_EQ(os.str(), "box(S-20, W170, N-10, E-170)");
}

}  // namespace
}  // namespace omnitak
