#include "omnitak/pool/pool.hpp"

#include <algorithm>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <libcuckoo/cuckoohash_map.hh>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "omnitak/pool/error.hpp"

namespace omnitak {

namespace {

// Extra time shutdown() allows beyond its flush timeout for sockets to close and coroutines
// to unwind after the last flush deadline fired.
constexpr std::chrono::milliseconds shutdown_grace{1'000};

// What the links call back into. Shared with every link (not owned by the pool object), so a
// link that outlives a timed-out shutdown still finds it.
struct pool_core {
    std::function<void(message_ptr)> on_inbound;
    std::function<void(link_id, link_state)> on_state_change;
    std::function<void(int, std::string_view)> log;
    int log_level = log_level::warning;

    std::mutex mutex;
    std::condition_variable all_finished;
    std::size_t live_links = 0;  // started links whose coroutines have not finished

    void link_started()
    {
        std::lock_guard lock(mutex);
        ++live_links;
    }

    void link_finished()
    {
        std::lock_guard lock(mutex);
        if (--live_links == 0) all_finished.notify_all();
    }

    std::size_t live()
    {
        std::lock_guard lock(mutex);
        return live_links;
    }
};

using link_ptr = std::shared_ptr<link>;
using link_list = std::vector<link_ptr>;

}  // namespace

struct connection_pool::impl {
    explicit impl(pool_params p) : params(std::move(p)), core(std::make_shared<pool_core>())
    {
        if (params.max_links == 0)
            throw std::invalid_argument("pool_params::max_links must be > 0");
        if (params.remove_flush_timeout.count() < 0) {
            throw std::invalid_argument("pool_params::remove_flush_timeout must be >= 0");
        }
        validate(params.link_defaults);
        link_defaults = std::make_shared<const link_settings>(params.link_defaults);
        if (!(params.connect_rate >= 0.0) || params.connect_rate > 1e9) {
            throw std::invalid_argument("pool_params::connect_rate must be in [0, 1e9]");
        }
        if (params.connect_rate > 0.0) {
            if (!(params.connect_burst >= 1.0) || !std::isfinite(params.connect_burst)) {
                throw std::invalid_argument("pool_params::connect_burst must be >= 1");
            }
            connect_tokens = std::make_shared<fair_token_bucket>(
                token_bucket_params{.rate = params.connect_rate, .burst = params.connect_burst});
        }

        core->on_inbound = std::move(params.on_inbound);
        core->on_state_change = std::move(params.on_state_change);
        core->log = std::move(params.log);
        core->log_level = params.log_level;

        if (params.executor) {
            executor = params.executor;
        } else {
            // One single-threaded io_context per thread: a link lives on one of them, so its
            // handlers never run concurrently and it needs no strand (a strand costs a heap
            // allocation in every type-erased executor copy, i.e. in every coroutine frame and
            // I/O object of every link).
            std::size_t n = params.threads;
            if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
            for (std::size_t i = 0; i < n; ++i) {
                ios.push_back(std::make_unique<asio::io_context>(1));
                works.emplace_back(ios.back()->get_executor());
            }
            executor = ios.front()->get_executor();
            threads.reserve(n);
            for (std::size_t i = 0; i < n; ++i) {
                threads.emplace_back([io = ios[i].get()] { io->run(); });
            }
        }
    }

    ~impl() { join_threads(); }

    link_callbacks callbacks_for_links() const
    {
        link_callbacks cb;
        auto c = core;
        if (c->on_inbound) cb.on_inbound = [c](message_ptr m) { c->on_inbound(std::move(m)); };
        if (c->on_state_change) {
            cb.on_state_change = [c](link_id id, link_state s) { c->on_state_change(id, s); };
        }
        if (c->log) {
            cb.log = [c](int level, std::string_view line) { c->log(level, line); };
            cb.log_threshold = c->log_level;
        } else {
            cb.log_threshold = log_level::off;
        }
        cb.on_finished = [c](link_id) { c->link_finished(); };
        return cb;
    }

    link_ptr find(link_id id) const
    {
        link_ptr l;
        links.find(id, l);
        return l;
    }

    // The list broadcast() and stats() walk, rebuilt (under libcuckoo's table lock) only when
    // links were added or removed since the last one.
    std::shared_ptr<const link_list> snapshot() const
    {
        std::lock_guard lock(snapshot_mutex);
        const auto v = version.load(std::memory_order_acquire);
        if (!snap || snap_version != v) {
            auto fresh = std::make_shared<link_list>();
            {
                auto locked = links.lock_table();
                fresh->reserve(locked.size());
                for (const auto& entry : locked)
                    fresh->push_back(entry.second);
            }
            snap = std::move(fresh);
            snap_version = v;
        }
        return snap;
    }

    // The executor for a new link, and whether it already runs one handler at a time.
    std::pair<asio::any_io_executor, bool> next_executor()
    {
        if (ios.empty()) return {executor, params.executor_is_serial};
        const auto i = next_io.fetch_add(1, std::memory_order_relaxed) % ios.size();
        return {ios[i]->get_executor(), true};
    }

    bool on_pool_thread() const
    {
        for (const auto& io : ios) {
            if (io->get_executor().running_in_this_thread()) return true;
        }
        return false;
    }

    void join_threads()
    {
        if (ios.empty()) return;
        std::lock_guard lock(threads_mutex);
        if (threads.empty()) return;
        works.clear();
        for (auto& io : ios)
            io->stop();
        for (auto& t : threads) {
            if (t.get_id() == std::this_thread::get_id()) {
                t.detach();  // cannot join ourselves; the thread ends when run() returns
            } else {
                t.join();
            }
        }
        threads.clear();
    }

    pool_params params;
    // params.link_defaults, shared by every link that takes them.
    std::shared_ptr<const link_settings> link_defaults;
    std::shared_ptr<pool_core> core;
    std::shared_ptr<fair_token_bucket> connect_tokens;  // null: connect rate unlimited

    std::vector<std::unique_ptr<asio::io_context>> ios;
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> works;
    std::atomic<std::size_t> next_io{0};
    std::vector<std::thread> threads;
    std::mutex threads_mutex;
    asio::any_io_executor executor;

    // mutable: lock_table() (for snapshots) is non-const.
    mutable libcuckoo::cuckoohash_map<link_id, link_ptr> links;
    std::atomic<std::size_t> count{0};
    std::atomic<bool> accepting{true};
    std::atomic<std::uint64_t> version{0};

    mutable std::mutex snapshot_mutex;
    mutable std::shared_ptr<const link_list> snap;
    mutable std::uint64_t snap_version = 0;

    enum class shutdown_phase { none, running, done };
    std::mutex shutdown_mutex;
    std::condition_variable shutdown_cv;
    shutdown_phase shutdown_state = shutdown_phase::none;
    std::error_code shutdown_result;
};

connection_pool::connection_pool(pool_params params)
    : impl_(std::make_shared<impl>(std::move(params)))
{
}

connection_pool::~connection_pool()
{
    shutdown(impl_->params.remove_flush_timeout);
    impl_->join_threads();
}

std::error_code connection_pool::add_link(link_params params)
{
    auto& p = *impl_;
    if (!p.accepting.load(std::memory_order_acquire)) return make_error_code(errc::shut_down);

    // Reserve a slot first so that concurrent adds cannot overshoot max_links.
    auto n = p.count.load(std::memory_order_relaxed);
    do {
        if (n >= p.params.max_links) return make_error_code(errc::pool_full);
    } while (!p.count.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel));

    link_ptr l;
    try {
        const auto [executor, serial] = p.next_executor();
        l = link::make(executor, std::move(params), p.link_defaults, p.callbacks_for_links(),
                       serial, p.connect_tokens);
    } catch (...) {
        p.count.fetch_sub(1, std::memory_order_acq_rel);
        throw;
    }
    const link_id id = l->id();
    if (!p.links.insert(id, l)) {
        p.count.fetch_sub(1, std::memory_order_acq_rel);
        return make_error_code(errc::link_exists);
    }
    p.version.fetch_add(1, std::memory_order_acq_rel);

    p.core->link_started();
    l->start();

    // shutdown() may have taken its list of links just before our insert: then it is ours to
    // stop. Stopping twice is harmless.
    if (!p.accepting.load(std::memory_order_acquire)) {
        l->stop(std::chrono::milliseconds(0));
        return make_error_code(errc::shut_down);
    }
    return {};
}

std::error_code connection_pool::remove_link(link_id id, std::chrono::milliseconds flush_timeout)
{
    auto& p = *impl_;
    link_ptr l;
    const bool erased = p.links.erase_fn(id, [&](link_ptr& v) {
        l = v;
        return true;
    });
    if (!erased) return make_error_code(errc::link_not_found);
    p.count.fetch_sub(1, std::memory_order_acq_rel);
    p.version.fetch_add(1, std::memory_order_acq_rel);
    l->stop(flush_timeout);
    return {};
}

std::error_code connection_pool::remove_link(link_id id)
{
    return remove_link(id, impl_->params.remove_flush_timeout);
}

std::error_code connection_pool::send_to(link_id id, message_ptr message)
{
    auto& p = *impl_;
    if (!p.accepting.load(std::memory_order_acquire)) return make_error_code(errc::shut_down);
    const link_ptr l = p.find(id);
    if (!l) return make_error_code(errc::link_not_found);
    return l->send(std::move(message));
}

std::size_t connection_pool::broadcast(const message_ptr& message)
{
    auto& p = *impl_;
    if (!message || !p.accepting.load(std::memory_order_acquire)) return 0;
    const auto list = p.snapshot();
    std::size_t queued = 0;
    for (const auto& l : *list) {
        if (l->id() == message->origin()) continue;
        if (!l->send(message)) ++queued;
    }
    return queued;
}

std::shared_ptr<outbound_queue> connection_pool::outbound_queue_of(link_id id) const
{
    const link_ptr l = impl_->find(id);
    return l ? l->queue() : nullptr;
}

std::error_code connection_pool::drop_session(link_id id)
{
    const link_ptr l = impl_->find(id);
    if (!l) return make_error_code(errc::link_not_found);
    l->drop_session();
    return {};
}

std::optional<link_stats> connection_pool::stats_of(link_id id) const
{
    const link_ptr l = impl_->find(id);
    if (!l) return std::nullopt;
    return l->stats();
}

std::vector<link_stats> connection_pool::link_stats_all() const
{
    const auto list = impl_->snapshot();
    std::vector<link_stats> out;
    out.reserve(list->size());
    for (const auto& l : *list)
        out.push_back(l->stats());
    return out;
}

pool_stats connection_pool::stats() const
{
    const auto list = impl_->snapshot();
    pool_stats s;
    std::size_t running = 0;
    for (const auto& l : *list) {
        const link_stats ls = l->stats();
        ++s.links_total;
        switch (ls.state) {
            case link_state::connecting:
                ++s.links_connecting;
                break;
            case link_state::connected:
                ++s.links_connected;
                break;
            case link_state::backing_off:
                ++s.links_backing_off;
                break;
            case link_state::closed:
                ++s.links_closed;
                break;
        }
        if (ls.state != link_state::closed) ++running;
        if (ls.breaker == breaker_state::open) ++s.breakers_open;
        s.messages_sent += ls.messages_sent;
        s.messages_received += ls.messages_received;
        s.bytes_sent += ls.bytes_sent;
        s.bytes_received += ls.bytes_received;
        s.errors += ls.errors;
        s.parse_errors += ls.parse_errors;
        s.framing_problems += ls.framing_problems;
        s.framer_bytes_skipped += ls.framer_bytes_skipped;
        for (std::size_t i = 0; i < parse_error_reason_count; ++i) {
            s.parse_errors_by_reason[i] += ls.parse_errors_by_reason[i];
        }
        s.reconnects += ls.reconnects;
        s.drops += ls.drops;
        s.queue_rejected += ls.queue_rejected;
        s.dropped_unsent += ls.dropped_unsent;
        s.queue_depth += ls.queue_depth;
    }
    const std::size_t live = impl_->core->live();
    s.links_stopping = live > running ? live - running : 0;
    if (impl_->connect_tokens) s.links_waiting_to_connect = impl_->connect_tokens->waiting();
    return s;
}

bool connection_pool::contains(link_id id) const
{
    return impl_->links.contains(id);
}

std::size_t connection_pool::size() const noexcept
{
    return impl_->count.load(std::memory_order_acquire);
}

std::error_code connection_pool::shutdown(std::chrono::milliseconds timeout)
{
    auto& p = *impl_;
    {
        std::unique_lock lock(p.shutdown_mutex);
        if (p.shutdown_state == impl::shutdown_phase::done) return p.shutdown_result;
        if (p.shutdown_state == impl::shutdown_phase::running) {
            p.shutdown_cv.wait(lock,
                               [&] { return p.shutdown_state == impl::shutdown_phase::done; });
            return p.shutdown_result;
        }
        p.shutdown_state = impl::shutdown_phase::running;
    }

    // No new links or messages from here on; every link flushes within the timeout.
    p.accepting.store(false, std::memory_order_release);
    // Links waiting for a connect token are stopped below; with the line closed, none of them
    // wakes the next one on its way out.
    if (p.connect_tokens) p.connect_tokens->close();
    const auto deadline = std::chrono::steady_clock::now() + timeout + shutdown_grace;
    const auto flush = std::max(timeout, std::chrono::milliseconds(0));
    for (const auto& l : *p.snapshot())
        l->stop(flush);

    std::error_code result;
    if (p.on_pool_thread()) {
        // Waiting here would block one of the threads the links need to finish.
        result = {};
    } else {
        std::unique_lock lock(p.core->mutex);
        const bool finished = p.core->all_finished.wait_until(
            lock, deadline, [&] { return p.core->live_links == 0; });
        if (!finished) result = make_error_code(errc::flush_timeout);
        lock.unlock();
        p.join_threads();
    }

    {
        std::lock_guard lock(p.shutdown_mutex);
        p.shutdown_result = result;
        p.shutdown_state = impl::shutdown_phase::done;
    }
    p.shutdown_cv.notify_all();
    return result;
}

bool connection_pool::is_shut_down() const noexcept
{
    return !impl_->accepting.load(std::memory_order_acquire);
}

asio::any_io_executor connection_pool::get_executor() const
{
    return impl_->executor;
}

}  // namespace omnitak
