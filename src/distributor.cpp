#include "omnitak/pool/distributor.hpp"

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <numbers>
#include <stdexcept>
#include <unordered_map>

#include "omnitak/pool/detail/route_index.hpp"
#include "omnitak/pool/error.hpp"

namespace omnitak {

// =============================================================================================
// Route index
// =============================================================================================

namespace detail {

namespace {

constexpr double rad_to_deg = 180.0 / std::numbers::pi;

// Widens computed cell ranges a little so rounding can never leave out a cell a filter really
// touches; a cell too many only costs one exact verification.
constexpr double cell_margin_deg = 1e-6;

}  // namespace

struct route_index::keys {
    bool universal = false;  // no usable keys: evaluate for every message
    bool exact = true;       // a key hit alone proves a match
    std::vector<const type_pattern*> types;
    std::vector<const std::string*> uids;
    std::vector<const std::string*> callsigns;
    std::vector<const std::string*> groups;
    std::vector<std::uint32_t> cells;

    bool has_values() const noexcept
    {
        return !uids.empty() || !callsigns.empty() || !groups.empty();
    }
    bool empty() const noexcept { return types.empty() && cells.empty() && !has_values(); }

    void merge(const keys& other)
    {
        universal = universal || other.universal;
        exact = exact && other.exact;
        types.insert(types.end(), other.types.begin(), other.types.end());
        uids.insert(uids.end(), other.uids.begin(), other.uids.end());
        callsigns.insert(callsigns.end(), other.callsigns.begin(), other.callsigns.end());
        groups.insert(groups.end(), other.groups.begin(), other.groups.end());
        cells.insert(cells.end(), other.cells.begin(), other.cells.end());
    }
};

route_index::route_index(const std::vector<filter>& filters, route_index_params params)
    : params_(params), filters_(filters)
{
    if (!(params_.cell_degrees > 0.0 && params_.cell_degrees <= 90.0))
        throw std::invalid_argument("distributor_params::geo_cell_degrees must be in (0, 90]");
    if (params_.max_cells_per_filter == 0)
        throw std::invalid_argument("distributor_params::geo_max_cells_per_filter must be > 0");
    rows_ = static_cast<int>(std::ceil(180.0 / params_.cell_degrees));
    cols_ = static_cast<int>(std::ceil(360.0 / params_.cell_degrees));

    trie_.emplace_back();
    exact_.resize(filters_.size(), 0);
    for (std::uint32_t slot = 0; slot < filters_.size(); ++slot) {
        keys k;
        collect(filters_[slot], k);
        exact_[slot] = k.exact ? 1 : 0;

        // No keys to narrow by: either it matches everything or it is asked every time.
        if (k.universal) {
            (k.exact ? always_ : general_).push_back(slot);
            continue;
        }

        for (const type_pattern* p : k.types)
            trie_[trie_insert(*p)].slots.push_back(slot);
        for (const std::string* v : k.uids)
            by_uid_[*v].push_back(slot);
        for (const std::string* v : k.callsigns)
            by_callsign_[*v].push_back(slot);
        for (const std::string* v : k.groups)
            by_group_[*v].push_back(slot);
        std::sort(k.cells.begin(), k.cells.end());
        k.cells.erase(std::unique(k.cells.begin(), k.cells.end()), k.cells.end());
        for (std::uint32_t cell : k.cells)
            cells_[cell].push_back(slot);
    }
}

void route_index::collect(const filter& f, keys& out) const
{
    switch (f.what()) {
        case filter::kind::always:
            out.universal = true;
            return;
        case filter::kind::never:
            return;  // no keys and exact: never a candidate
        case filter::kind::type:
            for (const auto& p : f.patterns())
                out.types.push_back(&p);
            return;
        case filter::kind::uid:
            for (const auto& v : f.values())
                out.uids.push_back(&v);
            return;
        case filter::kind::callsign:
            for (const auto& v : f.values())
                out.callsigns.push_back(&v);
            return;
        case filter::kind::group:
            for (const auto& v : f.values())
                out.groups.push_back(&v);
            return;
        case filter::kind::geo_radius:
        case filter::kind::geo_box: {
            std::vector<std::uint32_t> cells;
            const bool fits = f.what() == filter::kind::geo_radius
                                  ? (add_cells_for_circle(f.geo_circle(), cells), !cells.empty())
                                  : (add_cells_for_box(f.geo_box(), cells), !cells.empty());
            out.exact = false;
            if (!fits) {
                out.universal = true;
                return;
            }
            out.cells.insert(out.cells.end(), cells.begin(), cells.end());
            return;
        }
        case filter::kind::custom:
        case filter::kind::negation:
            out.universal = true;
            out.exact = false;
            return;
        case filter::kind::any_of:
            // A union: a message matching any operand is found through that operand's keys.
            for (const auto& c : f.children())
                collect(c, out);
            return;
        case filter::kind::all_of: {
            const auto& children = f.children();
            if (children.size() == 1) {
                collect(children.front(), out);
                return;
            }
            // Any one operand's keys over-approximate the conjunction: take the most selective
            // kind available and verify the whole filter on each candidate.
            std::vector<keys> parts(children.size());
            bool all_universal_exact = true;
            const keys* best = nullptr;
            int best_rank = 0;
            for (std::size_t i = 0; i < children.size(); ++i) {
                collect(children[i], parts[i]);
                const keys& p = parts[i];
                all_universal_exact = all_universal_exact && p.universal && p.exact;
                if (p.universal) continue;
                const bool only_values = p.has_values() && p.types.empty() && p.cells.empty();
                const bool only_deep_types =
                    !p.types.empty() && !p.has_values() && p.cells.empty() &&
                    std::all_of(p.types.begin(), p.types.end(),
                                [](const type_pattern* t) { return t->segments().size() >= 3; });
                // Preference: never matches; exact values; specific types ("a-f-G" or
                // longer); geo cells; broad types ("a-f" matches a large share of traffic).
                const int rank = p.empty()          ? 5
                                 : only_values      ? 4
                                 : only_deep_types  ? 3
                                 : !p.cells.empty() ? 2
                                                    : 1;
                if (rank > best_rank) {
                    best_rank = rank;
                    best = &p;
                }
            }
            if (best == nullptr) {
                out.universal = true;
                out.exact = out.exact && all_universal_exact;
                return;
            }
            out.merge(*best);
            out.exact = false;
            return;
        }
    }
}

int route_index::row_of(double lat) const noexcept
{
    const int r = static_cast<int>(std::floor((lat + 90.0) / params_.cell_degrees));
    return std::clamp(r, 0, rows_ - 1);
}

int route_index::col_of(double lon) const noexcept
{
    const int c = static_cast<int>(std::floor((lon + 180.0) / params_.cell_degrees));
    return std::clamp(c, 0, cols_ - 1);
}

bool route_index::add_lon_span(double lo, double hi, int row_lo, int row_hi,
                               std::vector<std::uint32_t>& cells) const
{
    // Split a longitude interval that runs past +-180 into pieces inside [-180, 180].
    std::vector<std::pair<int, int>> col_ranges;
    if (hi - lo >= 360.0) {
        col_ranges.emplace_back(0, cols_ - 1);
    } else if (lo < -180.0) {
        col_ranges.emplace_back(col_of(lo + 360.0), cols_ - 1);
        col_ranges.emplace_back(0, col_of(hi));
    } else if (hi > 180.0) {
        col_ranges.emplace_back(col_of(lo), cols_ - 1);
        col_ranges.emplace_back(0, col_of(hi - 360.0));
    } else {
        col_ranges.emplace_back(col_of(lo), col_of(hi));
    }

    std::size_t columns = 0;
    for (const auto& [a, b] : col_ranges)
        columns += static_cast<std::size_t>(b - a + 1);
    const auto total = columns * static_cast<std::size_t>(row_hi - row_lo + 1);
    if (total > params_.max_cells_per_filter) return false;

    for (int r = row_lo; r <= row_hi; ++r) {
        for (const auto& [a, b] : col_ranges) {
            for (int c = a; c <= b; ++c) {
                cells.push_back(static_cast<std::uint32_t>(r) * static_cast<std::uint32_t>(cols_) +
                                static_cast<std::uint32_t>(c));
            }
        }
    }
    return true;
}

void route_index::add_cells_for_circle(const filter::circle& c,
                                       std::vector<std::uint32_t>& cells) const
{
    const double delta = c.radius_km / earth_radius_km;  // angular radius, radians
    const double delta_deg = delta * rad_to_deg + cell_margin_deg;
    const double lat_lo = c.lat - delta_deg;
    const double lat_hi = c.lat + delta_deg;

    // A cap that reaches a pole spans every longitude.
    if (lat_lo <= -90.0 || lat_hi >= 90.0 || delta >= std::numbers::pi / 2.0) {
        if (!add_lon_span(-180.0, 180.0, row_of(std::max(-90.0, lat_lo)),
                          row_of(std::min(90.0, lat_hi)), cells))
            cells.clear();
        return;
    }

    // Widest longitude extent of a spherical cap that does not contain a pole.
    const double ratio = std::sin(delta) / std::cos(c.lat * std::numbers::pi / 180.0);
    const double dlon = ratio >= 1.0 ? 180.0 : std::asin(ratio) * rad_to_deg + cell_margin_deg;
    if (!add_lon_span(c.lon - dlon, c.lon + dlon, row_of(lat_lo), row_of(lat_hi), cells))
        cells.clear();
}

void route_index::add_cells_for_box(const filter::box& b, std::vector<std::uint32_t>& cells) const
{
    const double east = b.west <= b.east ? b.east : b.east + 360.0;
    if (!add_lon_span(b.west, east, row_of(b.south), row_of(b.north), cells)) cells.clear();
}

std::uint32_t route_index::trie_insert(const type_pattern& p)
{
    std::uint32_t node = 0;
    for (const auto& segment : p.segments()) {
        if (segment == ".") {
            if (trie_[node].wildcard == no_slot) {
                const auto child = static_cast<std::uint32_t>(trie_.size());
                trie_.emplace_back();
                trie_[node].wildcard = child;
            }
            node = trie_[node].wildcard;
            continue;
        }
        auto& children = trie_[node].children;
        auto it = std::lower_bound(children.begin(), children.end(), segment,
                                   [](const auto& a, const std::string& s) { return a.first < s; });
        if (it == children.end() || it->first != segment) {
            const auto child = static_cast<std::uint32_t>(trie_.size());
            it = children.insert(it, {segment, child});
            trie_.emplace_back();  // invalidates `children`, not the value copied below
            node = child;
        } else {
            node = it->second;
        }
    }
    return node;
}

namespace {

// Candidate lists are short; a plain loop beats vector::insert's memmove call for them.
void append(std::vector<std::uint32_t>& out, const std::vector<std::uint32_t>& from)
{
    for (std::uint32_t slot : from)
        out.push_back(slot);
}

}  // namespace

void route_index::match(const cot_message& message, std::vector<std::uint32_t>& out,
                        route_scratch& scratch, std::uint32_t skip) const
{
    out.clear();
    const cot_summary& s = message.summary();

    for (std::uint32_t slot : always_) {
        if (slot != skip) out.push_back(slot);
    }
    for (std::uint32_t slot : general_) {
        if (slot != skip && filters_[slot].matches(message)) out.push_back(slot);
    }
    const std::size_t mark = out.size();

    // Type trie: follow the type's segments; every node reached ends some pattern that is a
    // segment-boundary prefix of the type.
    if (trie_.size() > 1 && !s.type.empty()) {
        auto& frontier = scratch.frontier;
        auto& next = scratch.next;
        frontier.assign(1, 0);
        const std::string_view type = s.type;
        std::size_t begin = 0;
        for (;;) {
            std::size_t dash = type.find('-', begin);
            const std::string_view segment =
                type.substr(begin, dash == std::string_view::npos ? dash : dash - begin);
            next.clear();
            for (std::uint32_t node : frontier) {
                const trie_node& n = trie_[node];
                const auto it =
                    std::lower_bound(n.children.begin(), n.children.end(), segment,
                                     [](const auto& a, std::string_view v) { return a.first < v; });
                if (it != n.children.end() && it->first == segment) next.push_back(it->second);
                if (n.wildcard != no_slot) next.push_back(n.wildcard);
            }
            if (next.empty()) break;
            for (std::uint32_t node : next) {
                append(out, trie_[node].slots);
            }
            if (dash == std::string_view::npos) break;
            std::swap(frontier, next);
            begin = dash + 1;
        }
    }

    auto add_values = [&out](const value_map& map, const std::string& key) {
        if (map.empty() || key.empty()) return;
        const auto it = map.find(std::string_view(key));
        if (it != map.end()) append(out, it->second);
    };
    add_values(by_uid_, s.uid);
    add_values(by_callsign_, s.callsign);
    add_values(by_group_, s.group_name);

    if (!cells_.empty() && s.point) {
        const auto cell =
            static_cast<std::uint32_t>(row_of(s.point->lat)) * static_cast<std::uint32_t>(cols_) +
            static_cast<std::uint32_t>(col_of(s.point->lon));
        const auto it = cells_.find(cell);
        if (it != cells_.end()) append(out, it->second);
    }

    // Candidates may repeat (several keys of one filter); keep each once, then verify the
    // ones whose keys over-approximate their filter.
    if (out.size() == mark) return;
    std::sort(out.begin() + static_cast<std::ptrdiff_t>(mark), out.end());
    auto write = out.begin() + static_cast<std::ptrdiff_t>(mark);
    std::uint32_t previous = no_slot;
    for (auto read = write; read != out.end(); ++read) {
        const std::uint32_t slot = *read;
        if (slot == previous) continue;
        previous = slot;
        if (slot == skip) continue;
        if (exact_[slot] || filters_[slot].matches(message)) *write++ = slot;
    }
    out.erase(write, out.end());
}

}  // namespace detail

// =============================================================================================
// Distributor
// =============================================================================================

std::string_view to_string(backpressure b) noexcept
{
    switch (b) {
        case backpressure::drop:
            return "drop";
        case backpressure::block:
            return "block";
        case backpressure::timeout:
            return "timeout";
    }
    return "unknown";
}

namespace {

using clock = std::chrono::steady_clock;

struct route_counters {
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<std::uint64_t> dropped{0};
};

struct route {
    link_id link = no_link;
    filter f;
    std::shared_ptr<outbound_queue> queue;
    std::shared_ptr<route_counters> counters;
};

// One immutable snapshot of the routes, with its index. Slot i is routes[i].
struct route_table {
    std::uint64_t version = 0;
    std::vector<route> routes;
    std::vector<link_id> links;  // routes[i].link, packed: matching_links reads only these
    std::unordered_map<link_id, std::uint32_t> slot_of;
    detail::route_index index;

    std::uint32_t slot(link_id link) const
    {
        if (link == no_link) return detail::route_index::no_slot;
        const auto it = slot_of.find(link);
        return it == slot_of.end() ? detail::route_index::no_slot : it->second;
    }
};

distributor_params validated(distributor_params p)
{
    auto require = [](bool ok, const char* what) {
        if (!ok) throw std::invalid_argument(what);
    };
    require(p.workers > 0, "distributor_params::workers must be > 0");
    require(p.intake_capacity > 0, "distributor_params::intake_capacity must be > 0");
    require(p.batch_size > 0, "distributor_params::batch_size must be > 0");
    require(p.flush_interval >= std::chrono::milliseconds::zero(),
            "distributor_params::flush_interval must be >= 0");
    require(
        p.strategy != backpressure::timeout || p.send_timeout > std::chrono::milliseconds::zero(),
        "distributor_params::send_timeout must be > 0 with backpressure::timeout");
    require(p.geo_cell_degrees > 0.0 && p.geo_cell_degrees <= 90.0,
            "distributor_params::geo_cell_degrees must be in (0, 90]");
    require(p.geo_max_cells_per_filter > 0,
            "distributor_params::geo_max_cells_per_filter must be > 0");
    return p;
}

}  // namespace

struct distributor::impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor ex, distributor_params p)
        : executor(std::move(ex)),
          params(validated(std::move(p))),
          intake(executor, params.intake_capacity)
    {
        auto empty = std::make_shared<route_table>();
        empty->index =
            detail::route_index({}, {params.geo_cell_degrees, params.geo_max_cells_per_filter});
        published = std::move(empty);
    }

    asio::any_io_executor executor;
    const distributor_params params;
    outbound_queue intake;

    // Route changes: the authoritative set, guarded by routes_mutex, and a version that
    // routers compare with their snapshot's.
    mutable std::mutex routes_mutex;
    std::map<link_id, route> routes;
    std::atomic<std::uint64_t> version{0};

    // The published snapshot; the mutex is held only to copy or replace the pointer.
    mutable std::mutex published_mutex;
    std::shared_ptr<const route_table> published;

    std::atomic<bool> started{false};
    std::atomic<bool> stopping{false};
    std::atomic<std::size_t> running{0};

    struct counters {
        std::atomic<std::uint64_t> submitted{0};
        std::atomic<std::uint64_t> intake_dropped{0};
        std::atomic<std::uint64_t> routed{0};
        std::atomic<std::uint64_t> unrouted{0};
        std::atomic<std::uint64_t> deliveries{0};
        std::atomic<std::uint64_t> dropped{0};
        std::atomic<std::uint64_t> batches{0};
        std::array<std::atomic<std::uint64_t>, distributor_batch_size_bounds.size() + 1>
            batch_buckets{};
        std::atomic<std::uint64_t> batched_messages{0};
        std::array<std::atomic<std::uint64_t>, distributor_latency_bounds_us.size() + 1> buckets{};
        std::atomic<std::uint64_t> latency_sum_ns{0};
    } stats;

    void log(int level, const std::string& line) const
    {
        if (params.log && level >= params.log_threshold) params.log(level, line);
    }

    // --- snapshots ----------------------------------------------------------------------

    std::shared_ptr<const route_table> table()
    {
        std::shared_ptr<const route_table> current;
        {
            std::lock_guard lock(published_mutex);
            current = published;
        }
        if (current->version == version.load(std::memory_order_acquire)) return current;
        return rebuild();
    }

    // Rebuilds the snapshot if it is stale. Several routers may find it stale at once; the
    // first to take routes_mutex rebuilds, the others find it fresh.
    std::shared_ptr<const route_table> rebuild()
    {
        std::lock_guard lock(routes_mutex);
        {
            std::lock_guard plock(published_mutex);
            if (published->version == version.load(std::memory_order_relaxed)) return published;
        }
        auto t = std::make_shared<route_table>();
        t->version = version.load(std::memory_order_relaxed);
        std::vector<filter> filters;
        t->routes.reserve(routes.size());
        filters.reserve(routes.size());
        for (const auto& [link, r] : routes) {
            t->slot_of.emplace(link, static_cast<std::uint32_t>(t->routes.size()));
            t->routes.push_back(r);
            t->links.push_back(link);
            filters.push_back(r.f);
        }
        t->index = detail::route_index(filters,
                                       {params.geo_cell_degrees, params.geo_max_cells_per_filter});

        std::shared_ptr<const route_table> out = std::move(t);
        {
            std::lock_guard plock(published_mutex);
            published = out;
        }
        return out;
    }

    // --- routing ------------------------------------------------------------------------

    void record_latency(const cot_message& m)
    {
        const auto elapsed = clock::now() - m.received_at();
        const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
        const std::uint64_t us = ns / 1000;
        const auto it = std::lower_bound(distributor_latency_bounds_us.begin(),
                                         distributor_latency_bounds_us.end(), us);
        stats.buckets[static_cast<std::size_t>(it - distributor_latency_bounds_us.begin())]
            .fetch_add(1, std::memory_order_relaxed);
        stats.latency_sum_ns.fetch_add(ns, std::memory_order_relaxed);
        stats.routed.fetch_add(1, std::memory_order_relaxed);
    }

    void record_batch(std::size_t n)
    {
        const auto it = std::lower_bound(distributor_batch_size_bounds.begin(),
                                         distributor_batch_size_bounds.end(), n);
        stats.batch_buckets[static_cast<std::size_t>(it - distributor_batch_size_bounds.begin())]
            .fetch_add(1, std::memory_order_relaxed);
        stats.batched_messages.fetch_add(n, std::memory_order_relaxed);
        stats.batches.fetch_add(1, std::memory_order_relaxed);
    }

    void delivered(const route& r)
    {
        r.counters->delivered.fetch_add(1, std::memory_order_relaxed);
        stats.deliveries.fetch_add(1, std::memory_order_relaxed);
    }

    void dropped(const route& r)
    {
        r.counters->dropped.fetch_add(1, std::memory_order_relaxed);
        stats.dropped.fetch_add(1, std::memory_order_relaxed);
    }

    // Offers the message to every matching link without waiting; returns deliveries.
    std::size_t route_without_waiting(const route_table& t, const message_ptr& m,
                                      std::vector<std::uint32_t>& slots,
                                      detail::route_scratch& scratch)
    {
        t.index.match(*m, slots, scratch, t.slot(m->origin()));
        if (slots.empty()) stats.unrouted.fetch_add(1, std::memory_order_relaxed);
        std::size_t n = 0;
        for (std::uint32_t slot : slots) {
            const route& r = t.routes[slot];
            if (r.queue->try_push(m)) {
                delivered(r);
                ++n;
            } else {
                dropped(r);
            }
        }
        record_latency(*m);
        return n;
    }

    // The worker-side delivery: applies the strategy, waiting where it says to.
    asio::awaitable<void> route_with_strategy(const route_table& t, const message_ptr& m,
                                              std::vector<std::uint32_t>& slots,
                                              detail::route_scratch& scratch)
    {
        t.index.match(*m, slots, scratch, t.slot(m->origin()));
        if (slots.empty()) stats.unrouted.fetch_add(1, std::memory_order_relaxed);
        const auto wait = params.strategy == backpressure::block
                              ? clock::duration::max()
                              : std::chrono::duration_cast<clock::duration>(params.send_timeout);
        for (std::uint32_t slot : slots) {
            const route& r = t.routes[slot];
            outbound_queue& q = *r.queue;
            // Try without a coroutine frame first; the size check keeps the queue's
            // rejection counter for genuine refusals where the strategy is allowed to wait.
            bool ok = false;
            if (params.strategy == backpressure::drop) {
                ok = q.try_push(m);
            } else if (q.size() < q.capacity() && q.try_push(m)) {
                ok = true;
            } else if (!q.closed()) {
                ok = co_await q.async_push(m, wait);
            }
            if (ok) {
                delivered(r);
            } else {
                dropped(r);
            }
        }
        record_latency(*m);
    }

    static asio::awaitable<bool> submit_with_strategy(std::shared_ptr<impl> self, message_ptr m)
    {
        self->stats.submitted.fetch_add(1, std::memory_order_relaxed);
        bool ok = false;
        switch (self->params.strategy) {
            case backpressure::drop:
                ok = self->intake.try_push(std::move(m));
                break;
            case backpressure::block:
                ok = co_await self->intake.async_push(std::move(m));
                break;
            case backpressure::timeout:
                ok = co_await self->intake.async_push(
                    std::move(m),
                    std::chrono::duration_cast<clock::duration>(self->params.send_timeout));
                break;
        }
        if (!ok) self->stats.intake_dropped.fetch_add(1, std::memory_order_relaxed);
        co_return ok;
    }

    static asio::awaitable<void> worker(std::shared_ptr<impl> self)
    {
        using namespace asio::experimental::awaitable_operators;
        const std::size_t batch_size = self->params.batch_size;
        std::vector<message_ptr> batch(batch_size);
        std::vector<std::uint32_t> slots;
        detail::route_scratch scratch;
        asio::steady_timer timer(self->executor);

        for (;;) {
            std::size_t n = self->intake.try_pop_bulk(batch.data(), batch_size);
            if (n == 0) {
                if (self->intake.closed()) break;
                co_await self->intake.async_wait_nonempty();
                continue;
            }

            // A partial batch may wait up to flush_interval for more messages.
            if (n < batch_size && self->params.flush_interval.count() > 0) {
                const auto deadline = clock::now() + self->params.flush_interval;
                timer.expires_at(deadline);
                while (n < batch_size && !self->intake.closed() && clock::now() < deadline) {
                    std::error_code ec;
                    co_await (self->intake.async_wait_nonempty() ||
                              timer.async_wait(asio::redirect_error(asio::use_awaitable, ec)));
                    n += self->intake.try_pop_bulk(batch.data() + n, batch_size - n);
                }
            }

            self->record_batch(n);
            const auto t = self->table();
            for (std::size_t i = 0; i < n; ++i) {
                if (self->params.strategy == backpressure::drop) {
                    self->route_without_waiting(*t, batch[i], slots, scratch);
                } else {
                    co_await self->route_with_strategy(*t, batch[i], slots, scratch);
                }
                batch[i].reset();
            }
        }
    }
};

distributor::distributor(asio::any_io_executor executor, distributor_params params)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(params)))
{
}

distributor::~distributor()
{
    stop();
}

std::error_code distributor::add_route(link_id link, filter f,
                                       std::shared_ptr<outbound_queue> queue)
{
    if (link == no_link) throw std::invalid_argument("distributor::add_route: link is no_link");
    if (!queue) throw std::invalid_argument("distributor::add_route: queue is null");
    std::string text;
    {
        std::lock_guard lock(impl_->routes_mutex);
        if (impl_->routes.contains(link)) return make_error_code(errc::link_exists);
        if (impl_->params.log) text = f.to_string();
        impl_->routes.emplace(
            link, route{link, std::move(f), std::move(queue), std::make_shared<route_counters>()});
        impl_->version.fetch_add(1, std::memory_order_release);
    }
    impl_->log(10, "distributor: route added for link " + std::to_string(link) + ": " + text);
    return {};
}

std::error_code distributor::add_route(link_id link, std::shared_ptr<outbound_queue> queue)
{
    return add_route(link, filter::always(), std::move(queue));
}

std::error_code distributor::set_filter(link_id link, filter f)
{
    std::string text;
    {
        std::lock_guard lock(impl_->routes_mutex);
        const auto it = impl_->routes.find(link);
        if (it == impl_->routes.end()) return make_error_code(errc::link_not_found);
        if (impl_->params.log) text = f.to_string();
        it->second.f = std::move(f);
        impl_->version.fetch_add(1, std::memory_order_release);
    }
    impl_->log(10, "distributor: filter of link " + std::to_string(link) + " set to " + text);
    return {};
}

std::error_code distributor::remove_route(link_id link)
{
    {
        std::lock_guard lock(impl_->routes_mutex);
        if (impl_->routes.erase(link) == 0) return make_error_code(errc::link_not_found);
        impl_->version.fetch_add(1, std::memory_order_release);
    }
    impl_->log(10, "distributor: route removed for link " + std::to_string(link));
    return {};
}

bool distributor::has_route(link_id link) const
{
    std::lock_guard lock(impl_->routes_mutex);
    return impl_->routes.contains(link);
}

std::size_t distributor::route_count() const
{
    std::lock_guard lock(impl_->routes_mutex);
    return impl_->routes.size();
}

void distributor::start()
{
    if (impl_->stopping.load() || impl_->started.exchange(true)) return;
    for (std::size_t i = 0; i < impl_->params.workers; ++i) {
        impl_->running.fetch_add(1);
        asio::co_spawn(impl_->executor, impl::worker(impl_), [self = impl_](std::exception_ptr e) {
            self->running.fetch_sub(1);
            if (e) self->log(40, "distributor: a worker ended with an exception");
        });
    }
}

void distributor::stop()
{
    impl_->stopping.store(true);
    impl_->intake.close();
}

std::size_t distributor::running_workers() const noexcept
{
    return impl_->running.load();
}

bool distributor::submit(message_ptr message)
{
    impl_->stats.submitted.fetch_add(1, std::memory_order_relaxed);
    if (impl_->intake.try_push(std::move(message))) return true;
    impl_->stats.intake_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
}

asio::awaitable<bool> distributor::async_submit(message_ptr message)
{
    // The coroutine holds the shared state, not `this`: it may first run after the call.
    return impl::submit_with_strategy(impl_, std::move(message));
}

std::size_t distributor::route_now(const message_ptr& message)
{
    thread_local std::vector<std::uint32_t> slots;
    thread_local detail::route_scratch scratch;
    impl_->stats.submitted.fetch_add(1, std::memory_order_relaxed);
    const auto t = impl_->table();
    return impl_->route_without_waiting(*t, message, slots, scratch);
}

void distributor::matching_links(const cot_message& message, std::vector<link_id>& out) const
{
    thread_local std::vector<std::uint32_t> slots;
    thread_local detail::route_scratch scratch;
    const auto t = impl_->table();
    t->index.match(message, slots, scratch, t->slot(message.origin()));
    out.clear();
    for (std::uint32_t slot : slots)
        out.push_back(t->routes[slot].link);
}

std::size_t distributor::intake_size() const noexcept
{
    return impl_->intake.size();
}

distributor_stats distributor::stats() const
{
    const auto& s = impl_->stats;
    distributor_stats out;
    out.submitted = s.submitted.load(std::memory_order_relaxed);
    out.intake_dropped = s.intake_dropped.load(std::memory_order_relaxed);
    out.routed = s.routed.load(std::memory_order_relaxed);
    out.unrouted = s.unrouted.load(std::memory_order_relaxed);
    out.deliveries = s.deliveries.load(std::memory_order_relaxed);
    out.dropped = s.dropped.load(std::memory_order_relaxed);
    out.batches = s.batches.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < out.batch_size_buckets.size(); ++i) {
        out.batch_size_buckets[i] = s.batch_buckets[i].load(std::memory_order_relaxed);
    }
    out.batched_messages = s.batched_messages.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < out.latency_buckets.size(); ++i) {
        out.latency_buckets[i] = s.buckets[i].load(std::memory_order_relaxed);
        out.latency_count += out.latency_buckets[i];
    }
    out.latency_sum_ns = s.latency_sum_ns.load(std::memory_order_relaxed);
    return out;
}

std::optional<route_stats> distributor::stats_of(link_id link) const
{
    std::lock_guard lock(impl_->routes_mutex);
    const auto it = impl_->routes.find(link);
    if (it == impl_->routes.end()) return std::nullopt;
    const route& r = it->second;
    return route_stats{link, r.counters->delivered.load(std::memory_order_relaxed),
                       r.counters->dropped.load(std::memory_order_relaxed), r.f.to_string()};
}

std::vector<route_stats> distributor::all_route_stats() const
{
    std::lock_guard lock(impl_->routes_mutex);
    std::vector<route_stats> out;
    out.reserve(impl_->routes.size());
    for (const auto& [link, r] : impl_->routes) {
        out.push_back({link, r.counters->delivered.load(std::memory_order_relaxed),
                       r.counters->dropped.load(std::memory_order_relaxed), r.f.to_string()});
    }
    return out;
}

const distributor_params& distributor::params() const noexcept
{
    return impl_->params;
}

}  // namespace omnitak
