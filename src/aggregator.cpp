#include "omnitak/pool/aggregator.hpp"

#include <algorithm>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace omnitak {

namespace {

using time_point = std::chrono::steady_clock::time_point;

// Expired entries looked at (and removed when expired) per insertion. Any constant > 1 keeps
// expired entries from accumulating faster than they are removed; a small one bounds the work
// one check() can do.
constexpr int sweep_budget = 4;

// uids up to this length are stored inside the entry, so comparing a key costs no extra
// cache miss; TAK uids are typically 24 ("ANDROID-" + 16 hex) to 36 (a UUID) characters.
constexpr std::size_t inline_uid = 46;

constexpr std::uint32_t empty_slot = 0xffffffffu;

// The splitmix64 finaliser: spreads the bits of a combined hash so shard selection (high
// bits) and slot selection (low bits) stay independent.
constexpr std::uint64_t mix(std::uint64_t x) noexcept
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

// A key as looked up: views into the message, plus the hash computed once.
struct key_view {
    std::string_view uid;
    std::int64_t number = 0;  // the time (uid_and_time) or the byte count (content_hash)
    std::uint64_t hash = 0;
};

key_view make_key(dedup_key kind, const cot_message& message)
{
    const cot_summary& s = message.summary();
    const std::hash<std::string_view> hasher;
    switch (kind) {
        case dedup_key::uid_and_time: {
            const auto t = s.time.time_since_epoch().count();
            const auto h = mix(hasher(s.uid) ^ mix(static_cast<std::uint64_t>(t)));
            return {s.uid, t, h};
        }
        case dedup_key::uid:
            return {s.uid, 0, mix(hasher(s.uid))};
        case dedup_key::content_hash: {
            const auto bytes = message.bytes();
            const auto n = static_cast<std::int64_t>(bytes.size());
            return {{}, n, mix(hasher(bytes) ^ static_cast<std::uint64_t>(n))};
        }
    }
    return {};
}

std::size_t next_pow2(std::size_t n)
{
    std::size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

}  // namespace

// One independently locked part of the cache.
//
// Layout, chosen so a check touches few cache lines: a fixed array of entries (keys stored
// inline) and an open-addressing index of (hash, entry number) pairs with linear probing and
// backward-shift deletion (no tombstones, so constant churn does not degrade it). Recency is
// tracked with the CLOCK (second chance) approximation of LRU: a hit sets the entry's
// referenced bit; the eviction hand clears set bits and evicts the first entry without one,
// so an entry used since the hand last passed survives. Unlike a linked LRU list, a hit writes
// only to the entry it has already read.
struct alignas(64) aggregator::shard {
    struct entry {
        std::uint64_t hash = 0;
        std::int64_t number = 0;
        time_point first_seen{};
        cot_time event_time{};
        link_id first_link = no_link;
        std::uint32_t duplicates = 0;
        std::uint8_t uid_size = 0;  // inline length, or 0xff when the uid is in long_uid
        bool live = false;
        bool referenced = false;
        char uid[inline_uid] = {};
        std::string long_uid;

        std::string_view key_uid() const noexcept
        {
            return uid_size == 0xff ? std::string_view(long_uid) : std::string_view(uid, uid_size);
        }
        void set_uid(std::string_view u)
        {
            if (u.size() <= inline_uid) {
                std::copy(u.begin(), u.end(), uid);
                uid_size = static_cast<std::uint8_t>(u.size());
                long_uid.clear();
            } else {
                long_uid.assign(u);
                uid_size = 0xff;
            }
        }
    };

    // 8 bytes, so the index of a full default cache (about 3 MiB) has a chance of staying in
    // the last-level cache: the probe is the one access every check makes.
    struct slot {
        std::uint32_t hash = 0;  // low half of the entry's hash: its home slot and a tag
        std::uint32_t entry = empty_slot;
    };

    mutable std::mutex mutex;
    std::size_t capacity = 0;
    std::vector<entry> entries;  // `used` elements, at most capacity
    std::vector<std::uint32_t> free_list;
    std::size_t used = 0;
    std::size_t live = 0;
    std::size_t hand = 0;   // eviction hand
    std::size_t sweep = 0;  // expiry sweep position
    std::vector<slot> slots;
    // Fixed after init(): read without the lock to prefetch a key's home slot.
    std::size_t mask = 0;
    const slot* base = nullptr;

    std::uint64_t unique = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t evictions = 0;
    std::uint64_t expirations = 0;

    // Called once, before the shard is shared.
    void init(std::size_t cap)
    {
        capacity = cap;
        // At most half full: probe sequences stay short.
        slots.assign(next_pow2(cap * 2), slot{});
        mask = slots.size() - 1;
        base = slots.data();
    }

    // The slot holding `key`, or the empty slot where it would go.
    std::size_t find(const key_view& key) const noexcept
    {
        const auto tag = static_cast<std::uint32_t>(key.hash);
        std::size_t i = tag & mask;
        for (;;) {
            const slot& s = slots[i];
            if (s.entry == empty_slot) return i;
            if (s.hash == tag) {
                const entry& e = entries[s.entry];
                if (e.hash == key.hash && e.number == key.number && e.key_uid() == key.uid)
                    return i;
            }
            i = (i + 1) & mask;
        }
    }

    // Removes entry `index` from the index (backward-shift deletion) and frees it.
    void remove(std::uint32_t index) noexcept
    {
        entry& e = entries[index];
        std::size_t i = e.hash & mask;
        while (slots[i].entry != index)
            i = (i + 1) & mask;

        // Close the gap: move later members of the probe run back unless they already sit
        // between their home slot and the gap.
        std::size_t j = i;
        for (;;) {
            j = (j + 1) & mask;
            if (slots[j].entry == empty_slot) break;
            const std::size_t home = slots[j].hash & mask;
            const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (stays) continue;
            slots[i] = slots[j];
            i = j;
        }
        slots[i].entry = empty_slot;
        e.live = false;
        --live;
        free_list.push_back(index);
    }

    // An entry to fill: a free one, a never-used one, or one taken from the clock hand.
    std::uint32_t allocate(time_point now, time_point::duration window) noexcept
    {
        if (!free_list.empty()) {
            const auto index = free_list.back();
            free_list.pop_back();
            return index;
        }
        if (used < capacity) {
            entries.emplace_back();  // grows on demand: a large bound costs nothing until used
            return static_cast<std::uint32_t>(used++);
        }
        for (;;) {
            const auto index = static_cast<std::uint32_t>(hand);
            hand = hand + 1 == capacity ? 0 : hand + 1;
            entry& e = entries[index];
            if (now - e.first_seen >= window) {
                ++expirations;
            } else if (e.referenced) {
                e.referenced = false;
                continue;
            } else {
                ++evictions;
            }
            remove(index);
            free_list.pop_back();
            return index;
        }
    }

    // Keeps the slot array's storage (check() prefetches from it without the lock).
    void clear() noexcept
    {
        entries.clear();
        free_list.clear();
        used = live = hand = sweep = 0;
        std::fill(slots.begin(), slots.end(), slot{});
        unique = duplicates = evictions = expirations = 0;
    }
};

aggregator::aggregator(aggregator_params params) : params_(std::move(params))
{
    if (params_.window <= std::chrono::milliseconds::zero())
        throw std::invalid_argument("aggregator_params::window must be > 0");
    if (params_.max_entries == 0)
        throw std::invalid_argument("aggregator_params::max_entries must be > 0");
    if (params_.shards == 0) throw std::invalid_argument("aggregator_params::shards must be > 0");
    if (!params_.clock) {
        system_clock_ = true;
        params_.clock = [] { return std::chrono::steady_clock::now(); };
    }

    // Split the bound so the shards' capacities add up to exactly max_entries.
    shard_count_ = std::min(params_.shards, params_.max_entries);
    shards_ = std::make_unique<shard[]>(shard_count_);
    for (std::size_t i = 0; i < shard_count_; ++i) {
        shards_[i].init(params_.max_entries / shard_count_ +
                        (i < params_.max_entries % shard_count_ ? 1 : 0));
    }
}

aggregator::~aggregator() = default;

dedup_result aggregator::check(const cot_message& message)
{
    return check(message, params_.clock());
}

dedup_result aggregator::check(const cot_message& message, time_point now)
{
    const link_id origin = message.origin();
    if (message.summary().uid.empty()) {
        no_uid_.fetch_add(1, std::memory_order_relaxed);
        return {dedup_verdict::no_uid, origin};
    }

    const key_view key = make_key(params_.key, message);
    shard& s = shards_[(key.hash >> 32) % shard_count_];
    const auto window = std::chrono::duration_cast<time_point::duration>(params_.window);

    // The probe is the access most likely to miss the cache: start the fetch before waiting
    // for the lock. (A prefetch is a hint, not a read, so it needs no synchronisation.)
    __builtin_prefetch(s.base + (static_cast<std::uint32_t>(key.hash) & s.mask));

    std::lock_guard lock(s.mutex);

    // When full, a miss will evict at the hand: fetch the victim's home slot in parallel with
    // our own probe.
    if (s.used == s.capacity && s.free_list.empty()) {
        __builtin_prefetch(s.base + (static_cast<std::uint32_t>(s.entries[s.hand].hash) & s.mask));
    }

    // Seen before: a duplicate while the window lasts, otherwise a fresh sighting that takes
    // the entry over in place (so nothing can later remove the newer state by mistake).
    std::size_t at = s.find(key);
    if (s.slots[at].entry != empty_slot) {
        shard::entry& e = s.entries[s.slots[at].entry];
        e.referenced = true;
        if (now - e.first_seen < window) {
            ++e.duplicates;
            ++s.duplicates;
            return {dedup_verdict::duplicate, e.first_link};
        }
        ++s.expirations;
        ++s.unique;
        e.first_seen = now;
        e.first_link = origin;
        e.event_time = message.summary().time;
        e.duplicates = 0;
        return {dedup_verdict::unique, origin};
    }

    // Not seen. While the cache is not full, look at a few entries for expired ones, so dead
    // entries do not pile up; once it is full, the eviction hand removes expired entries first.
    const std::size_t live_before = s.live;
    if (s.used < s.capacity || !s.free_list.empty()) {
        for (int i = 0; i < sweep_budget && s.used > 0; ++i) {
            if (s.sweep >= s.used) s.sweep = 0;
            const auto index = static_cast<std::uint32_t>(s.sweep++);
            const shard::entry& e = s.entries[index];
            if (e.live && now - e.first_seen >= window) {
                s.remove(index);
                ++s.expirations;
            }
        }
    }

    const std::uint32_t index = s.allocate(now, window);
    // Removals shift slots: find the insertion point again if anything was removed.
    if (s.live != live_before) at = s.find(key);

    shard::entry& e = s.entries[index];
    e.hash = key.hash;
    e.number = key.number;
    e.set_uid(key.uid);
    e.first_seen = now;
    e.first_link = origin;
    e.event_time = message.summary().time;
    e.duplicates = 0;
    e.live = true;
    e.referenced = false;
    s.slots[at] = {static_cast<std::uint32_t>(key.hash), index};
    ++s.live;
    ++s.unique;
    return {dedup_verdict::unique, origin};
}

std::optional<dedup_entry_info> aggregator::lookup(const cot_message& message) const
{
    return lookup(message, params_.clock());
}

std::optional<dedup_entry_info> aggregator::lookup(const cot_message& message, time_point now) const
{
    if (message.summary().uid.empty()) return std::nullopt;
    const key_view key = make_key(params_.key, message);
    const shard& s = shards_[(key.hash >> 32) % shard_count_];

    std::lock_guard lock(s.mutex);
    const std::size_t at = s.find(key);
    if (s.slots[at].entry == empty_slot) return std::nullopt;
    const shard::entry& e = s.entries[s.slots[at].entry];
    if (now - e.first_seen >= params_.window) return std::nullopt;
    return dedup_entry_info{e.first_link, e.first_seen, e.event_time, e.duplicates};
}

aggregator_stats aggregator::stats() const
{
    aggregator_stats out;
    for (std::size_t i = 0; i < shard_count_; ++i) {
        const shard& s = shards_[i];
        std::lock_guard lock(s.mutex);
        out.unique += s.unique;
        out.duplicates += s.duplicates;
        out.evictions += s.evictions;
        out.expirations += s.expirations;
        out.entries += s.live;
    }
    out.no_uid = no_uid_.load(std::memory_order_relaxed);
    return out;
}

void aggregator::clear()
{
    for (std::size_t i = 0; i < shard_count_; ++i) {
        std::lock_guard lock(shards_[i].mutex);
        shards_[i].clear();
    }
    no_uid_.store(0, std::memory_order_relaxed);
}

}  // namespace omnitak
