#include "omnitak/pool/system.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

namespace omnitak {

namespace {

using clock = std::chrono::steady_clock;
using receive_channel = asio::experimental::concurrent_channel<void(std::error_code, message_ptr)>;

void validate(const system_params& p)
{
    if (p.threads > 1024) throw std::invalid_argument("system_params::threads must be <= 1024");
    if (p.pool.executor) {
        throw std::invalid_argument("system_params::pool.executor must be empty (set by system)");
    }
    if (p.pool.on_inbound) {
        throw std::invalid_argument(
            "system_params::pool.on_inbound must be empty (use system_params::on_message)");
    }
    if (p.pool.on_state_change) {
        throw std::invalid_argument("system_params::pool.on_state_change must be empty");
    }
    if (p.shutdown_timeout.count() < 0) {
        throw std::invalid_argument("system_params::shutdown_timeout must be >= 0");
    }
}

std::size_t thread_count(std::size_t wanted)
{
    if (wanted != 0) return wanted;
    const unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : hw;
}

// The distributor keeps per-bucket routing latencies in microseconds; Prometheus wants
// cumulative buckets in seconds.
histogram_snapshot latency_histogram(const distributor_stats& d)
{
    histogram_snapshot h;
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < distributor_latency_bounds_us.size(); ++i) {
        running += d.latency_buckets[i];
        h.upper_bounds.push_back(static_cast<double>(distributor_latency_bounds_us[i]) / 1e6);
        h.cumulative_counts.push_back(running);
    }
    h.count = running + d.latency_buckets.back();
    h.sum = static_cast<double>(d.latency_sum_ns) / 1e9;
    return h;
}

// One observation per batch the workers took from the intake, with the distributor's bounds.
histogram_snapshot batch_size_histogram(const distributor_stats& d)
{
    histogram_snapshot h;
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < distributor_batch_size_bounds.size(); ++i) {
        running += d.batch_size_buckets[i];
        h.upper_bounds.push_back(static_cast<double>(distributor_batch_size_bounds[i]));
        h.cumulative_counts.push_back(running);
    }
    h.count = running + d.batch_size_buckets.back();
    h.sum = static_cast<double>(d.batched_messages);
    return h;
}

}  // namespace

system_params system_params::high_throughput()
{
    system_params p;
    p.pool.max_links = 5'000;
    p.pool.link_defaults.queue_capacity = 2'000;
    p.distributor.workers = 32;
    p.distributor.batch_size = 500;
    p.distributor.strategy = backpressure::drop;
    p.distributor.intake_capacity = 50'000;
    return p;
}

system_params system_params::low_latency()
{
    system_params p;
    p.pool.link_defaults.queue_capacity = 500;
    p.distributor.workers = 16;
    p.distributor.batch_size = 10;
    p.distributor.flush_interval = std::chrono::milliseconds(0);
    return p;
}

system_params system_params::memory_constrained()
{
    system_params p;
    p.pool.max_links = 1'000;
    p.pool.link_defaults.queue_capacity = 100;
    p.aggregator.max_entries = 10'000;
    p.aggregator.window = std::chrono::seconds(30);
    p.distributor.intake_capacity = 1'000;
    p.receive_capacity = 256;
    return p;
}

struct system::impl {
    explicit impl(system_params p);

    void on_inbound(message_ptr message);
    void fill_metrics(metrics_snapshot& s) const;
    std::error_code add_admitted(system_link link, admission_permit permit);

    system_params params;
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work;
    std::vector<std::thread> threads;
    std::once_flag started;

    aggregator dedup;
    distributor router;
    admission_controller admission;
    std::optional<rate_limiter> submit_limit;
    std::unique_ptr<receive_channel> received;
    // The pool comes after everything its callbacks touch, so it is destroyed (and its links
    // stopped) before them.
    std::unique_ptr<connection_pool> links;
    std::unique_ptr<metrics_registry> metrics;
    metrics_registry::source_id metrics_source = 0;

    // Link slots held by the links in the system; add/remove are rare, a mutex is enough.
    mutable std::mutex slots_mutex;
    std::unordered_map<link_id, admission_permit> slots;

    std::atomic<bool> stopping{false};
    std::mutex shutdown_mutex;
    std::optional<shutdown_report> report;

    std::atomic<std::uint64_t> inbound{0};
    std::atomic<std::uint64_t> inbound_unique{0};
    std::atomic<std::uint64_t> inbound_duplicates{0};
    std::atomic<std::uint64_t> submitted{0};
    std::atomic<std::uint64_t> submit_rejected{0};
    std::atomic<std::uint64_t> delivered_to_app{0};
    std::atomic<std::uint64_t> receive_dropped{0};
    std::atomic<std::uint64_t> callback_errors{0};
};

system::impl::impl(system_params p)
    : params((validate(p), std::move(p))),
      work(io.get_executor()),
      dedup(params.aggregator),
      router(io.get_executor(),
             [&] {
                 auto d = params.distributor;
                 if (!d.log && params.log) {
                     d.log = params.log;
                     d.log_threshold = params.log_threshold;
                 }
                 return d;
             }()),
      admission([&] {
          auto a = params.admission;
          if (a.max_permits == 0) a.max_permits = params.pool.max_links;
          return a;
      }())
{
    if (params.submit_rate) submit_limit.emplace(*params.submit_rate);
    if (params.receive_capacity > 0) {
        received = std::make_unique<receive_channel>(io.get_executor(), params.receive_capacity);
    }

    pool_params pp = params.pool;
    pp.executor = io.get_executor();
    pp.on_inbound = [this](message_ptr m) { on_inbound(std::move(m)); };
    if (!pp.log && params.log) {
        pp.log = params.log;
        pp.log_level = params.log_threshold;
    }
    links = std::make_unique<connection_pool>(std::move(pp));

    metrics = std::make_unique<metrics_registry>(params.metrics);
    metrics_source = metrics->add_source([this](metrics_snapshot& s) { fill_metrics(s); });
}

void system::impl::on_inbound(message_ptr message)
{
    // Runs on the link's strand, concurrently for different links: only thread-safe
    // components and atomics here.
    if (stopping.load(std::memory_order_acquire)) return;
    inbound.fetch_add(1, std::memory_order_relaxed);

    if (!dedup.check(*message).pass()) {
        inbound_duplicates.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    inbound_unique.fetch_add(1, std::memory_order_relaxed);

    if (params.on_message) {
        try {
            params.on_message(message);
            delivered_to_app.fetch_add(1, std::memory_order_relaxed);
        } catch (...) {
            callback_errors.fetch_add(1, std::memory_order_relaxed);
        }
    }
    if (received) {
        if (received->try_send(std::error_code{}, message)) {
            if (!params.on_message) delivered_to_app.fetch_add(1, std::memory_order_relaxed);
        } else {
            receive_dropped.fetch_add(1, std::memory_order_relaxed);
        }
    }

    // The distributor never routes a message back to its origin link; a full intake is
    // counted there (intake_dropped).
    router.submit(std::move(message));
}

void system::impl::fill_metrics(metrics_snapshot& s) const
{
    const pool_stats p = links->stats();
    s.connections_total += p.links_total;
    s.connections_active += p.links_connected;
    s.messages_sent += p.messages_sent;
    s.messages_received += p.messages_received;
    s.errors += p.errors;
    s.reconnects += p.reconnects;
    s.add_links(link_state_label::connecting, p.links_connecting);
    s.add_links(link_state_label::connected, p.links_connected);
    s.add_links(link_state_label::backing_off, p.links_backing_off);
    s.add_links(link_state_label::closed, p.links_closed);
    s.open_breakers += p.breakers_open;
    static_assert(metrics_parse_reason_count == parse_error_reason_count);
    for (std::size_t i = 0; i < parse_error_reason_count; ++i) {
        s.parse_errors[i] += p.parse_errors_by_reason[i];
    }
    s.framing_problems += p.framing_problems;
    s.framer_bytes_skipped += p.framer_bytes_skipped;
    s.outbound_queue_depth += p.queue_depth;

    const distributor_stats d = router.stats();
    s.distributor_latency_seconds = latency_histogram(d);
    s.distributor_batch_size = batch_size_histogram(d);
    s.distributor_dropped += d.dropped + d.intake_dropped;

    const aggregator_stats a = dedup.stats();
    s.duplicates += a.duplicates;
    s.unique += a.unique + a.no_uid;
}

std::error_code system::impl::add_admitted(system_link link, admission_permit permit)
{
    validate(link.endpoint);
    const link_id id = link.endpoint.id;

    if (auto ec = links->add_link(std::move(link.endpoint))) return ec;
    auto queue = links->outbound_queue_of(id);
    if (!queue) return make_error_code(errc::link_not_found);  // removed concurrently
    if (auto ec = router.add_route(id, std::move(link.route), std::move(queue))) {
        links->remove_link(id);
        return ec;
    }

    std::lock_guard lock(slots_mutex);
    slots.insert_or_assign(id, std::move(permit));
    return {};
}

system::system(system_params params) : impl_(std::make_unique<impl>(std::move(params))) {}

system::~system()
{
    shutdown(impl_->params.shutdown_timeout);
    impl_->metrics->remove_source(impl_->metrics_source);
}

void system::start()
{
    if (impl_->stopping.load()) return;
    std::call_once(impl_->started, [this] {
        const std::size_t n = thread_count(impl_->params.threads);
        for (std::size_t i = 0; i < n; ++i) {
            impl_->threads.emplace_back([this] { impl_->io.run(); });
        }
        impl_->router.start();
    });
}

std::error_code system::add_link(system_link link)
{
    if (impl_->stopping.load(std::memory_order_acquire)) return make_error_code(errc::shut_down);
    if (!impl_->admission.try_acquire()) {
        // A closed controller refuses too: that is a shutdown, not a full pool.
        return make_error_code(impl_->admission.closed() ? errc::shut_down : errc::pool_full);
    }
    admission_permit permit(impl_->admission, std::adopt_lock);
    return impl_->add_admitted(std::move(link), std::move(permit));
}

asio::awaitable<std::error_code> system::async_add_link(system_link link)
{
    if (impl_->stopping.load(std::memory_order_acquire)) co_return make_error_code(errc::shut_down);
    validate(link.endpoint);
    admission_permit permit = co_await impl_->admission.async_acquire(link.endpoint.priority);
    if (!permit) co_return permit.error();
    co_return impl_->add_admitted(std::move(link), std::move(permit));
}

std::error_code system::remove_link(link_id id)
{
    impl_->router.remove_route(id);
    const std::error_code ec = impl_->links->remove_link(id);

    // The slot goes back last, so a waiting async_add_link cannot exceed max_links.
    admission_permit released;
    {
        std::lock_guard lock(impl_->slots_mutex);
        auto it = impl_->slots.find(id);
        if (it != impl_->slots.end()) {
            released = std::move(it->second);
            impl_->slots.erase(it);
        }
    }
    return ec;
}

std::error_code system::set_filter(link_id id, filter route)
{
    return impl_->router.set_filter(id, std::move(route));
}

std::error_code system::submit(message_ptr message)
{
    auto refuse = [this](errc code) {
        impl_->submit_rejected.fetch_add(1, std::memory_order_relaxed);
        return make_error_code(code);
    };
    if (impl_->stopping.load(std::memory_order_acquire)) return refuse(errc::shut_down);
    if (impl_->submit_limit && !impl_->submit_limit->try_acquire()) {
        return refuse(errc::rate_limited);
    }
    if (!impl_->dedup.check(*message).pass()) return refuse(errc::duplicate);
    if (!impl_->router.submit(std::move(message))) return refuse(errc::queue_full);

    impl_->submitted.fetch_add(1, std::memory_order_relaxed);
    return {};
}

std::error_code system::submit(std::string event_bytes)
{
    std::error_code ec;
    auto message = make_message(std::move(event_bytes), ec);
    if (!message) {
        impl_->submit_rejected.fetch_add(1, std::memory_order_relaxed);
        return ec;
    }
    return submit(std::move(message));
}

asio::awaitable<message_ptr> system::async_receive()
{
    if (!impl_->received) co_return nullptr;
    auto [ec, message] =
        co_await impl_->received->async_receive(asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) co_return nullptr;
    co_return message;
}

bool system::try_receive(message_ptr& out)
{
    if (!impl_->received) return false;
    return impl_->received->try_receive([&](std::error_code ec, message_ptr m) {
        if (!ec) out = std::move(m);
    });
}

system_stats system::stats() const
{
    system_stats s;
    s.pool = impl_->links->stats();
    s.distributor = impl_->router.stats();
    s.aggregator = impl_->dedup.stats();
    s.inbound = impl_->inbound.load(std::memory_order_relaxed);
    s.inbound_unique = impl_->inbound_unique.load(std::memory_order_relaxed);
    s.inbound_duplicates = impl_->inbound_duplicates.load(std::memory_order_relaxed);
    s.submitted = impl_->submitted.load(std::memory_order_relaxed);
    s.submit_rejected = impl_->submit_rejected.load(std::memory_order_relaxed);
    s.delivered_to_app = impl_->delivered_to_app.load(std::memory_order_relaxed);
    s.receive_dropped = impl_->receive_dropped.load(std::memory_order_relaxed);
    s.callback_errors = impl_->callback_errors.load(std::memory_order_relaxed);
    {
        std::lock_guard lock(impl_->slots_mutex);
        s.links = impl_->slots.size();
    }
    s.admission_waiting = impl_->admission.waiting();
    return s;
}

shutdown_report system::shutdown(std::chrono::milliseconds timeout)
{
    std::lock_guard once(impl_->shutdown_mutex);
    if (impl_->report) return *impl_->report;

    const auto start = clock::now();
    const auto deadline = start + timeout;
    shutdown_report report;

    // 1. Nothing new comes in: submissions and inbound messages are refused, waiting
    //    add_link calls fail.
    impl_->stopping.store(true, std::memory_order_release);
    impl_->admission.close();

    // 2. The distributor routes what its intake holds into the link queues. Without threads
    //    (never started) nothing can route, so there is nothing to wait for.
    const std::uint64_t drops_before = impl_->links->stats().drops;
    impl_->router.stop();
    if (!impl_->threads.empty()) {
        while (impl_->router.running_workers() > 0 && clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    report.unrouted = impl_->router.intake_size();

    // 3. The links flush their queues within what is left of the timeout and close.
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    std::error_code pool_result;
    if (impl_->threads.empty()) {
        // Nobody runs the io_context: let this thread do it while the pool shuts down.
        std::thread runner([this] { impl_->io.run(); });
        pool_result = impl_->links->shutdown(std::max(left, std::chrono::milliseconds(0)));
        impl_->work.reset();
        impl_->io.stop();
        runner.join();
    } else {
        pool_result = impl_->links->shutdown(std::max(left, std::chrono::milliseconds(0)));
    }
    const std::uint64_t drops_after = impl_->links->stats().drops;
    report.unsent = drops_after > drops_before ? drops_after - drops_before : 0;

    // 4. Readers of async_receive() get what is buffered, then nullptr.
    if (impl_->received) impl_->received->close();

    // 5. Stop the threads. Anything still running past the deadline is abandoned here.
    impl_->work.reset();
    if (clock::now() >= deadline) impl_->io.stop();
    for (auto& t : impl_->threads) {
        if (t.joinable()) t.join();
    }
    {
        std::lock_guard lock(impl_->slots_mutex);
        impl_->slots.clear();
    }

    const bool late = pool_result || report.unrouted > 0;
    report.result = late ? make_error_code(errc::flush_timeout) : std::error_code{};
    report.took = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
    impl_->report = report;
    return report;
}

bool system::is_shut_down() const noexcept
{
    return impl_->stopping.load();
}

connection_pool& system::pool() noexcept
{
    return *impl_->links;
}
distributor& system::router() noexcept
{
    return impl_->router;
}
aggregator& system::dedup() noexcept
{
    return impl_->dedup;
}
metrics_registry& system::metrics() noexcept
{
    return *impl_->metrics;
}
asio::any_io_executor system::get_executor() noexcept
{
    return impl_->io.get_executor();
}
const system_params& system::params() const noexcept
{
    return impl_->params;
}

}  // namespace omnitak
