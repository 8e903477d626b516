// The mock TAK server's body, compiled once in the library so that users of the header do not
// compile Asio's socket and coroutine machinery again.
//
// Shape: one io_context run by params.threads threads. The listener lives on the server
// strand; each session (accepted socket) lives on its own strand and runs two coroutines, a
// reader (framer -> parser -> pong / relay / echo / record) and a writer draining the session's
// bounded queue. Sessions reach each other only by posting to the target's strand, so no socket
// or queue is ever touched from two threads. The list of sessions is a copy-on-write snapshot
// under a mutex, cheap to take once per relayed event.
#include "omnitak/pool/testing/mock_tak_server.hpp"

// When optimising, g++ 12 reports -Wmismatched-new-delete inside Asio's coroutine frame
// allocator (its aligned operator new is paired with its own operator delete): a false positive
// reported at the end of each coroutine in this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <algorithm>
#include <array>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <stdexcept>
#include <thread>
#include <utility>

#include "omnitak/pool/framer.hpp"
#include "omnitak/pool/parser.hpp"
#include "omnitak/pool/writer.hpp"

namespace omnitak::testing {

namespace {

using tcp = asio::ip::tcp;
using strand_type = asio::strand<asio::io_context::executor_type>;
using shared_bytes = std::shared_ptr<const std::string>;

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// A complete, valid event; send_half_event_and_close() writes its first half.
constexpr std::string_view half_event_source =
    "<event version=\"2.0\" uid=\"mock-tak-server-half-event\" type=\"a-f-G-U-C\" how=\"m-g\" "
    "time=\"2026-01-01T00:00:00Z\" start=\"2026-01-01T00:00:00Z\" "
    "stale=\"2026-01-01T00:05:00Z\"><point lat=\"0\" lon=\"0\" hae=\"0\" ce=\"9999999\" "
    "le=\"9999999\"/><detail><contact callsign=\"MOCK\"/></detail></event>";

cot_time cot_now()
{
    return std::chrono::floor<std::chrono::microseconds>(std::chrono::system_clock::now());
}

mock_tak_server_params validated(mock_tak_server_params params)
{
    if (params.threads == 0) {
        throw std::invalid_argument("mock_tak_server_params.threads must be at least 1");
    }
    if (params.max_pending_write_bytes == 0) {
        throw std::invalid_argument(
            "mock_tak_server_params.max_pending_write_bytes must be at least 1");
    }
    if (params.read_buffer_bytes == 0) {
        throw std::invalid_argument("mock_tak_server_params.read_buffer_bytes must be at least 1");
    }
    if (params.framer.max_event_bytes < 64) {
        throw std::invalid_argument(
            "mock_tak_server_params.framer.max_event_bytes must be at least 64");
    }
    std::error_code ec;
    asio::ip::make_address(params.address, ec);
    if (ec) {
        throw std::invalid_argument("mock_tak_server_params.address is not an IP address: " +
                                    params.address);
    }
    return params;
}

// Runs f on `executor` and waits for it, passing back its result or exception. Must not be
// called from a thread that the executor needs in order to make progress.
template <class Executor, class F>
auto run_and_wait(const Executor& executor, F f) -> decltype(f())
{
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto done = task.get_future();
    asio::post(executor, std::move(task));
    return done.get();
}

}  // namespace

struct mock_tak_server::impl {
    class session;
    using session_list = std::vector<std::shared_ptr<session>>;

    explicit impl(mock_tak_server_params params);

    // --- lifecycle ---------------------------------------------------------------------------
    void open_acceptor();  // on strand_ or before the threads start
    void close_acceptor();
    asio::awaitable<void> accept_loop(std::shared_ptr<tcp::acceptor> acceptor);
    void stop();

    // --- sessions ----------------------------------------------------------------------------
    void add_session(std::shared_ptr<session> s);
    void remove_session(std::uint64_t id);
    std::shared_ptr<const session_list> snapshot() const;
    // Runs f(session) on every connected session's strand and waits for all of them.
    template <class F>
    void for_each_session_and_wait(F f);

    void on_event(session& from, std::string_view bytes);

    const mock_tak_server_params params_;

    // Declared before everything that holds a reference to it, so it is destroyed last.
    asio::io_context ctx_;
    strand_type strand_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
    std::vector<std::thread> threads_;

    tcp::endpoint endpoint_;                   // the bound address and (actual) port
    std::shared_ptr<tcp::acceptor> acceptor_;  // on strand_; null while not listening
    std::atomic<bool> listening_{false};

    std::atomic<bool> relay_;
    std::atomic<bool> echo_;
    std::atomic<bool> answer_pings_;
    std::atomic<bool> record_;
    std::atomic<bool> reading_{true};
    std::atomic<bool> refuse_{false};
    std::atomic<bool> reset_{false};

    std::atomic<std::uint64_t> next_session_{0};
    std::atomic<std::uint64_t> accepted_{0};
    std::atomic<std::uint64_t> refused_{0};
    std::atomic<std::uint64_t> reset_count_{0};
    std::atomic<std::uint64_t> events_{0};
    std::atomic<std::uint64_t> parse_failures_{0};
    std::atomic<std::uint64_t> framer_problems_{0};
    std::atomic<std::uint64_t> pings_{0};
    std::atomic<std::uint64_t> relayed_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> bytes_in_{0};

    mutable std::mutex sessions_mutex_;
    std::shared_ptr<const session_list> sessions_ = std::make_shared<const session_list>();

    mutable std::mutex record_mutex_;
    std::vector<received_event> received_;

    // Public calls hold it shared for their whole duration; stop() holds it exclusively, so
    // it never joins the threads while a call still waits for work posted to them.
    std::shared_mutex lifecycle_;
    bool stopped_ = false;  // guarded by lifecycle_
};

// One accepted client. Every member is touched only on the session's strand (the socket's
// executor), except id_ which is immutable.
namespace {

// One read buffer per server thread, shared by the sessions that thread serves in turn.
std::vector<char>& thread_read_buffer(std::size_t size)
{
    thread_local std::vector<char> buffer;
    if (buffer.size() < size) buffer.resize(size);
    return buffer;
}

}  // namespace

class mock_tak_server::impl::session : public std::enable_shared_from_this<session> {
public:
    session(impl& server, tcp::socket socket, std::uint64_t id)
        : server_(server),
          socket_(std::move(socket)),
          id_(id),
          executor_(socket_.get_executor()),
          read_gate_(socket_.get_executor(), asio::steady_timer::time_point::max()),
          write_wake_(socket_.get_executor(), asio::steady_timer::time_point::max()),
          framer_(server.params_.framer)
    {
        // Reads are non-blocking reads after a readiness wait (see read_loop).
        std::error_code ignored;
        socket_.non_blocking(true, ignored);
    }

    std::uint64_t id() const noexcept { return id_; }
    const asio::any_io_executor& executor() const noexcept { return executor_; }

    // Called on the server strand right after accept.
    void start()
    {
        asio::co_spawn(executor_, read_loop(shared_from_this()), asio::detached);
        asio::co_spawn(executor_, write_loop(shared_from_this()), asio::detached);
    }

    // Any thread: queue bytes for this client.
    void deliver(shared_bytes bytes)
    {
        asio::dispatch(executor_, [self = shared_from_this(), bytes = std::move(bytes)]() mutable {
            self->enqueue(std::move(bytes));
        });
    }

    // --- the rest runs on the session's strand -----------------------------------------------

    void enqueue(shared_bytes bytes)
    {
        if (closed_ || close_after_flush_) return;
        if (pending_bytes_ + bytes->size() > server_.params_.max_pending_write_bytes) {
            server_.dropped_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        pending_bytes_ += bytes->size();
        queue_.push_back(std::move(bytes));
        write_wake_.cancel();
    }

    void pause_reading() { read_cancel_.emit(asio::cancellation_type::terminal); }
    void resume_reading() { read_gate_.cancel(); }

    void send_and_close(shared_bytes bytes)
    {
        if (closed_) return;
        enqueue(std::move(bytes));
        close_after_flush_ = true;
        write_wake_.cancel();
    }

    void close()
    {
        if (closed_) return;
        closed_ = true;

        // shutdown() first so the peer sees an orderly FIN even if a write is in flight.
        std::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        read_gate_.cancel();
        write_wake_.cancel();
        queue_.clear();
        front_written_ = 0;
        server_.remove_session(id_);
    }

private:
    asio::awaitable<void> read_loop([[maybe_unused]] std::shared_ptr<session> keep_alive)
    {
        for (;;) {
            if (closed_) co_return;

            // Not reading: park until set_reading(true) or close() cancels the gate.
            if (!server_.reading_.load(std::memory_order_acquire)) {
                co_await read_gate_.async_wait(use_tuple);
                continue;
            }

            // Wait until the socket is readable, then read into this thread's buffer: a session
            // holds no read buffer of its own while it waits, which is nearly always (the
            // sessions of a 10,000-link test would otherwise hold one each).
            auto [ec] = co_await socket_.async_wait(
                tcp::socket::wait_read,
                asio::bind_cancellation_slot(read_cancel_.slot(), use_tuple));
            if (closed_) co_return;
            // Cancelled by pause_reading(): nothing was consumed; loop back to the gate.
            if (ec == asio::error::operation_aborted) continue;

            std::vector<char>& buffer = thread_read_buffer(server_.params_.read_buffer_bytes);
            std::size_t n = 0;
            if (!ec) {
                n = socket_.read_some(asio::buffer(buffer), ec);
                if (ec == asio::error::would_block || ec == asio::error::try_again) continue;
            }
            if (ec) {
                framer_.finish();
                drain_framer();
                close();
                co_return;
            }
            server_.bytes_in_.fetch_add(n, std::memory_order_relaxed);
            // Borrowed: the framer copies only an unfinished tail before the buffer is reused.
            framer_.feed_borrowed(std::string_view(buffer.data(), n));
            drain_framer();
            write_now();
            // Between events a fresh framer holds no memory; this one may hold a large tail's.
            if (framer_.idle()) framer_ = stream_framer(server_.params_.framer);
        }
    }

    void drain_framer()
    {
        for (;;) {
            const frame_result r = framer_.next();
            if (r.what == frame_result::kind::need_more) return;
            if (r.what == frame_result::kind::problem) {
                server_.framer_problems_.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            server_.on_event(*this, r.event);
        }
    }

    // After a read's events are handled: what they queued for this same client (a pong, an
    // echo) is written now, while the writer waits, instead of after every other completion
    // pending on the thread (a TAK server answers a ping at once). What the socket does not
    // take stays queued for the writer, with front_written_ saying how much of the first
    // message is out.
    void write_now()
    {
        if (!writer_idle_ || queue_.empty() || closed_ || close_after_flush_) return;
        constexpr std::size_t most = 16;
        std::array<asio::const_buffer, most> pieces;
        std::size_t count = 0;
        for (const auto& b : queue_) {
            if (count == most) break;
            const std::size_t skip = count == 0 ? front_written_ : 0;
            pieces[count++] = asio::const_buffer(b->data() + skip, b->size() - skip);
        }
        std::error_code ec;
        std::size_t written =
            socket_.write_some(std::span<const asio::const_buffer>(pieces.data(), count), ec);
        if (ec) return;  // would block, or an error the writer meets and handles
        while (written > 0) {
            const std::size_t left = queue_.front()->size() - front_written_;
            if (written < left) {
                front_written_ += written;
                break;
            }
            written -= left;
            pending_bytes_ -= queue_.front()->size();
            queue_.pop_front();
            front_written_ = 0;
        }
    }

    asio::awaitable<void> write_loop([[maybe_unused]] std::shared_ptr<session> keep_alive)
    {
        std::vector<shared_bytes> batch;
        std::vector<asio::const_buffer> buffers;
        for (;;) {
            if (closed_) co_return;
            if (queue_.empty()) {
                if (close_after_flush_) {
                    close();
                    co_return;
                }
                writer_idle_ = true;
                co_await write_wake_.async_wait(use_tuple);
                writer_idle_ = false;
                continue;
            }

            // One gathered write for everything queued so far (less what write_now() already
            // wrote of the first message).
            batch.assign(queue_.begin(), queue_.end());
            queue_.clear();
            buffers.clear();
            std::size_t batch_bytes = 0;
            for (const auto& b : batch) {
                const std::size_t skip = buffers.empty() ? std::exchange(front_written_, 0) : 0;
                buffers.emplace_back(b->data() + skip, b->size() - skip);
                batch_bytes += b->size();
            }
            auto [ec, n] = co_await asio::async_write(socket_, buffers, use_tuple);
            (void)n;
            pending_bytes_ -= batch_bytes;
            batch.clear();
            if (ec) {
                close();
                co_return;
            }
        }
    }

    impl& server_;
    tcp::socket socket_;
    const std::uint64_t id_;
    const asio::any_io_executor executor_;  // the session's strand
    asio::steady_timer read_gate_;
    asio::steady_timer write_wake_;
    asio::cancellation_signal read_cancel_;
    stream_framer framer_;
    std::deque<shared_bytes> queue_;
    std::size_t pending_bytes_ = 0;  // queued plus being written
    std::size_t front_written_ = 0;  // bytes of queue_.front() write_now() already wrote
    bool writer_idle_ = false;       // the writer waits for write_wake_
    bool close_after_flush_ = false;
    bool closed_ = false;
};

// ---------------------------------------------------------------------------------------------
// impl
// ---------------------------------------------------------------------------------------------

mock_tak_server::impl::impl(mock_tak_server_params params)
    : params_(validated(std::move(params))),
      strand_(asio::make_strand(ctx_)),
      endpoint_(asio::ip::make_address(params_.address), params_.port),
      relay_(params_.relay),
      echo_(params_.echo),
      answer_pings_(params_.answer_pings),
      record_(params_.record)
{
    // Bind on the constructing thread so a failure throws from the constructor.
    open_acceptor();
    endpoint_ = acceptor_->local_endpoint();

    work_.emplace(ctx_.get_executor());
    threads_.reserve(params_.threads);
    for (std::size_t i = 0; i < params_.threads; ++i) {
        threads_.emplace_back([this] { ctx_.run(); });
    }
}

void mock_tak_server::impl::open_acceptor()
{
    if (acceptor_) return;
    auto acceptor = std::make_shared<tcp::acceptor>(strand_);
    acceptor->open(endpoint_.protocol());
    // Lets resume_listening() take the same port back while old connections sit in TIME_WAIT.
    acceptor->set_option(tcp::acceptor::reuse_address(true));
    acceptor->bind(endpoint_);
    acceptor->listen();
    acceptor_ = acceptor;
    listening_.store(true, std::memory_order_release);
    asio::co_spawn(strand_, accept_loop(std::move(acceptor)), asio::detached);
}

void mock_tak_server::impl::close_acceptor()
{
    if (!acceptor_) return;
    std::error_code ignored;
    acceptor_->close(ignored);
    acceptor_.reset();
    listening_.store(false, std::memory_order_release);
}

asio::awaitable<void> mock_tak_server::impl::accept_loop(std::shared_ptr<tcp::acceptor> acceptor)
{
    for (;;) {
        auto [ec, socket] = co_await acceptor->async_accept(
            asio::any_io_executor(asio::make_strand(ctx_)), use_tuple);

        // Closed by stop_listening() or stop(), possibly just after a successful accept.
        if (!acceptor->is_open()) co_return;
        if (ec) {
            // Transient (e.g. out of descriptors, or the peer gave up): retry shortly.
            asio::steady_timer pause(strand_, std::chrono::milliseconds(10));
            co_await pause.async_wait(use_tuple);
            continue;
        }
        accepted_.fetch_add(1, std::memory_order_relaxed);

        // Counted before closing, so a client that sees the close also sees the count.
        std::error_code ignored;
        if (reset_.load(std::memory_order_acquire)) {
            reset_count_.fetch_add(1, std::memory_order_relaxed);
            socket.set_option(tcp::socket::linger(true, 0), ignored);
            socket.close(ignored);
            continue;
        }
        if (refuse_.load(std::memory_order_acquire)) {
            refused_.fetch_add(1, std::memory_order_relaxed);
            // Unread input would turn the close into an RST; discard what is already here.
            socket.non_blocking(true, ignored);
            char discard[4096];
            while (socket.read_some(asio::buffer(discard), ignored) > 0) {
            }
            socket.shutdown(tcp::socket::shutdown_both, ignored);
            socket.close(ignored);
            continue;
        }

        // As TAK servers do: a pong or a relayed event goes out at once, not after the
        // client's delayed ACK.
        socket.set_option(tcp::no_delay(true), ignored);
        auto s =
            std::make_shared<session>(*this, std::move(socket), next_session_.fetch_add(1) + 1);
        add_session(s);
        s->start();
    }
}

void mock_tak_server::impl::stop()
{
    std::unique_lock lock(lifecycle_);
    if (stopped_) return;
    stopped_ = true;

    // No new sessions, then close the existing ones; every coroutine then finishes and run()
    // returns in each thread once the work guard is gone.
    run_and_wait(strand_, [this] { close_acceptor(); });
    for_each_session_and_wait([](session& s) { s.close(); });
    work_.reset();
    for (auto& t : threads_)
        t.join();
    threads_.clear();
}

void mock_tak_server::impl::add_session(std::shared_ptr<session> s)
{
    std::lock_guard lock(sessions_mutex_);
    auto next = std::make_shared<session_list>(*sessions_);
    next->push_back(std::move(s));
    sessions_ = std::move(next);
}

void mock_tak_server::impl::remove_session(std::uint64_t id)
{
    std::lock_guard lock(sessions_mutex_);
    auto next = std::make_shared<session_list>();
    next->reserve(sessions_->size());
    for (const auto& s : *sessions_) {
        if (s->id() != id) next->push_back(s);
    }
    sessions_ = std::move(next);
}

auto mock_tak_server::impl::snapshot() const -> std::shared_ptr<const session_list>
{
    std::lock_guard lock(sessions_mutex_);
    return sessions_;
}

template <class F>
void mock_tak_server::impl::for_each_session_and_wait(F f)
{
    const auto sessions = snapshot();
    std::vector<std::future<void>> done;
    done.reserve(sessions->size());
    for (const auto& s : *sessions) {
        std::packaged_task<void()> task([s, f] { f(*s); });
        done.push_back(task.get_future());
        asio::post(s->executor(), std::move(task));
    }
    for (auto& d : done)
        d.get();
}

void mock_tak_server::impl::on_event(session& from, std::string_view bytes)
{
    cot_summary summary;
    if (parse_cot(bytes, summary)) {
        parse_failures_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    events_.fetch_add(1, std::memory_order_relaxed);
    const cot_control control = summary.control;

    if (record_.load(std::memory_order_acquire)) {
        std::lock_guard lock(record_mutex_);
        received_.push_back(received_event{from.id(), std::string(bytes), std::move(summary)});
    }

    // Control messages are answered or absorbed, never brokered (as TAK Server does).
    if (control == cot_control::ping) {
        if (answer_pings_.load(std::memory_order_acquire)) {
            from.enqueue(std::make_shared<const std::string>(make_pong(cot_now())));
            pings_.fetch_add(1, std::memory_order_relaxed);
        }
        return;
    }
    if (control == cot_control::pong) return;

    const bool relay = relay_.load(std::memory_order_acquire);
    const bool echo = echo_.load(std::memory_order_acquire);
    if (!relay && !echo) return;

    // One copy of the bytes, shared by every recipient.
    const auto shared = std::make_shared<const std::string>(bytes);
    if (relay) {
        // Held in a local: a temporary in the range expression would die before the loop.
        const auto targets = snapshot();
        for (const auto& target : *targets) {
            if (target->id() == from.id()) continue;
            target->deliver(shared);
            relayed_.fetch_add(1, std::memory_order_relaxed);
        }
    }
    if (echo) from.enqueue(shared);
}

// ---------------------------------------------------------------------------------------------
// mock_tak_server
// ---------------------------------------------------------------------------------------------

mock_tak_server::mock_tak_server(mock_tak_server_params params)
    : impl_(std::make_unique<impl>(std::move(params)))
{
}

mock_tak_server::~mock_tak_server()
{
    stop();
}

std::uint16_t mock_tak_server::port() const
{
    return impl_->endpoint_.port();
}

void mock_tak_server::stop()
{
    impl_->stop();
}

void mock_tak_server::set_relay(bool on)
{
    impl_->relay_.store(on, std::memory_order_release);
}
void mock_tak_server::set_echo(bool on)
{
    impl_->echo_.store(on, std::memory_order_release);
}
void mock_tak_server::set_answer_pings(bool on)
{
    impl_->answer_pings_.store(on, std::memory_order_release);
}
void mock_tak_server::set_record(bool on)
{
    impl_->record_.store(on, std::memory_order_release);
}
void mock_tak_server::set_refuse(bool on)
{
    impl_->refuse_.store(on, std::memory_order_release);
}
void mock_tak_server::set_reset(bool on)
{
    impl_->reset_.store(on, std::memory_order_release);
}

void mock_tak_server::set_reading(bool on)
{
    std::shared_lock lock(impl_->lifecycle_);
    impl_->reading_.store(on, std::memory_order_release);
    if (impl_->stopped_) return;

    // The flag is set before the sessions are poked, so a session either sees it before its
    // next read or is poked while that read (or its wait at the gate) is pending.
    if (on) {
        impl_->for_each_session_and_wait([](impl::session& s) { s.resume_reading(); });
    } else {
        impl_->for_each_session_and_wait([](impl::session& s) { s.pause_reading(); });
    }
}

void mock_tak_server::close_all_clients()
{
    std::shared_lock lock(impl_->lifecycle_);
    if (impl_->stopped_) return;
    impl_->for_each_session_and_wait([](impl::session& s) { s.close(); });
}

void mock_tak_server::stop_listening()
{
    std::shared_lock lock(impl_->lifecycle_);
    if (impl_->stopped_) return;
    run_and_wait(impl_->strand_, [this] { impl_->close_acceptor(); });
}

void mock_tak_server::resume_listening()
{
    std::shared_lock lock(impl_->lifecycle_);
    if (impl_->stopped_) return;
    run_and_wait(impl_->strand_, [this] { impl_->open_acceptor(); });
}

void mock_tak_server::send_to_all(std::string bytes)
{
    std::shared_lock lock(impl_->lifecycle_);
    if (impl_->stopped_) return;
    const auto shared = std::make_shared<const std::string>(std::move(bytes));
    impl_->for_each_session_and_wait([&shared](impl::session& s) { s.enqueue(shared); });
}

bool mock_tak_server::send_to(std::uint64_t session, std::string bytes)
{
    std::shared_lock lock(impl_->lifecycle_);
    if (impl_->stopped_) return false;
    const auto sessions = impl_->snapshot();
    for (const auto& s : *sessions) {
        if (s->id() != session) continue;
        auto shared = std::make_shared<const std::string>(std::move(bytes));
        run_and_wait(s->executor(), [&] { s->enqueue(std::move(shared)); });
        return true;
    }
    return false;
}

void mock_tak_server::send_half_event_and_close()
{
    std::shared_lock lock(impl_->lifecycle_);
    if (impl_->stopped_) return;
    const auto half = std::make_shared<const std::string>(
        half_event_source.substr(0, half_event_source.size() / 2));
    impl_->for_each_session_and_wait([&half](impl::session& s) { s.send_and_close(half); });
}

bool mock_tak_server::listening() const
{
    return impl_->listening_.load(std::memory_order_acquire);
}

std::size_t mock_tak_server::connected_clients() const
{
    return impl_->snapshot()->size();
}

std::vector<std::uint64_t> mock_tak_server::sessions() const
{
    const auto sessions = impl_->snapshot();
    std::vector<std::uint64_t> ids;
    for (const auto& s : *sessions)
        ids.push_back(s->id());
    std::sort(ids.begin(), ids.end());
    return ids;
}

std::uint64_t mock_tak_server::sessions_accepted() const
{
    return impl_->accepted_.load();
}
std::uint64_t mock_tak_server::connections_refused() const
{
    return impl_->refused_.load();
}
std::uint64_t mock_tak_server::connections_reset() const
{
    return impl_->reset_count_.load();
}
std::uint64_t mock_tak_server::events_received() const
{
    return impl_->events_.load();
}
std::uint64_t mock_tak_server::parse_failures() const
{
    return impl_->parse_failures_.load();
}
std::uint64_t mock_tak_server::framer_problems() const
{
    return impl_->framer_problems_.load();
}
std::uint64_t mock_tak_server::pings_answered() const
{
    return impl_->pings_.load();
}
std::uint64_t mock_tak_server::events_relayed() const
{
    return impl_->relayed_.load();
}
std::uint64_t mock_tak_server::writes_dropped() const
{
    return impl_->dropped_.load();
}
std::uint64_t mock_tak_server::bytes_received() const
{
    return impl_->bytes_in_.load();
}

std::vector<received_event> mock_tak_server::received() const
{
    std::lock_guard lock(impl_->record_mutex_);
    return impl_->received_;
}

void mock_tak_server::clear_received()
{
    std::lock_guard lock(impl_->record_mutex_);
    impl_->received_.clear();
}

bool mock_tak_server::wait_for(std::function<bool()> condition,
                               std::chrono::milliseconds timeout) const
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (condition()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

}  // namespace omnitak::testing
