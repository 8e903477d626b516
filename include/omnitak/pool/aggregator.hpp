// The aggregator: drops duplicate CoT events before they are routed.
//
// A gateway listening to several TAK servers hears the same event more than once (every
// server relays it, and servers echo what the gateway itself sent). The aggregator keeps a
// bounded cache of recently seen events and answers, per message, "seen before or not".
//
// The key decides what "the same event" means (see dedup_key). The default, (uid, time),
// drops an identical event relayed twice but lets every new position report of a moving unit
// through: its reports share a uid but each carries a new time.
//
// Entries live for `window` after they were first seen; a repeat after that is accepted again
// and takes the entry over. A repeat inside the window does not extend it. The cache holds at
// most `max_entries`; when full, an entry not used recently is evicted. Recency follows the
// CLOCK (second chance) approximation of LRU, per shard: a hit marks its entry, and eviction
// passes over marked entries once (clearing the mark) before taking an unmarked one. The cache
// is split into `shards` independently locked parts, each with its share of the bound, so
// eviction order is per shard, not global. Expired entries are removed lazily: when looked up,
// a few per insertion by a sweep, and first whenever something must be evicted. An entry that
// has been replaced by a newer sighting of the same key is never removed by the older one's
// expiry: the entry is re-used in place.
//
// Each entry remembers the link the event was first seen on, so an echo that comes back on
// another link is recognised as a duplicate of what that link was sent.
//
// Messages whose uid is empty cannot be keyed reliably; they always pass and are counted in
// aggregator_stats::no_uid.
//
// Thread safety: distinct objects: safe. Shared objects: every member is safe to call from any
// number of threads at once (shards are locked independently; a check locks one shard).
//
// Complexity: check() hashes the key (the uid, or every byte for content_hash) and does O(1)
// expected work under one shard's lock: keys are stored inline in a flat array with an
// open-addressing index, so a check touches a few cache lines. Allocation: the index
// (32 to 64 bytes per unit of max_entries) is allocated at construction; entries (about
// 128 bytes each) as the cache fills, then re-used. uids longer than 46 bytes are stored on
// the heap.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "omnitak/pool/message.hpp"

namespace omnitak {

/// What makes two messages "the same event" for deduplication.
enum class dedup_key : std::uint8_t {
    /// (uid, time attribute). The default: relays and echoes of one event are duplicates; a
    /// new report of the same uid (new time) is not.
    uid_and_time,
    /// uid alone: every report of a uid inside the window after the first is a duplicate. This
    /// suppresses genuine position updates of moving units; use only for slow-changing data.
    uid,
    /// A 64-bit hash of the event's bytes (plus their length): byte-identical events are
    /// duplicates. Relays that re-serialise events (different attribute order or whitespace)
    /// defeat it. Two different events collide with probability about n / 2^64.
    content_hash,
};

struct aggregator_params {
    /// How messages are keyed. Default uid_and_time.
    dedup_key key = dedup_key::uid_and_time;

    /// How long after it was first seen an entry suppresses repeats. Default 60 s. Must be > 0.
    std::chrono::milliseconds window{60'000};

    /// Most entries kept; beyond it an entry not used recently is evicted (see above).
    /// Default 100,000. Must be > 0. Memory: 32 to 64 bytes per unit of the bound at
    /// construction, plus about 128 bytes per entry held.
    std::size_t max_entries = 100'000;

    /// Independently locked parts of the cache; more shards mean less lock contention between
    /// threads. Default 16. Must be > 0; reduced to max_entries when larger.
    std::size_t shards = 16;

    /// Where "now" comes from (tests inject a fake clock). Empty: std::chrono::steady_clock.
    std::function<std::chrono::steady_clock::time_point()> clock{};
};

/// Counters since construction (or clear()). Each field is exact at the moment its shard was
/// read; fields from different shards are read one after the other, not atomically together.
struct aggregator_stats {
    std::uint64_t unique = 0;       ///< messages accepted (not seen within the window)
    std::uint64_t duplicates = 0;   ///< messages rejected as duplicates
    std::uint64_t no_uid = 0;       ///< messages without a uid (accepted, not cached)
    std::uint64_t evictions = 0;    ///< live entries evicted because the cache was full
    std::uint64_t expirations = 0;  ///< entries dropped or replaced because the window passed
    std::uint64_t entries = 0;      ///< entries held now (may include expired, unswept ones)

    /// duplicates / (unique + duplicates); 0 when nothing was checked.
    double dedup_ratio() const noexcept
    {
        const auto keyed = unique + duplicates;
        return keyed == 0 ? 0.0 : static_cast<double>(duplicates) / static_cast<double>(keyed);
    }
};

enum class dedup_verdict : std::uint8_t {
    unique,     ///< first sighting inside the window: route it
    duplicate,  ///< seen within the window: drop it
    no_uid,     ///< no uid to key on: route it (counted)
};

struct dedup_result {
    dedup_verdict verdict = dedup_verdict::unique;
    /// The link the event was first seen on (no_link for the application's own messages).
    /// For unique and no_uid this is the message's own origin.
    link_id first_seen_on = no_link;
    /// True when the message may be routed (verdict is not duplicate).
    bool pass() const noexcept { return verdict != dedup_verdict::duplicate; }
};

/// What the cache holds for a key (see lookup()).
struct dedup_entry_info {
    link_id first_seen_on = no_link;
    std::chrono::steady_clock::time_point first_seen{};
    cot_time event_time{};         ///< the time attribute of the message that made the entry
    std::uint64_t duplicates = 0;  ///< repeats rejected by this entry
};

class aggregator {
public:
    /// Throws std::invalid_argument naming the field when params are invalid.
    explicit aggregator(aggregator_params params = {});
    ~aggregator();

    aggregator(const aggregator&) = delete;
    aggregator& operator=(const aggregator&) = delete;

    /// Checks and records a message. True: unique (or no uid) — route it; false: duplicate.
    /// Preconditions: message is not null.
    bool accept(const message_ptr& message) { return check(*message).pass(); }

    /// Checks and records a message at the clock's current time.
    dedup_result check(const cot_message& message);
    /// Checks and records a message at time `now` (`now` should not go backwards).
    dedup_result check(const cot_message& message, std::chrono::steady_clock::time_point now);

    /// The live (unexpired at `now`) entry for this message's key, if any. Does not record the
    /// message, count it, or mark the entry as recently used.
    std::optional<dedup_entry_info> lookup(const cot_message& message,
                                           std::chrono::steady_clock::time_point now) const;
    std::optional<dedup_entry_info> lookup(const cot_message& message) const;

    aggregator_stats stats() const;

    /// Forgets every entry and resets the counters.
    void clear();

    const aggregator_params& params() const noexcept { return params_; }

private:
    struct shard;

    aggregator_params params_;
    std::unique_ptr<shard[]> shards_;
    std::size_t shard_count_ = 0;
    std::atomic<std::uint64_t> no_uid_{0};
    bool system_clock_ = false;  // params.clock was empty: call steady_clock directly
};

}  // namespace omnitak
