// Helpers for the link and pool tests on real loopback sockets.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "omnitak/pool/link.hpp"
#include "omnitak/pool/parser.hpp"
#include "omnitak/pool/pool.hpp"

namespace omnitak::test {

#if defined(__SANITIZE_THREAD__)
inline constexpr bool under_tsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool under_tsan = true;
#else
inline constexpr bool under_tsan = false;
#endif
#else
inline constexpr bool under_tsan = false;
#endif

/// A valid CoT event with `uid`, padded with a remarks element to about `size` bytes.
inline std::string event_xml(const std::string& uid, std::size_t size = 0)
{
    std::string head = "<event version=\"2.0\" uid=\"" + uid +
                       "\" type=\"a-f-G-U-C\" how=\"m-g\" time=\"2026-01-01T00:00:00Z\" "
                       "start=\"2026-01-01T00:00:00Z\" stale=\"2030-01-01T00:00:00Z\">"
                       "<point lat=\"1.5\" lon=\"2.5\" hae=\"0\" ce=\"9\" le=\"9\"/><detail>";
    const std::string tail = "</detail></event>";
    if (size > head.size() + tail.size() + 19) {
        head +=
            "<remarks>" + std::string(size - head.size() - tail.size() - 19, 'x') + "</remarks>";
    }
    return head + tail;
}

inline message_ptr make_event(const std::string& uid, std::size_t size = 0,
                              link_id origin = no_link)
{
    std::error_code ec;
    auto m = make_message(event_xml(uid, size), ec, origin);
    if (!m) throw std::runtime_error("test event does not parse: " + ec.message());
    return m;
}

/// Polls `condition` until true or `timeout`; returns the last result.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10))
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (condition()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

/// Link settings that make tests quick: short backoff, breaker that rarely opens.
inline link_settings quick_settings()
{
    link_settings s;
    s.connect_timeout = std::chrono::seconds(2);
    s.first_byte_timeout = std::chrono::seconds(5);
    s.backoff.initial = std::chrono::milliseconds(100);
    s.backoff.max = std::chrono::seconds(2);
    s.breaker.failure_threshold = 1000;
    return s;
}

inline link_params endpoint(link_id id, std::uint16_t port, std::string name = {})
{
    link_params p;
    p.id = id;
    p.name = name.empty() ? "link" + std::to_string(id) : std::move(name);
    p.host = "127.0.0.1";
    p.port = port;
    return p;
}

/// Collects inbound messages, thread-safe.
class inbox {
public:
    void operator()(const message_ptr& m)
    {
        std::lock_guard lock(mutex_);
        ++per_link_[m->origin()];
        messages_.push_back(m);
        total_.fetch_add(1, std::memory_order_release);
    }
    std::size_t total() const { return total_.load(std::memory_order_acquire); }
    std::size_t from(link_id id) const
    {
        std::lock_guard lock(mutex_);
        const auto it = per_link_.find(id);
        return it == per_link_.end() ? 0 : it->second;
    }
    std::size_t links_heard() const
    {
        std::lock_guard lock(mutex_);
        return per_link_.size();
    }
    std::vector<message_ptr> messages() const
    {
        std::lock_guard lock(mutex_);
        return messages_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<message_ptr> messages_;
    std::map<link_id, std::size_t> per_link_;
    std::atomic<std::size_t> total_{0};
};

}  // namespace omnitak::test
