// Realistic CoT traffic for the complete_system example, and the two instruments it reports
// with: an end-to-end latency recorder and a resident-memory reader.
//
// The generator plays a small TAK team: units moving along tracks and reporting positions
// (same uid, newer time), GeoChat messages to All Chat Rooms, map markers, and now and then
// an emergency (911 alert) followed later by its cancel. Every event is built as exact XML
// bytes in the shape ATAK sends, single line, no prologue.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "omnitak/pool/message.hpp"

namespace omnitak::example {

enum class traffic_kind : std::uint8_t { position, chat, marker, emergency, emergency_cancel };

std::string_view to_string(traffic_kind kind) noexcept;

struct traffic_params {
    /// Moving units (distinct uids reporting positions). Default 64; range 1..100000.
    std::size_t units = 64;
    /// Seed of the pseudo-random choices, so a run can be repeated. Default 1.
    std::uint64_t seed = 1;
    /// Centre of the area of operations, degrees. Default: Fort Irwin, California.
    double center_lat = 35.2628;
    double center_lon = -116.6840;
    /// Units stay within this distance of the centre, km. Default 15; must be > 0.
    double radius_km = 15.0;
    /// Shares of the traffic, each in [0, 1], sum <= 1; the rest is position reports.
    /// Defaults: 4 % chat, 2 % markers.
    double chat_share = 0.04;
    double marker_share = 0.02;
    /// One emergency every this many events, its cancel half as many events later.
    /// Default 5000; 0 disables emergencies.
    std::uint64_t emergency_every = 5000;
    /// Stale time of position reports after their time. Default 2 minutes.
    std::chrono::seconds position_stale{120};
};

/// One generated event.
struct generated_event {
    traffic_kind kind = traffic_kind::position;
    std::string uid;
    std::string type;
    cot_time time{};    ///< the event's time attribute (millisecond precision)
    std::string bytes;  ///< exact XML, `<event` ... `</event>`
};

/// Produces the traffic. Not thread-safe: one generator per producing thread (give each a
/// different seed).
class traffic_generator {
public:
    /// Throws std::invalid_argument naming a bad field.
    explicit traffic_generator(traffic_params params = {});

    /// The next event of the mix at wall-clock time `now`. Units advance along their tracks
    /// by the time elapsed since their previous report.
    generated_event next(cot_time now);

    generated_event position(std::size_t unit, cot_time now);
    generated_event chat(std::size_t from_unit, cot_time now);
    generated_event marker(std::size_t by_unit, cot_time now);
    generated_event emergency(std::size_t unit, cot_time now);
    generated_event emergency_cancel(std::size_t unit, cot_time now);

    std::size_t units() const noexcept { return units_.size(); }
    std::uint64_t produced() const noexcept { return produced_; }

private:
    generated_event emergency_event(std::size_t unit, cot_time now, bool cancel);
    struct unit_state {
        std::string uid;
        std::string callsign;
        std::string type;
        std::string team;
        std::string role;
        double lat = 0;
        double lon = 0;
        double hae = 0;
        double course = 0;     // degrees from north
        double speed = 0;      // metres per second
        double battery = 100;  // percent
        cot_time last{};
    };

    // Moves the unit to `now` and returns the time its report carries (`now`, or 1 ms after
    // its previous report when that is not earlier).
    cot_time advance(unit_state& unit, cot_time now);
    std::string point_xml(double lat, double lon, double hae, double ce) const;

    traffic_params params_;
    std::mt19937_64 random_;
    std::vector<unit_state> units_;
    std::uint64_t produced_ = 0;
    std::uint64_t chat_sequence_ = 0;
    std::uint64_t marker_sequence_ = 0;
    std::optional<std::size_t> in_emergency_;
};

/// Escapes &, <, >, " and ' for use in XML attribute values and text.
std::string xml_escape(std::string_view text);

/// End-to-end latency distribution with a fixed log-linear bucket layout (16 linear
/// sub-buckets per power of two of nanoseconds, so a reported percentile is within 1/16 of
/// the true value), up to about 18 minutes.
///
/// Thread safety: record() and every reader may be called from any threads at once
/// (relaxed atomics); a reader sees some recent state, not a consistent snapshot.
class latency_recorder {
public:
    void record(std::chrono::nanoseconds latency) noexcept;

    std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
    std::chrono::nanoseconds max() const noexcept
    {
        return std::chrono::nanoseconds(max_.load(std::memory_order_relaxed));
    }
    std::chrono::nanoseconds mean() const noexcept;
    /// The q-quantile (q in [0, 1]) as the upper bound of the bucket that holds it, capped at
    /// max(); zero when nothing was recorded.
    std::chrono::nanoseconds percentile(double q) const noexcept;
    void reset() noexcept;

private:
    static constexpr unsigned sub_bits = 4;
    static constexpr std::size_t sub_count = std::size_t{1} << sub_bits;
    static constexpr std::size_t exponents = 40;  // 2^40 ns ~ 18 minutes
    static constexpr std::size_t bucket_count = sub_count * (exponents - sub_bits + 1);

    static std::size_t bucket_of(std::uint64_t ns) noexcept;
    static std::uint64_t upper_bound_of(std::size_t bucket) noexcept;

    std::array<std::atomic<std::uint64_t>, bucket_count> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_{0};
    std::atomic<std::uint64_t> max_{0};
};

/// Resident set size of this process in bytes (from /proc/self/statm), or nullopt where that
/// file is not available.
std::optional<std::size_t> resident_memory_bytes();

/// Every event found in a file, or in every regular file under a folder (sorted by path, so
/// replays repeat): each file is read whole into memory, then split at `<event` ...
/// `</event>` by the library's stream framer, each event checked with parse_cot. Events that
/// do not parse, or that the framer had to give up (too large, cut off), are counted in
/// `rejected`, not returned. Pipes, sockets and devices inside a folder are not read (one
/// could be read without end) and are counted in `skipped`; links to folders are not
/// followed (one could lead back up) and are counted in `links_not_followed`.
/// `stop`, when given, is asked between reads and while framing; when it says true the load
/// ends with errc::operation_canceled.
/// Errors: the file or folder, or an entry under it, cannot be read, or does not fit in
/// memory (ec set, `failed` names the entry, no events returned); the path given is a
/// device, pipe or socket (ec set, `not_a_file` set).
struct replay_set {
    std::vector<std::string> events;
    std::uint64_t files = 0;
    std::uint64_t rejected = 0;
    std::uint64_t skipped = 0;
    std::uint64_t links_not_followed = 0;
    bool not_a_file = false;
    /// On failure, the file or folder entry that could not be read (empty: the path given).
    std::filesystem::path failed;
};
replay_set load_replay(const std::filesystem::path& path, std::error_code& ec,
                       const std::function<bool()>& stop = {});

}  // namespace omnitak::example
