// The real-world CoT corpus (../shared/cot-corpus): every file gives what its folder promises.
// Skipped, saying so, when the corpus is not on this machine.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "omnitak/pool/framer.hpp"
#include "omnitak/pool/parser.hpp"
#include "support/test_support.hpp"
#include "unit/cot_test_helpers.hpp"

namespace omnitak::test {
namespace {

namespace fs = std::filesystem;

// One logical input: a file, or NAME.part1, NAME.part2, ... joined in order.
struct corpus_item {
    std::string name;  // path relative to the corpus, without .partN
    std::vector<std::string> parts;
};

std::map<std::string, corpus_item> collect(const fs::path& root, const char* folder)
{
    static const std::regex part_re(R"(^(.*)\.part(\d+)$)");
    std::map<std::string, std::vector<std::pair<int, fs::path>>> grouped;
    for (const auto& entry : fs::recursive_directory_iterator(root / folder)) {
        if (!entry.is_regular_file()) continue;
        const std::string rel = fs::relative(entry.path(), root).generic_string();
        std::smatch m;
        if (std::regex_match(rel, m, part_re))
            grouped[m[1]].emplace_back(std::stoi(m[2]), entry.path());
        else
            grouped[rel].emplace_back(0, entry.path());
    }
    std::map<std::string, corpus_item> items;
    for (auto& [name, parts] : grouped) {
        std::sort(parts.begin(), parts.end());
        corpus_item item{name, {}};
        for (const auto& [index, path] : parts)
            item.parts.push_back(read_file(path));
        items.emplace(name, std::move(item));
    }
    return items;
}

std::string joined(const corpus_item& item)
{
    std::string all;
    for (const auto& p : item.parts)
        all += p;
    return all;
}

std::vector<std::string_view> views(const corpus_item& item)
{
    return {item.parts.begin(), item.parts.end()};
}

// Framing results as words: "event" or the problem's name.
std::string framing_words(const std::vector<framed>& results)
{
    std::string words;
    for (const auto& r : results) {
        if (!words.empty()) words += ' ';
        words += r.what == frame_result::kind::event ? std::string("event") : r.code;
    }
    return words;
}

// Framing then parsing, as words: "ok" for a valid event, else the framing or parse error.
std::string outcome_words(const std::vector<framed>& results)
{
    std::string words;
    for (const auto& r : results) {
        if (!words.empty()) words += ' ';
        if (r.what != frame_result::kind::event) {
            words += r.code;
            continue;
        }
        cot_summary s;
        const std::error_code ec = parse_cot(r.bytes, s);
        words += ec ? std::string(to_string(static_cast<errc>(ec.value()))) : "ok";
    }
    return words;
}

std::optional<fs::path> corpus_or_skip()
{
    auto dir = corpus_dir();
    return dir && fs::is_directory(*dir / "xml") ? dir : std::nullopt;
}

#define OMNITAK_REQUIRE_CORPUS(dir)                                               \
    const auto dir = corpus_or_skip();                                            \
    if (!dir)                                                                     \
    GTEST_SKIP() << "CoT corpus not found (set OMNITAK_COT_CORPUS to its path); " \
                    "corpus checks skipped"

// xml/: every <event> is framed and parses as valid CoT. Exceptions, each for a stated reason:
const std::map<std::string, std::string> xml_exceptions = {
    // The protocol spec's negotiation examples carry the placeholder "TIME" for every time.
    {"xml/atak-civ/protocol-txt/protocol.txt__L165.xml", "bad_time"},
    {"xml/atak-civ/protocol-txt/protocol.txt__L188.xml", "bad_time"},
    {"xml/atak-civ/protocol-txt/protocol.txt__L221.xml", "bad_time"},
};

TEST(CotCorpus, XmlFilesGiveValidEvents)
{
    OMNITAK_REQUIRE_CORPUS(dir);
    static const std::regex event_start("<event[\\s>/]");
    std::size_t files = 0, events = 0;
    for (const auto& [name, item] : collect(*dir, "xml")) {
        SCOPED_TRACE(name);
        const std::string bytes = joined(item);
        const auto results = frame_whole(bytes);

        // As many events as `<event` start tags in the file (the corpus has no CDATA).
        const auto expected = static_cast<std::size_t>(std::distance(
            std::sregex_iterator(bytes.begin(), bytes.end(), event_start), std::sregex_iterator()));
        std::size_t framed_events = 0;
        for (const auto& r : results) {
            if (r.what == frame_result::kind::event) {
                ++framed_events;
                cot_summary s;
                const std::error_code ec = parse_cot(r.bytes, s);
                const auto exception = xml_exceptions.find(name);
                if (exception == xml_exceptions.end())
                    EXPECT_FALSE(ec) << ec.message();
                else
                    EXPECT_EQ(to_string(static_cast<errc>(ec.value())), exception->second);
            } else {
                // Only <events> wrappers and comments around events may be left over.
                EXPECT_EQ(r.code, "bytes_skipped");
            }
        }
        EXPECT_EQ(framed_events, expected);
        EXPECT_EQ(frame_bytewise(bytes), results);
        ++files;
        events += framed_events;
    }
    EXPECT_GE(files, 190u);
    EXPECT_GE(events, 196u);
}

// streams/: the framing each stream must give, and how many of its events are valid CoT (the
// node-tak, goatak and taky vectors are bare <event> elements made for framing tests).
struct stream_expectation {
    const char* framing;
    std::size_t valid;
};
const std::map<std::string, stream_expectation> stream_expectations = {
    // Log prefixes and prose between captures; one capture lacks its closing tag.
    {"streams/atak-civ/atakcotcaptures.txt",
     {"bytes_skipped event event bytes_skipped event event bytes_skipped event "
      "event_unterminated event event event event event event event bytes_skipped event "
      "bytes_skipped event bytes_skipped event bytes_skipped event bytes_skipped event",
      17}},
    {"streams/goatak/tagreader_test__test1.txt", {"bytes_skipped event bytes_skipped", 0}},
    {"streams/goatak/tagreader_test__test2.txt", {"event", 0}},
    {"streams/goatak/tagreader_test__test3.txt", {"bytes_skipped event", 0}},
    {"streams/node-tak/findCoT__Basic.txt", {"event", 0}},
    {"streams/node-tak/findCoT__New_Lines.txt", {"event", 0}},
    {"streams/node-tak/findCoT__New_Lines_Non_Greedy.txt", {"event event", 0}},
    {"streams/node-tak/findCoT__bad_post_data.txt", {"event bytes_skipped", 0}},
    {"streams/node-tak/findCoT__bad_preceding_data.txt", {"bytes_skipped event", 0}},
    {"streams/node-tak/findCoT__mixed.txt", {"event bytes_skipped event", 0}},
    {"streams/pytak/test_cli_main__frame_with_remainder.txt", {"event event stream_truncated", 2}},
    {"streams/taky/test_split_data", {"event", 0}},
    {"streams/taky/test_split_decl", {"event", 0}},
    {"streams/taky/test_split_decl2", {"event", 0}},
    {"streams/taky/test_split_decl3", {"event event", 0}},
    {"streams/taky/test_valid_xml", {"event", 0}},
};

TEST(CotCorpus, StreamsFrameAsExpectedHoweverTheyAreSplit)
{
    OMNITAK_REQUIRE_CORPUS(dir);
    std::size_t seen = 0;
    for (const auto& [name, item] : collect(*dir, "streams")) {
        SCOPED_TRACE(name);
        const auto expectation = stream_expectations.find(name);
        ASSERT_NE(expectation, stream_expectations.end()) << "new stream without expectation";
        ++seen;

        // Fed in its parts, as the peers' tests did.
        const auto results = frame_chunks(views(item));
        EXPECT_EQ(framing_words(results), expectation->second.framing);
        std::size_t valid = 0;
        for (const auto& r : results) {
            cot_summary s;
            if (r.what == frame_result::kind::event && !parse_cot(r.bytes, s)) ++valid;
        }
        EXPECT_EQ(valid, expectation->second.valid);

        // Whole, one byte at a time, and split at every offset: the same results.
        const std::string bytes = joined(item);
        EXPECT_EQ(frame_whole(bytes), results);
        EXPECT_EQ(frame_bytewise(bytes), results);
        for (std::size_t cut = 0; cut <= bytes.size(); ++cut)
            ASSERT_EQ(frame_split(bytes, {cut}), results) << "cut at " << cut;
    }
    EXPECT_EQ(seen, stream_expectations.size());
}

// malformed/: what each file must give, framed then parsed ("ok" = a valid event), and what
// parse_cot says of the whole file. Every file must yield at least one problem either way;
// files the corpus notes as "must at least flag as invalid CoT" are well-formed XML rejected
// for a missing field.
struct malformed_expectation {
    const char* framed;
    const char* whole;
};
const std::map<std::string, malformed_expectation> malformed_expectations = {
    {"malformed/atak-civ/CotEventTester.java__L125.xml", {"not_well_formed", "not_well_formed"}},
    {"malformed/atak-civ/CotEventTester.java__L83.xml", {"stream_truncated", "not_well_formed"}},
    {"malformed/atak-civ/atakcotcaptures.txt__L117.xml", {"stream_truncated", "not_well_formed"}},
    // A DOCTYPE before the event: junk to the framer, refused by the parser.
    {"malformed/cotlib/doctype_rejection.xml", {"bytes_skipped missing_uid", "doctype_forbidden"}},
    {"malformed/cotlib/doctype_variation_1.xml",
     {"bytes_skipped missing_uid", "doctype_forbidden"}},
    {"malformed/cotlib/doctype_variation_2.xml",
     {"bytes_skipped missing_uid", "doctype_forbidden"}},
    {"malformed/cotlib/doctype_variation_3.xml",
     {"bytes_skipped missing_uid", "doctype_forbidden"}},
    {"malformed/cotlib/element_count_limit.xml", {"too_many_elements", "too_many_elements"}},
    {"malformed/cotlib/event_pool_test__bad.xml", {"not_well_formed", "not_well_formed"}},
    // Hostile sizes within our limits (2 MiB text, long xmlns and name, depth 7): still not
    // CoT, as they carry no attributes.
    {"malformed/cotlib/max_xml_size.xml", {"missing_uid", "missing_uid"}},
    {"malformed/cotlib/namespace_validation_long_xmlns.xml", {"missing_uid", "missing_uid"}},
    {"malformed/cotlib/secure_decoder_limits_deep_nesting.xml", {"missing_uid", "missing_uid"}},
    {"malformed/cotlib/token_length_limit.xml", {"missing_uid", "missing_uid"}},
    {"malformed/freetaktest/Mission - add overlay Rectangle.cot",
     {"not_well_formed", "not_well_formed"}},
    {"malformed/freetaktest/Presence_InitialWinTak.cot", {"missing_uid", "missing_uid"}},
    {"malformed/freetaktest/Presence_roleSniper.cot", {"not_well_formed", "not_well_formed"}},
    // </event> comes before the detail: one valid event, the trailing detail is junk.
    {"malformed/freetaktest/presenceHealth.cot", {"ok bytes_skipped", "not_well_formed"}},
    {"malformed/node-cot/broken-cot-1.cot", {"missing_type", "missing_type"}},
    {"malformed/node-cot/validation.test.ts__L85.xml", {"bytes_skipped", "root_not_event"}},
    {"malformed/node-tak/findCoT__Unfinished.txt", {"stream_truncated", "not_well_formed"}},
    {"malformed/omnitak/parser.rs__L682.xml", {"missing_uid", "missing_uid"}},
    {"malformed/omnitak/parser.rs__L695.xml", {"missing_uid", "missing_uid"}},
    {"malformed/omnitak/parser.rs__L699.xml", {"missing_uid", "missing_uid"}},
    {"malformed/pytak/test_cli_main__event_partial.txt", {"stream_truncated", "not_well_formed"}},
    {"malformed/pytak/test_ws_workers__fake_proto_frame.bin", {"bytes_skipped", "not_well_formed"}},
    {"malformed/pytak/test_ws_workers__fake_proto_frame2.bin",
     {"bytes_skipped", "not_well_formed"}},
};

TEST(CotCorpus, MalformedFilesAreRejected)
{
    OMNITAK_REQUIRE_CORPUS(dir);
    std::size_t seen = 0;
    for (const auto& [name, item] : collect(*dir, "malformed")) {
        SCOPED_TRACE(name);
        const auto expectation = malformed_expectations.find(name);
        ASSERT_NE(expectation, malformed_expectations.end()) << "new file without expectation";
        ++seen;

        const std::string bytes = joined(item);
        const auto results = frame_whole(bytes);
        const std::string words = outcome_words(results);
        EXPECT_EQ(words, expectation->second.framed);
        EXPECT_NE(words.find('_'), std::string::npos) << "no problem reported";

        cot_summary s;
        const std::error_code ec = parse_cot(bytes, s);
        ASSERT_TRUE(ec);
        EXPECT_EQ(to_string(static_cast<errc>(ec.value())), expectation->second.whole);
        EXPECT_EQ(frame_bytewise(bytes), results);
    }
    EXPECT_EQ(seen, malformed_expectations.size());
}

}  // namespace
}  // namespace omnitak::test
