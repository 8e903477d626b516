#include "traffic.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <new>
#include <numbers>
#include <stdexcept>

#include "omnitak/pool/framer.hpp"
#include "omnitak/pool/parser.hpp"
#include "omnitak/pool/writer.hpp"

namespace omnitak::example {

namespace {

constexpr double metres_per_degree = 111'320.0;
constexpr double deg = std::numbers::pi / 180.0;

constexpr std::array<std::string_view, 12> phonetic{"ALPHA", "BRAVO",   "CHARLIE", "DELTA",
                                                    "ECHO",  "FOXTROT", "GOLF",    "HOTEL",
                                                    "INDIA", "KILO",    "LIMA",    "MIKE"};
constexpr std::array<std::string_view, 6> teams{"Cyan",    "Yellow", "Green",
                                                "Magenta", "Orange", "Dark Blue"};
constexpr std::array<std::string_view, 5> roles{"Team Member", "Team Lead", "RTO", "Medic",
                                                "Forward Observer"};
constexpr std::array<std::string_view, 8> chat_lines{"Moving to phase line BLUE",
                                                     "Holding at checkpoint, over",
                                                     "Need resupply at grid 11S NV 4521",
                                                     "Copy all, moving now",
                                                     "Eyes on two vehicles heading north",
                                                     "Comms check, how copy?",
                                                     "ETA ten minutes",
                                                     "RTB, out"};
constexpr std::array<std::string_view, 5> marker_names{"Checkpoint", "Rally Point", "LZ", "OP",
                                                       "Obstacle"};

std::string fixed(double value, int decimals)
{
    char text[48];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

std::string hex(std::uint64_t value, int digits)
{
    char text[24];
    std::snprintf(text, sizeof text, "%0*llx", digits, static_cast<unsigned long long>(value));
    return text;
}

// A UUID-shaped identifier from 128 random bits (version 4 layout, as ATAK's marker uids).
std::string uuid(std::mt19937_64& random)
{
    const std::uint64_t a = random();
    const std::uint64_t b = random();
    return hex(a >> 32, 8) + "-" + hex((a >> 16) & 0xffff, 4) + "-4" + hex(a & 0x0fff, 3) + "-" +
           hex(0x8000 | ((b >> 48) & 0x3fff), 4) + "-" + hex(b & 0xffffffffffffULL, 12);
}

std::string event_head(std::string_view uid, std::string_view type, std::string_view how,
                       cot_time now, cot_time stale)
{
    const std::string time = format_cot_time(now);
    std::string out;
    out.reserve(512);
    out += "<event version=\"2.0\" uid=\"";
    out += xml_escape(uid);
    out += "\" type=\"";
    out += type;
    out += "\" how=\"";
    out += how;
    out += "\" time=\"";
    out += time;
    out += "\" start=\"";
    out += time;
    out += "\" stale=\"";
    out += format_cot_time(stale);
    out += "\">";
    return out;
}

}  // namespace

std::string_view to_string(traffic_kind kind) noexcept
{
    switch (kind) {
        case traffic_kind::position:
            return "position";
        case traffic_kind::chat:
            return "chat";
        case traffic_kind::marker:
            return "marker";
        case traffic_kind::emergency:
            return "emergency";
        case traffic_kind::emergency_cancel:
            return "emergency_cancel";
    }
    return "unknown";
}

std::string xml_escape(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    append_xml_attribute_escaped(out, text);
    return out;
}

traffic_generator::traffic_generator(traffic_params params) : params_(params), random_(params.seed)
{
    if (params_.units == 0 || params_.units > 100'000) {
        throw std::invalid_argument("traffic_params::units must be in 1..100000");
    }
    if (!(params_.radius_km > 0))
        throw std::invalid_argument("traffic_params::radius_km must be > 0");
    if (params_.chat_share < 0 || params_.marker_share < 0 ||
        params_.chat_share + params_.marker_share > 1) {
        throw std::invalid_argument(
            "traffic_params::chat_share and marker_share must be >= 0 with a sum <= 1");
    }
    if (params_.center_lat < -80 || params_.center_lat > 80 || params_.center_lon < -180 ||
        params_.center_lon > 180) {
        throw std::invalid_argument("traffic_params::center_lat/center_lon out of range");
    }

    // Units start spread over the area: a third on foot, a third in vehicles, the rest
    // split between vehicles and helicopters, as a mixed patrol would be.
    std::uniform_real_distribution<double> unit_interval(0.0, 1.0);
    units_.reserve(params_.units);
    for (std::size_t i = 0; i < params_.units; ++i) {
        unit_state u;
        u.uid = "ANDROID-" + hex(random_(), 16);
        u.callsign = std::string(phonetic[i % phonetic.size()]) + "-" +
                     std::to_string(i / phonetic.size() + 1);
        u.team = teams[i % teams.size()];
        u.role = roles[(i / teams.size()) % roles.size()];

        const double pick = unit_interval(random_);
        if (pick < 0.45) {
            u.type = "a-f-G-U-C-I";
            u.speed = 1.0 + unit_interval(random_);
            u.hae = 700 + 50 * unit_interval(random_);
        } else if (pick < 0.9) {
            u.type = "a-f-G-E-V-C";
            u.speed = 5.0 + 10.0 * unit_interval(random_);
            u.hae = 700 + 50 * unit_interval(random_);
        } else {
            u.type = "a-f-A-M-H";
            u.speed = 30.0 + 30.0 * unit_interval(random_);
            u.hae = 1000 + 500 * unit_interval(random_);
        }

        const double r = params_.radius_km * 1000.0 * std::sqrt(unit_interval(random_));
        const double bearing = 360.0 * unit_interval(random_);
        u.lat = params_.center_lat + r * std::cos(bearing * deg) / metres_per_degree;
        u.lon = params_.center_lon +
                r * std::sin(bearing * deg) / (metres_per_degree * std::cos(u.lat * deg));
        u.course = 360.0 * unit_interval(random_);
        u.battery = 60 + 40 * unit_interval(random_);
        units_.push_back(std::move(u));
    }
}

cot_time traffic_generator::advance(unit_state& unit, cot_time now)
{
    // Reports carry milliseconds, and a unit never sends two with the same time: (uid, time)
    // identifies a report.
    now = std::chrono::floor<std::chrono::milliseconds>(now);
    if (unit.last != cot_time{} && now <= unit.last) now = unit.last + std::chrono::milliseconds(1);

    // Dead reckoning over the time since the last report (at most a minute, so a paused
    // generator does not teleport its units).
    double dt =
        unit.last == cot_time{} ? 0.0 : std::chrono::duration<double>(now - unit.last).count();
    dt = std::clamp(dt, 0.0, 60.0);
    unit.last = now;

    std::uniform_real_distribution<double> jitter(-15.0, 15.0);
    const double d = unit.speed * dt;
    unit.lat += d * std::cos(unit.course * deg) / metres_per_degree;
    unit.lon += d * std::sin(unit.course * deg) / (metres_per_degree * std::cos(unit.lat * deg));

    // Leaving the area: turn back toward the centre; otherwise wander a little.
    const double north = (params_.center_lat - unit.lat) * metres_per_degree;
    const double east =
        (params_.center_lon - unit.lon) * metres_per_degree * std::cos(unit.lat * deg);
    if (std::hypot(north, east) > params_.radius_km * 1000.0) {
        unit.course = std::atan2(east, north) / deg;
    }
    unit.course = std::fmod(unit.course + jitter(random_) + 360.0, 360.0);
    unit.battery = std::max(5.0, unit.battery - dt * 0.001);
    return now;
}

std::string traffic_generator::point_xml(double lat, double lon, double hae, double ce) const
{
    return "<point lat=\"" + fixed(lat, 7) + "\" lon=\"" + fixed(lon, 7) + "\" hae=\"" +
           fixed(hae, 1) + "\" ce=\"" + fixed(ce, 1) + "\" le=\"9999999.0\"/>";
}

generated_event traffic_generator::position(std::size_t index, cot_time now)
{
    auto& u = units_.at(index);
    now = advance(u, now);
    ++produced_;

    std::string xml = event_head(u.uid, u.type, "m-g", now, now + params_.position_stale);
    xml += point_xml(u.lat, u.lon, u.hae, 4.9);
    xml +=
        "<detail><takv os=\"34\" version=\"4.10.0.57 (omnitak)\" device=\"SAMSUNG SM-G781U\" "
        "platform=\"ATAK-CIV\"/><contact endpoint=\"*:-1:stcp\" callsign=\"";
    xml += xml_escape(u.callsign);
    xml += "\"/><uid Droid=\"";
    xml += xml_escape(u.callsign);
    xml += "\"/><precisionlocation altsrc=\"GPS\" geopointsrc=\"GPS\"/><__group role=\"";
    xml += xml_escape(u.role);
    xml += "\" name=\"";
    xml += xml_escape(u.team);
    xml += "\"/><status battery=\"";
    xml += std::to_string(static_cast<int>(u.battery));
    xml += "\"/><track course=\"";
    xml += fixed(u.course, 1);
    xml += "\" speed=\"";
    xml += fixed(u.speed, 2);
    xml += "\"/></detail></event>";
    return {traffic_kind::position, u.uid, u.type, now, std::move(xml)};
}

generated_event traffic_generator::chat(std::size_t from, cot_time now)
{
    auto& u = units_.at(from);
    now = advance(u, now);
    ++produced_;

    const std::string message_id = uuid(random_);
    const std::string uid = "GeoChat." + u.uid + ".All Chat Rooms." + message_id;
    const auto line = chat_lines[chat_sequence_++ % chat_lines.size()];

    std::string xml = event_head(uid, "b-t-f", "h-g-i-g-o", now, now + std::chrono::hours(24));
    xml += point_xml(u.lat, u.lon, u.hae, 4.9);
    xml += "<detail><__chat parent=\"RootContactGroup\" groupOwner=\"false\" messageId=\"";
    xml += message_id;
    xml += "\" chatroom=\"All Chat Rooms\" id=\"All Chat Rooms\" senderCallsign=\"";
    xml += xml_escape(u.callsign);
    xml += "\"><chatgrp uid0=\"";
    xml += xml_escape(u.uid);
    xml += "\" uid1=\"All Chat Rooms\" id=\"All Chat Rooms\"/></__chat><link uid=\"";
    xml += xml_escape(u.uid);
    xml += "\" type=\"";
    xml += u.type;
    xml += "\" relation=\"p-p\"/><remarks source=\"BAO.F.ATAK.";
    xml += xml_escape(u.uid);
    xml += "\" to=\"All Chat Rooms\" time=\"";
    xml += format_cot_time(now);
    xml += "\">";
    xml += xml_escape(line);
    xml += "</remarks><__serverdestination destinations=\"0.0.0.0:4242:tcp:";
    xml += xml_escape(u.uid);
    xml += "\"/></detail></event>";
    return {traffic_kind::chat, uid, "b-t-f", now, std::move(xml)};
}

generated_event traffic_generator::marker(std::size_t by, cot_time now)
{
    auto& u = units_.at(by);
    now = advance(u, now);
    ++produced_;

    // A spot map marker dropped a few hundred metres ahead of the unit.
    const double ahead = 300.0;
    const double lat = u.lat + ahead * std::cos(u.course * deg) / metres_per_degree;
    const double lon =
        u.lon + ahead * std::sin(u.course * deg) / (metres_per_degree * std::cos(u.lat * deg));
    const std::string uid = uuid(random_);
    const std::string name = std::string(marker_names[marker_sequence_ % marker_names.size()]) +
                             " " + std::to_string(marker_sequence_ + 1);
    ++marker_sequence_;

    std::string xml =
        event_head(uid, "b-m-p-s-m", "h-g-i-g-o", now, now + std::chrono::hours(24 * 365));
    xml += point_xml(lat, lon, u.hae, 9999999.0);
    xml += "<detail><status readiness=\"true\"/><archive/><link uid=\"";
    xml += xml_escape(u.uid);
    xml += "\" production_time=\"";
    xml += format_cot_time(now);
    xml += "\" type=\"";
    xml += u.type;
    xml += "\" parent_callsign=\"";
    xml += xml_escape(u.callsign);
    xml += "\" relation=\"p-p\"/><contact callsign=\"";
    xml += xml_escape(name);
    xml +=
        "\"/><remarks/><archive/><color argb=\"-1\"/><precisionlocation altsrc=\"DTED0\"/>"
        "<usericon iconsetpath=\"COT_MAPPING_SPOTMAP/b-m-p-s-m/-1\"/></detail></event>";
    return {traffic_kind::marker, uid, "b-m-p-s-m", now, std::move(xml)};
}

generated_event traffic_generator::emergency(std::size_t index, cot_time now)
{
    return emergency_event(index, now, false);
}

generated_event traffic_generator::emergency_cancel(std::size_t index, cot_time now)
{
    return emergency_event(index, now, true);
}

generated_event traffic_generator::emergency_event(std::size_t index, cot_time now, bool cancel)
{
    auto& u = units_.at(index);
    now = advance(u, now);
    ++produced_;

    // The cancel has the alert's uid: it replaces the alert on every map.
    const std::string uid = u.uid + "-9-1-1";
    const std::string_view type = cancel ? "b-a-o-can" : "b-a-o-tbl";
    std::string xml = event_head(uid, type, "m-g", now, now + std::chrono::seconds(10));
    xml += point_xml(u.lat, u.lon, u.hae, 4.9);
    xml += "<detail><link uid=\"";
    xml += xml_escape(u.uid);
    xml += "\" type=\"";
    xml += u.type;
    xml += "\" relation=\"p-p\"/><contact callsign=\"";
    xml += xml_escape(u.callsign);
    xml += cancel ? "-Alert\"/><emergency cancel=\"true\">"
                  : "-Alert\"/><emergency type=\"911 Alert\">";
    xml += xml_escape(u.callsign);
    xml += "</emergency></detail></event>";
    return {cancel ? traffic_kind::emergency_cancel : traffic_kind::emergency, uid,
            std::string(type), now, std::move(xml)};
}

generated_event traffic_generator::next(cot_time now)
{
    const std::uint64_t n = produced_ + 1;
    std::uniform_int_distribution<std::size_t> any_unit(0, units_.size() - 1);

    // Emergencies on a fixed cadence so every run of the example shows one and its cancel.
    if (params_.emergency_every > 0) {
        if (n % params_.emergency_every == 0 && !in_emergency_) {
            in_emergency_ = any_unit(random_);
            return emergency(*in_emergency_, now);
        }
        if (in_emergency_ && n % params_.emergency_every == params_.emergency_every / 2) {
            const std::size_t unit = *in_emergency_;
            in_emergency_.reset();
            return emergency_cancel(unit, now);
        }
    }

    std::uniform_real_distribution<double> unit_interval(0.0, 1.0);
    const double pick = unit_interval(random_);
    if (pick < params_.chat_share) return chat(any_unit(random_), now);
    if (pick < params_.chat_share + params_.marker_share) return marker(any_unit(random_), now);
    return position(any_unit(random_), now);
}

// --- latency_recorder --------------------------------------------------------------------

std::size_t latency_recorder::bucket_of(std::uint64_t ns) noexcept
{
    // Values below 2^sub_bits get one bucket each; above, each power of two is cut into
    // sub_count equal slices.
    if (ns < sub_count) return static_cast<std::size_t>(ns);
    const unsigned exponent = 63u - static_cast<unsigned>(__builtin_clzll(ns));
    const std::size_t sub = static_cast<std::size_t>(ns >> (exponent - sub_bits)) & (sub_count - 1);
    const std::size_t bucket = (exponent - sub_bits + 1) * sub_count + sub;
    return std::min(bucket, bucket_count - 1);
}

std::uint64_t latency_recorder::upper_bound_of(std::size_t bucket) noexcept
{
    if (bucket < sub_count) return bucket;
    const std::size_t exponent = bucket / sub_count + sub_bits - 1;
    const std::size_t sub = bucket % sub_count;
    const std::uint64_t width = std::uint64_t{1} << (exponent - sub_bits);
    return (std::uint64_t{1} << exponent) + (sub + 1) * width - 1;
}

void latency_recorder::record(std::chrono::nanoseconds latency) noexcept
{
    const std::uint64_t ns = latency.count() < 0 ? 0 : static_cast<std::uint64_t>(latency.count());
    buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(ns, std::memory_order_relaxed);

    std::uint64_t seen = max_.load(std::memory_order_relaxed);
    while (ns > seen && !max_.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {
    }
}

std::chrono::nanoseconds latency_recorder::mean() const noexcept
{
    const std::uint64_t n = count();
    return std::chrono::nanoseconds(n == 0 ? 0 : sum_.load(std::memory_order_relaxed) / n);
}

std::chrono::nanoseconds latency_recorder::percentile(double q) const noexcept
{
    std::uint64_t total = 0;
    for (const auto& b : buckets_)
        total += b.load(std::memory_order_relaxed);
    if (total == 0) return std::chrono::nanoseconds(0);

    q = std::clamp(q, 0.0, 1.0);
    const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * total)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
        seen += buckets_[i].load(std::memory_order_relaxed);
        if (seen >= rank) {
            const std::uint64_t bound =
                std::min(upper_bound_of(i), static_cast<std::uint64_t>(max().count()));
            return std::chrono::nanoseconds(bound);
        }
    }
    return max();
}

void latency_recorder::reset() noexcept
{
    for (auto& b : buckets_)
        b.store(0, std::memory_order_relaxed);
    count_.store(0, std::memory_order_relaxed);
    sum_.store(0, std::memory_order_relaxed);
    max_.store(0, std::memory_order_relaxed);
}

std::optional<std::size_t> resident_memory_bytes()
{
    // statm: size resident shared text lib data dt, in pages. The file stays open from the
    // first call on: a run that uses every descriptor it may have (one per link, one per mock
    // server session) can still read its memory.
    static const int statm = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (statm < 0) return std::nullopt;
    char text[128];
    const ssize_t n = ::pread(statm, text, sizeof text - 1, 0);
    if (n <= 0) return std::nullopt;
    text[n] = '\0';
    unsigned long long size = 0;
    unsigned long long resident = 0;
    if (std::sscanf(text, "%llu %llu", &size, &resident) != 2) return std::nullopt;
    const long page = ::sysconf(_SC_PAGESIZE);
    if (page <= 0) return std::nullopt;
    return static_cast<std::size_t>(resident) * static_cast<std::size_t>(page);
}

namespace {

bool stopped(const std::function<bool()>& stop)
{
    return stop && stop();
}

// Appends the events of one file's bytes to `out`; false when `stop` asked to end.
bool frame_bytes(const std::string& bytes, replay_set& out, const std::function<bool()>& stop)
{
    // Captures hold events back to back with prologues and junk between them: exactly what
    // the stream framer is for. Each file is its own stream.
    stream_framer framer;
    framer.feed_borrowed(bytes);
    framer.finish();
    cot_summary summary;
    for (std::uint64_t n = 1;; ++n) {
        if (n % 4096 == 0 && stopped(stop)) return false;
        const frame_result r = framer.next();
        if (r.what == frame_result::kind::need_more) break;
        if (r.what == frame_result::kind::problem) {
            // Junk between events is normal in captures; an event lost whole is a rejection.
            if (r.problem.code != errc::bytes_skipped) ++out.rejected;
            continue;
        }
        if (parse_cot(r.event, summary)) {
            ++out.rejected;
        } else {
            out.events.emplace_back(r.event);
        }
    }
    return true;
}

void frame_file(const std::filesystem::path& file, replay_set& out, std::error_code& ec,
                const std::function<bool()>& stop)
{
    errno = 0;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        // ifstream keeps no reason; open(2)'s errno is still the one that failed.
        ec = std::error_code(errno != 0 ? errno : ENOENT, std::generic_category());
        out.failed = file;
        return;
    }
    // A read that fails after a good open (EIO, as from /proc/self/mem or a failing disk)
    // throws from inside the stream buffer with read(2)'s errno; with badbit in the mask the
    // stream passes that exception on instead of only setting the bit.
    in.exceptions(std::ios::badbit);
    try {
        std::string bytes;
        std::vector<char> chunk(std::size_t{1} << 20);
        while (in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) ||
               in.gcount() > 0) {
            bytes.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
            if (stopped(stop)) {
                ec = std::make_error_code(std::errc::operation_canceled);
                return;
            }
        }
        ++out.files;
        if (!frame_bytes(bytes, out, stop))
            ec = std::make_error_code(std::errc::operation_canceled);
    } catch (const std::ios_base::failure& e) {
        ec = e.code().category() == std::iostream_category()
                 ? std::make_error_code(std::errc::io_error)
                 : e.code();
        out.failed = file;
    } catch (const std::bad_alloc&) {
        // A capture larger than memory allows: the file, or the events read so far.
        ec = std::make_error_code(std::errc::not_enough_memory);
        out.failed = file;
    }
}

replay_set failure_at(std::filesystem::path where)
{
    replay_set failed;
    failed.failed = std::move(where);
    return failed;
}

}  // namespace

replay_set load_replay(const std::filesystem::path& path, std::error_code& ec,
                       const std::function<bool()>& stop)
{
    ec.clear();
    replay_set out;
    if (std::filesystem::is_directory(path, ec)) {
        std::vector<std::filesystem::path> files;
        std::filesystem::path current = path;  // the entry an increment error is about
        for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
             !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
            // A symlink loop or an entry we may not look at is an error naming that entry,
            // not a file quietly left out.
            current = it->path();
            std::error_code entry_ec;
            const auto status = it->status(entry_ec);
            if (entry_ec) {
                ec = entry_ec;
                return failure_at(current);
            }
            if (std::filesystem::is_regular_file(status)) {
                files.push_back(current);
            } else if (!std::filesystem::is_directory(status)) {
                ++out.skipped;
            } else if (it->is_symlink(entry_ec)) {
                ++out.links_not_followed;  // it could lead back up
            }
        }
        // Opening a subfolder fails in increment(), while the iterator still stands on it.
        if (ec) return failure_at(current);
        std::sort(files.begin(), files.end());
        for (const auto& file : files) {
            frame_file(file, out, ec, stop);
            if (ec) return failure_at(out.failed);
        }
        return out;
    }
    if (ec) return {};
    // Only regular files: a device such as /dev/zero or a FIFO would be read without end.
    if (!std::filesystem::is_regular_file(path, ec)) {
        if (ec) return {};
        ec = std::make_error_code(std::errc::invalid_argument);
        replay_set refused;
        refused.not_a_file = true;
        return refused;
    }
    frame_file(path, out, ec, stop);
    if (ec) return failure_at(out.failed);
    return out;
}

}  // namespace omnitak::example
