// The mock TAK server over real loopback sockets. The clients here are plain Asio sockets
// driven by their own single-threaded io_context, so every wait has a deadline.
#include "omnitak/pool/testing/mock_tak_server.hpp"

#include <gtest/gtest.h>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "omnitak/pool/parser.hpp"
#include "omnitak/pool/writer.hpp"

namespace omnitak::testing {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

constexpr auto wait_limit = 10s;      // generous: sanitizer builds on a shared machine are slow
constexpr auto quiet_period = 200ms;  // how long "nothing arrives" is watched for

std::string make_event(const std::string& uid)
{
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<event version=\"2.0\" uid=\"" + uid +
           "\" type=\"a-f-G-U-C\" how=\"m-g\" time=\"2026-01-01T00:00:00Z\" "
           "start=\"2026-01-01T00:00:00Z\" stale=\"2026-01-01T00:05:00Z\"><point lat=\"1.5\" "
           "lon=\"2.5\" hae=\"0\" ce=\"10\" le=\"10\"/><detail><contact callsign=\"" +
           uid + "\"/></detail></event>\n";
}

cot_time now()
{
    return std::chrono::floor<std::chrono::microseconds>(std::chrono::system_clock::now());
}

std::size_t count_events(const std::string& data)
{
    std::size_t count = 0;
    for (auto at = data.find("</event>"); at != std::string::npos;
         at = data.find("</event>", at + 1)) {
        ++count;
    }
    return count;
}

// The events in `data`, each from `<event` to the end of `</event>`.
std::vector<std::string> split_events(const std::string& data)
{
    std::vector<std::string> events;
    std::size_t from = 0;
    for (;;) {
        const auto begin = data.find("<event", from);
        if (begin == std::string::npos) break;
        const auto end = data.find("</event>", begin);
        if (end == std::string::npos) break;
        events.push_back(data.substr(begin, end + 8 - begin));
        from = end + 8;
    }
    return events;
}

// A blocking-style client whose reads are bounded by deadlines.
class test_client {
public:
    explicit test_client(std::uint16_t port) : socket_(ctx_)
    {
        socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    }

    // Connects, returning the error instead of throwing.
    static std::error_code try_connect(std::uint16_t port)
    {
        asio::io_context ctx;
        tcp::socket socket(ctx);
        std::error_code ec;
        socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
        return ec;
    }

    void send(std::string_view bytes) { asio::write(socket_, asio::buffer(bytes)); }

    // Reads until done(data()) holds ({}), the stream ends or fails (that error), or the
    // timeout passes (std::errc::timed_out).
    template <class Pred>
    std::error_code read_until(Pred done, std::chrono::milliseconds timeout)
    {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done(data_)) {
            if (std::chrono::steady_clock::now() >= deadline) {
                return std::make_error_code(std::errc::timed_out);
            }
            std::error_code ec;
            std::size_t n = 0;
            bool completed = false;
            socket_.async_read_some(asio::buffer(buffer_), [&](std::error_code e, std::size_t k) {
                ec = e;
                n = k;
                completed = true;
            });
            ctx_.restart();
            ctx_.run_until(deadline);
            if (!completed) {
                socket_.cancel();
                ctx_.restart();
                ctx_.run();
            }
            data_.append(buffer_.data(), n);
            if (ec == asio::error::operation_aborted) {
                return std::make_error_code(std::errc::timed_out);
            }
            if (ec) return ec;
        }
        return {};
    }

    std::error_code read_events(std::size_t count, std::chrono::milliseconds timeout = wait_limit)
    {
        return read_until([count](const std::string& d) { return count_events(d) >= count; },
                          timeout);
    }

    // Reads until the stream ends; returns the error that ended it (eof for an orderly close).
    std::error_code read_to_end(std::chrono::milliseconds timeout = wait_limit)
    {
        return read_until([](const std::string&) { return false; }, timeout);
    }

    const std::string& data() const { return data_; }
    tcp::socket& socket() { return socket_; }

private:
    asio::io_context ctx_;
    tcp::socket socket_;
    std::array<char, 65536> buffer_{};
    std::string data_;
};

bool is_connection_closed(const std::error_code& ec)
{
    return ec == asio::error::eof || ec == asio::error::connection_reset;
}

TEST(MockTakServer, ListensOnAnEphemeralPortAndCountsSessions)
{
    mock_tak_server server;
    EXPECT_NE(server.port(), 0);
    EXPECT_TRUE(server.listening());

    test_client a(server.port());
    test_client b(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 2; }, wait_limit));
    EXPECT_EQ(server.sessions_accepted(), 2u);
    EXPECT_EQ(server.sessions(), (std::vector<std::uint64_t>{1, 2}));
}

TEST(MockTakServer, AnswersPingWithPongToTheSender)
{
    mock_tak_server server;
    test_client client(server.port());

    client.send(make_ping("client-1-ping", now()));
    ASSERT_FALSE(client.read_events(1));

    const auto events = split_events(client.data());
    ASSERT_EQ(events.size(), 1u);
    cot_summary pong;
    ASSERT_FALSE(parse_cot(events[0], pong));
    EXPECT_EQ(pong.type, "t-x-c-t-r");
    EXPECT_EQ(pong.uid, "takPong");
    EXPECT_EQ(pong.how, "h-g-i-g-o");
    EXPECT_EQ(server.pings_answered(), 1u);
}

TEST(MockTakServer, PingsAreNeitherRelayedNorAnsweredWhenSwitchedOff)
{
    mock_tak_server server;
    server.set_answer_pings(false);
    test_client sender(server.port());
    test_client other(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 2; }, wait_limit));

    sender.send(make_ping("client-1-ping", now()));
    ASSERT_TRUE(server.wait_for([&] { return server.events_received() == 1; }, wait_limit));

    EXPECT_EQ(sender.read_events(1, quiet_period), std::errc::timed_out);
    EXPECT_EQ(other.read_events(1, quiet_period), std::errc::timed_out);
    EXPECT_EQ(server.pings_answered(), 0u);
}

TEST(MockTakServer, RelaysEventsToOtherClientsButNotBackToTheSender)
{
    mock_tak_server server({.threads = 2});
    test_client a(server.port());
    test_client b(server.port());
    test_client c(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 3; }, wait_limit));

    const std::string event = make_event("unit-a");
    a.send(event);

    ASSERT_FALSE(b.read_events(1));
    ASSERT_FALSE(c.read_events(1));
    EXPECT_EQ(split_events(b.data()), split_events(event));
    EXPECT_EQ(split_events(c.data()), split_events(event));
    EXPECT_EQ(a.read_events(1, quiet_period), std::errc::timed_out);
    EXPECT_EQ(server.events_relayed(), 2u);
}

TEST(MockTakServer, EchoesEventsToTheSenderWhenEchoIsOn)
{
    mock_tak_server server({.relay = false, .echo = true});
    test_client a(server.port());
    test_client b(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 2; }, wait_limit));

    a.send(make_event("unit-a"));
    ASSERT_FALSE(a.read_events(1));
    EXPECT_EQ(split_events(a.data()), split_events(make_event("unit-a")));
    EXPECT_EQ(b.read_events(1, quiet_period), std::errc::timed_out);

    // Switching at run time: relay on, echo off.
    server.set_echo(false);
    server.set_relay(true);
    a.send(make_event("unit-a2"));
    ASSERT_FALSE(b.read_events(1));
    EXPECT_EQ(a.read_events(2, quiet_period), std::errc::timed_out);
}

// Echoes are written from the read handler while the writer waits; when the client's buffers
// are full that write is partial, and the writer must go on from where it stopped.
TEST(MockTakServer, EchoesLargeEventsWholeAndInOrderToAClientThatReadsLate)
{
    mock_tak_server server({.relay = false, .echo = true, .record = false});
    test_client a(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 1; }, wait_limit));

    std::string sent;
    for (int i = 0; i < 16; ++i) {
        std::string event = make_event("big-" + std::to_string(i));
        event.insert(event.find("</detail>"),
                     "<remarks>" + std::string(1024 * 1024, static_cast<char>('a' + i)) +
                         "</remarks>");
        sent += event;
    }
    a.send(sent);  // 16 MiB the client does not read yet: the echoes back up
    ASSERT_TRUE(server.wait_for([&] { return server.events_received() == 16; }, wait_limit));
    ASSERT_FALSE(a.read_events(16, 30s));
    EXPECT_EQ(split_events(a.data()), split_events(sent));
    EXPECT_EQ(server.writes_dropped(), 0u);
}

TEST(MockTakServer, RecordsReceivedEventsWithTheirSession)
{
    mock_tak_server server;
    test_client a(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 1; }, wait_limit));
    test_client b(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 2; }, wait_limit));

    a.send(make_event("unit-a"));
    ASSERT_TRUE(server.wait_for([&] { return server.events_received() == 1; }, wait_limit));
    b.send(make_event("unit-b"));
    ASSERT_TRUE(server.wait_for([&] { return server.events_received() == 2; }, wait_limit));

    const auto received = server.received();
    ASSERT_EQ(received.size(), 2u);
    EXPECT_EQ(received[0].session, 1u);
    EXPECT_EQ(received[0].summary.uid, "unit-a");
    EXPECT_EQ(received[0].summary.callsign, "unit-a");
    EXPECT_EQ(received[0].bytes, split_events(make_event("unit-a")).at(0));
    EXPECT_EQ(received[1].session, 2u);
    EXPECT_EQ(received[1].summary.uid, "unit-b");

    server.clear_received();
    EXPECT_TRUE(server.received().empty());

    server.set_record(false);
    a.send(make_event("unit-a"));
    ASSERT_TRUE(server.wait_for([&] { return server.events_received() == 3; }, wait_limit));
    EXPECT_TRUE(server.received().empty());
}

TEST(MockTakServer, ReassemblesEventsSplitAcrossWrites)
{
    mock_tak_server server;
    test_client client(server.port());
    const std::string event = make_event("split") + make_event("split-2");

    for (std::size_t at = 0; at < event.size(); at += 7) {
        client.send(std::string_view(event).substr(at, 7));
    }
    ASSERT_TRUE(server.wait_for([&] { return server.events_received() == 2; }, wait_limit));
    EXPECT_EQ(server.received().at(1).summary.uid, "split-2");
}

TEST(MockTakServer, CountsUnparsableEventsAndDoesNotRelayThem)
{
    mock_tak_server server;
    test_client a(server.port());
    test_client b(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 2; }, wait_limit));

    a.send("<event uid=\"x\"><point/></event>");
    ASSERT_TRUE(server.wait_for([&] { return server.parse_failures() == 1; }, wait_limit));
    EXPECT_EQ(server.events_received(), 0u);
    EXPECT_EQ(b.read_events(1, quiet_period), std::errc::timed_out);
}

TEST(MockTakServer, RefuseClosesNewConnectionsGracefully)
{
    mock_tak_server server;
    server.set_refuse(true);

    test_client refused(server.port());
    EXPECT_EQ(refused.read_to_end(), asio::error::eof);
    EXPECT_EQ(server.connections_refused(), 1u);
    EXPECT_EQ(server.connected_clients(), 0u);

    server.set_refuse(false);
    test_client accepted(server.port());
    accepted.send(make_ping("p", now()));
    EXPECT_FALSE(accepted.read_events(1));
    EXPECT_EQ(server.sessions_accepted(), 2u);
}

TEST(MockTakServer, ResetMakesNewConnectionsSeeAConnectionReset)
{
    mock_tak_server server;
    test_client existing(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 1; }, wait_limit));
    server.set_reset(true);

    test_client reset(server.port());
    EXPECT_EQ(reset.read_to_end(), asio::error::connection_reset);
    EXPECT_EQ(server.connections_reset(), 1u);

    // Existing sessions are not affected.
    existing.send(make_ping("p", now()));
    EXPECT_FALSE(existing.read_events(1));
}

TEST(MockTakServer, StopAndResumeListeningKeepsThePortAndExistingSessions)
{
    mock_tak_server server;
    const auto port = server.port();
    test_client existing(port);
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 1; }, wait_limit));

    server.stop_listening();
    EXPECT_FALSE(server.listening());
    EXPECT_EQ(test_client::try_connect(port), asio::error::connection_refused);
    server.stop_listening();  // no-op

    existing.send(make_ping("p", now()));
    EXPECT_FALSE(existing.read_events(1));

    server.resume_listening();
    server.resume_listening();  // no-op
    EXPECT_TRUE(server.listening());
    EXPECT_EQ(server.port(), port);
    test_client again(port);
    again.send(make_ping("p", now()));
    EXPECT_FALSE(again.read_events(1));
    EXPECT_EQ(server.connected_clients(), 2u);
}

TEST(MockTakServer, CloseAllClientsDisconnectsEveryClient)
{
    mock_tak_server server({.threads = 2});
    std::vector<std::unique_ptr<test_client>> clients;
    for (int i = 0; i < 3; ++i)
        clients.push_back(std::make_unique<test_client>(server.port()));
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 3; }, wait_limit));

    server.close_all_clients();
    EXPECT_EQ(server.connected_clients(), 0u);
    for (auto& c : clients)
        EXPECT_TRUE(is_connection_closed(c->read_to_end()));

    // The listener is unaffected.
    test_client next(server.port());
    next.send(make_ping("p", now()));
    EXPECT_FALSE(next.read_events(1));
}

TEST(MockTakServer, NotReadingMakesAWritingClientBlockUntilReadingResumes)
{
    mock_tak_server server({.threads = 2, .record = false});
    test_client client(server.port());

    // An active session first, so pausing has to cancel a read already in flight.
    client.send(make_event("before"));
    ASSERT_TRUE(server.wait_for([&] { return server.events_received() == 1; }, wait_limit));
    server.set_reading(false);

    // Write until the kernel buffers on both sides are full.
    const std::string event = make_event("filler");
    std::string chunk;
    while (chunk.size() < 64 * 1024)
        chunk += event;
    client.socket().non_blocking(true);
    std::size_t written = 0;
    bool blocked = false;
    const auto deadline = std::chrono::steady_clock::now() + wait_limit;
    while (written < 512u * 1024u * 1024u && std::chrono::steady_clock::now() < deadline) {
        std::error_code ec;
        const std::size_t n =
            client.socket().write_some(asio::buffer(chunk.data() + written % chunk.size(),
                                                    chunk.size() - written % chunk.size()),
                                       ec);
        written += n;
        if (ec == asio::error::would_block) {
            blocked = true;
            break;
        }
        ASSERT_FALSE(ec) << ec.message();
    }
    ASSERT_TRUE(blocked) << "wrote " << written << " bytes without blocking";
    std::this_thread::sleep_for(quiet_period);
    EXPECT_EQ(server.events_received(), 1u);

    // Finish the event cut by the full buffer, resume, and every byte arrives.
    server.set_reading(true);
    client.socket().non_blocking(false);
    const std::size_t tail = (event.size() - written % event.size()) % event.size();
    client.send(std::string_view(event).substr(event.size() - tail));
    written += tail;
    ASSERT_EQ(written % event.size(), 0u);
    const std::uint64_t expected = 1 + written / event.size();
    EXPECT_TRUE(server.wait_for([&] { return server.events_received() == expected; }, wait_limit))
        << server.events_received() << " of " << expected;
    EXPECT_EQ(server.parse_failures(), 0u);
    EXPECT_EQ(server.framer_problems(), 0u);
}

TEST(MockTakServer, NewSessionsDoNotReadWhileReadingIsOff)
{
    mock_tak_server server;
    server.set_reading(false);
    test_client client(server.port());
    client.send(make_event("held"));
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 1; }, wait_limit));
    std::this_thread::sleep_for(quiet_period);
    EXPECT_EQ(server.events_received(), 0u);

    server.set_reading(true);
    EXPECT_TRUE(server.wait_for([&] { return server.events_received() == 1; }, wait_limit));
}

TEST(MockTakServer, HalfEventAndCloseSendsAnUnfinishedEventThenCloses)
{
    mock_tak_server server({.threads = 2});
    test_client a(server.port());
    test_client b(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 2; }, wait_limit));

    server.send_half_event_and_close();
    for (test_client* c : {&a, &b}) {
        EXPECT_EQ(c->read_to_end(), asio::error::eof);
        EXPECT_EQ(c->data().rfind("<event", 0), 0u) << c->data();
        EXPECT_EQ(c->data().find("</event>"), std::string::npos);
        EXPECT_GT(c->data().size(), 20u);
    }
    EXPECT_TRUE(server.wait_for([&] { return server.connected_clients() == 0; }, wait_limit));
}

TEST(MockTakServer, SendToAllAndSendToReachTheirClients)
{
    mock_tak_server server({.threads = 2});
    test_client a(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 1; }, wait_limit));
    test_client b(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 2; }, wait_limit));

    server.send_to_all(make_event("broadcast"));
    EXPECT_FALSE(a.read_events(1));
    EXPECT_FALSE(b.read_events(1));

    EXPECT_TRUE(server.send_to(2, make_event("direct")));
    EXPECT_FALSE(server.send_to(99, make_event("nobody")));
    EXPECT_FALSE(b.read_events(2));
    EXPECT_EQ(a.read_events(2, quiet_period), std::errc::timed_out);
}

TEST(MockTakServer, DropsWritesBeyondTheBoundForAClientThatDoesNotRead)
{
    mock_tak_server server({.max_pending_write_bytes = 256 * 1024});
    test_client idle(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 1; }, wait_limit));

    // 64 MiB is far more than the loopback socket buffers can absorb.
    const std::string chunk(64 * 1024, 'x');
    for (int i = 0; i < 1024 && server.writes_dropped() == 0; ++i)
        server.send_to_all(chunk);
    EXPECT_GT(server.writes_dropped(), 0u);
}

TEST(MockTakServer, RelaysBetweenFiftyConcurrentClients)
{
    constexpr std::size_t clients_count = 50;
    mock_tak_server server({.threads = 2});
    std::vector<std::unique_ptr<test_client>> clients;
    for (std::size_t i = 0; i < clients_count; ++i) {
        clients.push_back(std::make_unique<test_client>(server.port()));
    }
    ASSERT_TRUE(
        server.wait_for([&] { return server.connected_clients() == clients_count; }, wait_limit));

    std::vector<std::thread> senders;
    for (std::size_t i = 0; i < clients_count; ++i) {
        senders.emplace_back([&, i] { clients[i]->send(make_event("unit-" + std::to_string(i))); });
    }
    for (auto& t : senders)
        t.join();

    for (std::size_t i = 0; i < clients_count; ++i) {
        ASSERT_FALSE(clients[i]->read_events(clients_count - 1)) << "client " << i;
        std::set<std::string> uids;
        for (const auto& e : split_events(clients[i]->data())) {
            cot_summary s;
            ASSERT_FALSE(parse_cot(e, s));
            uids.insert(s.uid);
        }
        EXPECT_EQ(uids.size(), clients_count - 1);
        EXPECT_EQ(uids.count("unit-" + std::to_string(i)), 0u);
    }
    EXPECT_EQ(server.events_received(), clients_count);
    EXPECT_EQ(server.events_relayed(), clients_count * (clients_count - 1));
}

TEST(MockTakServer, PublicCallsFromManyThreadsWhileClientsChurn)
{
    mock_tak_server server({.threads = 3});
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), server.port());
    std::atomic<bool> running{true};
    std::vector<std::thread> threads;

    // Clients connecting, sending an event and a ping, and leaving.
    threads.emplace_back([&] {
        for (int i = 0; i < 300 && running; ++i) {
            asio::io_context ctx;
            tcp::socket socket(ctx);
            std::error_code ec;
            socket.connect(endpoint, ec);
            if (ec) continue;
            asio::write(socket, asio::buffer(make_event("churn-" + std::to_string(i))), ec);
            asio::write(socket, asio::buffer(make_ping("churn-ping", now())), ec);
        }
    });
    threads.emplace_back([&] {
        while (running) {
            server.set_reading(false);
            server.set_reading(true);
            server.set_echo(true);
            server.set_echo(false);
        }
    });
    threads.emplace_back([&] {
        while (running) {
            server.send_to_all(make_event("broadcast"));
            for (auto id : server.sessions())
                server.send_to(id, "<event");
            server.close_all_clients();
        }
    });
    // A client connecting while the port is closed can be handed that very port as its own
    // ephemeral port (a Linux TCP self-connect), so resuming may fail until it has gone.
    const auto resume = [&] {
        for (int attempt = 0; attempt < 5000; ++attempt) {
            try {
                server.resume_listening();
                return;
            } catch (const std::system_error&) {
                std::this_thread::sleep_for(1ms);
            }
        }
    };
    threads.emplace_back([&] {
        while (running) {
            server.stop_listening();
            resume();
            (void)server.received();
            server.clear_received();
            (void)server.connected_clients();
        }
    });
    std::this_thread::sleep_for(500ms);
    running = false;
    for (auto& t : threads)
        t.join();

    // Still serving normally afterwards.
    ASSERT_TRUE(server.listening());
    test_client client(server.port());
    client.send(make_ping("after", now()));
    EXPECT_FALSE(client.read_until(
        [](const std::string& d) { return d.find("t-x-c-t-r") != std::string::npos; }, wait_limit));
}

TEST(MockTakServer, StopIsIdempotentAndLaterCallsAreNoOps)
{
    mock_tak_server server({.threads = 2});
    test_client a(server.port());
    test_client b(server.port());
    ASSERT_TRUE(server.wait_for([&] { return server.connected_clients() == 2; }, wait_limit));

    // Traffic in flight while stopping.
    std::atomic<bool> sending{true};
    std::thread sender([&] {
        const std::string event = make_event("busy");
        std::error_code ec;
        while (sending && !ec)
            asio::write(a.socket(), asio::buffer(event), ec);
    });
    ASSERT_TRUE(server.wait_for([&] { return server.events_received() > 10; }, wait_limit));

    server.stop();
    server.stop();
    EXPECT_FALSE(server.listening());
    EXPECT_EQ(server.connected_clients(), 0u);
    sending = false;
    sender.join();

    server.send_to_all("x");
    server.close_all_clients();
    server.set_reading(false);
    server.stop_listening();
    server.resume_listening();
    EXPECT_FALSE(server.listening());
    EXPECT_TRUE(is_connection_closed(b.read_to_end()));
}

TEST(MockTakServer, ThrowsSystemErrorWhenThePortIsTaken)
{
    mock_tak_server first;
    mock_tak_server_params params;
    params.port = first.port();
    EXPECT_THROW(mock_tak_server{params}, std::system_error);
}

TEST(MockTakServer, RejectsBadParamsNamingTheField)
{
    try {
        mock_tak_server server({.threads = 0});
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("threads"), std::string::npos);
    }
    EXPECT_THROW(mock_tak_server({.address = "not an address"}), std::invalid_argument);
    EXPECT_THROW(mock_tak_server({.max_pending_write_bytes = 0}), std::invalid_argument);
}

}  // namespace
}  // namespace omnitak::testing
