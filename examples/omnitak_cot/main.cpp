// omnitak-cot: shows what a TAK stream capture holds, one JSON object per line.
//
//   omnitak-cot [FILE...]     (no FILE, or "-": standard input)
//
// Each file is read as one TAK streaming-XML session. Every event becomes
//   {"uid":..,"type":..,"how":..,"time":..,"start":..,"stale":..,"lat":..,"lon":..,"hae":..,
//    "ce":..,"le":..,"callsign":..,"group":..,"role":..,"bytes":N}
// (times ISO-8601 UTC with milliseconds, absent values null, bytes = the event's size), and
// every problem, framing or parsing, becomes {"error":"<name>","offset":N,"file":".."}.
// Exit status: 0 no problem, 1 at least one problem, 2 a file could not be read.
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "json_writer.hpp"
#include "omnitak/pool/error.hpp"
#include "omnitak/pool/framer.hpp"
#include "omnitak/pool/parser.hpp"

namespace {

using omnitak::cot_summary;
using omnitak::frame_result;

struct run_state {
    std::string line;
    bool problems = false;
};

void write_line(run_state& st)
{
    st.line += '\n';
    std::fwrite(st.line.data(), 1, st.line.size(), stdout);
    st.line.clear();
}

void write_problem(run_state& st, std::error_code code, std::uint64_t offset,
                   const std::string& file)
{
    st.problems = true;
    std::string_view name = code.category() == omnitak::error_category()
                                ? omnitak::to_string(static_cast<omnitak::errc>(code.value()))
                                : std::string_view("unknown");
    st.line += "{\"error\":";
    omnitak::tool::append_json_string(st.line, name);
    st.line += ",\"offset\":";
    st.line += std::to_string(offset);
    st.line += ",\"file\":";
    omnitak::tool::append_json_string(st.line, file);
    st.line += '}';
    write_line(st);
}

void write_event(run_state& st, const cot_summary& s, std::size_t bytes)
{
    using omnitak::tool::append_json_number;
    using omnitak::tool::append_json_string;
    using omnitak::tool::append_json_string_or_null;

    std::string& out = st.line;
    out += "{\"uid\":";
    append_json_string(out, s.uid);
    out += ",\"type\":";
    append_json_string(out, s.type);
    out += ",\"how\":";
    append_json_string_or_null(out, s.how);
    out += ",\"time\":";
    append_json_string(out, omnitak::format_cot_time(s.time));
    out += ",\"start\":";
    append_json_string(out, omnitak::format_cot_time(s.start));
    out += ",\"stale\":";
    append_json_string(out, omnitak::format_cot_time(s.stale));
    const char* fields[] = {",\"lat\":", ",\"lon\":", ",\"hae\":", ",\"ce\":", ",\"le\":"};
    const double values[] = {s.point ? s.point->lat : 0.0, s.point ? s.point->lon : 0.0,
                             s.point ? s.point->hae : 0.0, s.point ? s.point->ce : 0.0,
                             s.point ? s.point->le : 0.0};
    for (int i = 0; i < 5; ++i) {
        out += fields[i];
        if (s.point)
            append_json_number(out, values[i]);
        else
            out += "null";
    }
    out += ",\"callsign\":";
    append_json_string_or_null(out, s.callsign);
    out += ",\"group\":";
    append_json_string_or_null(out, s.group_name);
    out += ",\"role\":";
    append_json_string_or_null(out, s.group_role);
    out += ",\"bytes\":";
    out += std::to_string(bytes);
    out += '}';
    write_line(st);
}

void drain(omnitak::stream_framer& framer, run_state& st, const std::string& file)
{
    for (;;) {
        const frame_result r = framer.next();
        if (r.what == frame_result::kind::need_more) return;
        if (r.what == frame_result::kind::problem) {
            write_problem(st, r.problem.code, r.problem.offset, file);
            continue;
        }
        cot_summary summary;
        if (const std::error_code ec = omnitak::parse_cot(r.event, summary)) {
            write_problem(st, ec, r.offset, file);
            continue;
        }
        write_event(st, summary, r.event.size());
    }
}

// Returns false when the input could not be opened or read.
bool process(std::istream& in, const std::string& file, run_state& st)
{
    omnitak::stream_framer framer;
    std::vector<char> chunk(64 * 1024);
    while (in) {
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        const auto got = static_cast<std::size_t>(in.gcount());
        if (got == 0) break;
        framer.feed(std::string_view(chunk.data(), got));
        drain(framer, st, file);
    }
    if (in.bad()) return false;
    framer.finish();
    drain(framer, st, file);
    return true;
}

}  // namespace

int main(int argc, char** argv)
{
    CLI::App app{"Frame and parse TAK CoT streams; print one JSON object per event or problem"};
    app.footer(
        "Exit codes: 0 every input framed and parsed cleanly; 1 at least one problem was "
        "reported; 2 a file could not be read, the output could not be written, or the "
        "command line is wrong.");
    std::vector<std::string> files;
    app.add_option("files", files, "Capture files, each read as one TAK stream ('-' = stdin)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "omnitak-cot: %s (see --help)\n", e.what());
        return 2;
    }
    if (files.empty()) files.push_back("-");

    std::ios::sync_with_stdio(false);
    run_state st;
    bool unreadable = false;
    for (const std::string& file : files) {
        bool ok = false;
        errno = 0;
        if (file == "-") {
            ok = process(std::cin, file, st);
        } else {
            std::ifstream in(file, std::ios::binary);
            if (in) ok = process(in, file, st);
        }
        if (!ok) {
            const int reason = errno;
            std::fflush(stdout);
            std::fprintf(stderr, "omnitak-cot: cannot read '%s': %s\n", file.c_str(),
                         reason != 0 ? std::strerror(reason) : "read error");
            unreadable = true;
        }
    }
    // Output that could not be written (a full disk, a closed pipe) is a failure, not a run.
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
        std::fprintf(stderr, "omnitak-cot: cannot write the output: %s\n", std::strerror(errno));
        return 2;
    }
    if (unreadable) return 2;
    return st.problems ? 1 : 0;
}
