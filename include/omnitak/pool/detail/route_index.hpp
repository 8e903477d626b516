// The distributor's route index: finds the filters a message satisfies without evaluating
// every filter.
//
// Each filter is reduced to keys that over-approximate it:
//  - type patterns go into a trie over type segments ("." is its own branch, followed by
//    every segment at lookup);
//  - uid, callsign and group values go into hash maps;
//  - radius and box filters go into a grid of geographic cells (cell_degrees square), one
//    entry per cell they touch; filters touching more than max_cells_per_filter cells are not
//    put in the grid;
//  - any_of takes the union of its operands' keys; all_of takes the keys of one operand,
//    preferring exact values, then type patterns of three or more segments, then geo cells,
//    then shorter (broad) type patterns.
// Filters with no usable keys (custom, negation, or compounds of those, or huge geo areas)
// go to a "general" list evaluated for every message; a filter equivalent to always() goes to
// an "always" list with no evaluation at all. Candidates found through inexact keys (geo cells,
// one operand of an all_of) are then verified with filter::matches, so the result is exactly
// the set of filters that match.
//
// Cost per message: a trie walk (segments x branches), three hash lookups, one cell lookup,
// then one verification per inexact candidate, plus one evaluation per general filter. With
// selective type and geo filters it grows with the number of matches, not of links.
//
// Thread safety: immutable after construction; match() may run on any number of threads at
// once, each with its own scratch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "omnitak/pool/filter.hpp"
#include "omnitak/pool/message.hpp"

namespace omnitak::detail {

struct route_index_params {
    double cell_degrees = 1.0;                ///< (0, 90]
    std::size_t max_cells_per_filter = 4096;  ///< larger geo filters are evaluated per message
};

/// Reusable working memory for match(); one per thread.
struct route_scratch {
    std::vector<std::uint32_t> frontier;
    std::vector<std::uint32_t> next;
};

class route_index {
public:
    static constexpr std::uint32_t no_slot = std::numeric_limits<std::uint32_t>::max();

    route_index() = default;
    /// Slot i of the index is filters[i]. Throws std::invalid_argument for bad params.
    route_index(const std::vector<filter>& filters, route_index_params params);

    /// Sets `out` to the slots whose filters match `message`, each once, excluding `skip`.
    void match(const cot_message& message, std::vector<std::uint32_t>& out, route_scratch& scratch,
               std::uint32_t skip = no_slot) const;

    std::size_t size() const noexcept { return filters_.size(); }
    /// Slots evaluated for every message (custom, negation, ...).
    std::size_t general_count() const noexcept { return general_.size(); }
    /// Slots that receive everything.
    std::size_t always_count() const noexcept { return always_.size(); }

private:
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept
        {
            return std::hash<std::string_view>{}(s);
        }
    };
    using value_map =
        std::unordered_map<std::string, std::vector<std::uint32_t>, string_hash, std::equal_to<>>;

    struct trie_node {
        std::vector<std::pair<std::string, std::uint32_t>> children;  // sorted by segment
        std::uint32_t wildcard = no_slot;                             // the "." child
        std::vector<std::uint32_t> slots;  // filters with a pattern ending here
    };

    struct keys;
    void collect(const filter& f, keys& out) const;
    void add_cells_for_circle(const filter::circle& c, std::vector<std::uint32_t>& cells) const;
    void add_cells_for_box(const filter::box& b, std::vector<std::uint32_t>& cells) const;
    bool add_lon_span(double lo, double hi, int row_lo, int row_hi,
                      std::vector<std::uint32_t>& cells) const;
    std::uint32_t trie_insert(const type_pattern& p);
    int row_of(double lat) const noexcept;
    int col_of(double lon) const noexcept;

    route_index_params params_;
    int rows_ = 0;
    int cols_ = 0;
    std::vector<filter> filters_;
    std::vector<std::uint8_t> exact_;  // per slot: an index hit is a match without verifying
    std::vector<std::uint32_t> always_;
    std::vector<std::uint32_t> general_;
    std::vector<trie_node> trie_;  // trie_[0] is the root
    value_map by_uid_;
    value_map by_callsign_;
    value_map by_group_;
    std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> cells_;
};

}  // namespace omnitak::detail
