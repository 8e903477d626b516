// Reconnect delays: exponential backoff with jitter, capped, reset after a stable session.
//
// A sans-I/O schedule. The link asks next_delay() after every failed attempt or lost session
// and sleeps that long before the next attempt; it calls reset() when a session stayed up for
// reset_after. Jitter spreads the reconnects of many links that lost one server at the same
// moment, so that they do not come back as one storm.
//
// Thread safety: distinct objects: safe. Shared objects: unsafe (the link uses its schedule
// on its strand only).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <stdexcept>

namespace omnitak {

/// Parameters of a reconnect schedule. Validated by validate() (the link calls it at
/// construction), which throws std::invalid_argument naming the field.
struct backoff_params {
    /// Delay before the first retry after a failure. Default 1 s. Must be > 0.
    std::chrono::milliseconds initial{1'000};
    /// Each further consecutive failure multiplies the delay by this. Default 2.0. Must be
    /// >= 1.0 (1.0 gives a constant delay).
    double multiplier = 2.0;
    /// Upper bound of the delay before jitter. Default 60 s. Must be >= initial.
    std::chrono::milliseconds max{60'000};
    /// Relative jitter: the delay is drawn uniformly from [d * (1 - jitter), d * (1 + jitter)].
    /// Default 0.2 (±20 %). Range [0, 1); 0 disables jitter.
    double jitter = 0.2;
    /// A session that stayed connected at least this long resets the schedule, so the next
    /// retry waits `initial` again. Default 60 s. 0 resets after every successful connect.
    std::chrono::milliseconds reset_after{60'000};
};

/// Throws std::invalid_argument naming the first bad field.
inline void validate(const backoff_params& p)
{
    if (p.initial.count() <= 0) throw std::invalid_argument("backoff_params::initial must be > 0");
    if (!(p.multiplier >= 1.0) || !std::isfinite(p.multiplier)) {
        throw std::invalid_argument("backoff_params::multiplier must be a finite value >= 1");
    }
    if (p.max < p.initial) throw std::invalid_argument("backoff_params::max must be >= initial");
    if (!(p.jitter >= 0.0 && p.jitter < 1.0)) {
        throw std::invalid_argument("backoff_params::jitter must be in [0, 1)");
    }
    if (p.reset_after.count() < 0) {
        throw std::invalid_argument("backoff_params::reset_after must be >= 0");
    }
}

/// The schedule of one link. Randomness comes from a small generator seeded at
/// construction (links seed it with their id, so two links rarely draw the same jitter),
/// or from the caller through next_delay(double).
class backoff_schedule {
public:
    /// Throws std::invalid_argument for bad params.
    explicit backoff_schedule(backoff_params params = {}, std::uint64_t seed = 1)
        : params_(params), state_(seed == 0 ? 0x9e3779b97f4a7c15ULL : seed)
    {
        validate(params_);
    }

    /// The delay before the next attempt, with jitter from the internal generator; advances
    /// the schedule.
    std::chrono::milliseconds next_delay() { return next_delay(next_unit()); }

    /// As next_delay(), with `unit` in [0, 1) choosing the point in the jitter range
    /// (0.5 = no jitter). Deterministic: the unit tests use it.
    std::chrono::milliseconds next_delay(double unit)
    {
        const double base = current_base_ms();
        if (failures_ < max_steps) ++failures_;

        const double spread = base * params_.jitter;
        const double unit_clamped = std::clamp(unit, 0.0, 1.0);
        const double jittered = base - spread + 2.0 * spread * unit_clamped;
        return std::chrono::milliseconds(
            std::max<std::int64_t>(1, static_cast<std::int64_t>(std::llround(jittered))));
    }

    /// Back to the first step: the next delay is `initial` (with jitter).
    void reset() noexcept { failures_ = 0; }

    /// Applies the reset rule: resets when a session that lasted `connected_for` was stable.
    void on_session_end(std::chrono::steady_clock::duration connected_for) noexcept
    {
        if (connected_for >= params_.reset_after) reset();
    }

    /// Delays handed out since the last reset.
    std::uint32_t consecutive_failures() const noexcept { return failures_; }
    const backoff_params& params() const noexcept { return params_; }

private:
    // Past this many doublings every realistic schedule sits at its cap; stopping the count
    // keeps pow() away from overflow.
    static constexpr std::uint32_t max_steps = 64;

    double current_base_ms() const
    {
        const double initial = static_cast<double>(params_.initial.count());
        const double cap = static_cast<double>(params_.max.count());
        const double grown = initial * std::pow(params_.multiplier, static_cast<double>(failures_));
        return std::min(cap, grown);
    }

    // splitmix64: tiny, fast and good enough to decorrelate links; not for cryptography.
    double next_unit() noexcept
    {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        return static_cast<double>(z >> 11) * 0x1.0p-53;
    }

    backoff_params params_;
    std::uint64_t state_;
    std::uint32_t failures_ = 0;
};

}  // namespace omnitak
