#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <memory>
#include <stdexcept>
#include <string>

#include "omnitak/pool/link.hpp"
#include "omnitak/pool/pool.hpp"

using namespace std::chrono_literals;
using omnitak::link_params;
using omnitak::link_settings;

namespace {

link_params good()
{
    link_params p;
    p.id = 7;
    p.name = "alpha";
    p.host = "127.0.0.1";
    p.port = 8087;
    return p;
}

template <class T>
std::string rejection(const T& value)
{
    try {
        omnitak::validate(value);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST(LinkParams, DefaultsAreValidAndMatchTheDocumentedValues)
{
    EXPECT_EQ(rejection(good()), "");
    const link_settings s;
    EXPECT_EQ(s.connect_timeout, 15s);
    EXPECT_EQ(s.first_byte_timeout, 10s);
    EXPECT_EQ(s.backoff.initial, 1s);
    EXPECT_EQ(s.backoff.max, 60s);
    EXPECT_DOUBLE_EQ(s.backoff.multiplier, 2.0);
    EXPECT_DOUBLE_EQ(s.backoff.jitter, 0.2);
    EXPECT_EQ(s.backoff.reset_after, 60s);
    EXPECT_EQ(good().priority, 128);
}

TEST(LinkParams, EndpointFieldsAreRequired)
{
    auto p = good();
    p.id = omnitak::no_link;
    EXPECT_NE(rejection(p).find("id"), std::string::npos);
    p = good();
    p.host.clear();
    EXPECT_NE(rejection(p).find("host"), std::string::npos);
    p = good();
    p.port = 0;
    EXPECT_NE(rejection(p).find("port"), std::string::npos);
}

TEST(LinkParams, BadSettingsAreRejectedNamingTheField)
{
    auto with = [](auto change) {
        link_settings s;
        change(s);
        return rejection(s);
    };
    EXPECT_NE(with([](link_settings& s) { s.connect_timeout = 0ms; }).find("connect_timeout"),
              std::string::npos);
    EXPECT_NE(with([](link_settings& s) { s.first_byte_timeout = -1ms; }).find("first_byte"),
              std::string::npos);
    EXPECT_NE(with([](link_settings& s) { s.queue_capacity = 0; }).find("queue_capacity"),
              std::string::npos);
    EXPECT_NE(with([](link_settings& s) { s.write_batch = 0; }).find("write_batch"),
              std::string::npos);
    EXPECT_NE(with([](link_settings& s) { s.write_batch = 5000; }).find("write_batch"),
              std::string::npos);
    EXPECT_NE(with([](link_settings& s) { s.backoff.jitter = 2.0; }).find("jitter"),
              std::string::npos);
    EXPECT_NE(
        with([](link_settings& s) { s.breaker.failure_threshold = 0; }).find("failure_threshold"),
        std::string::npos);
    EXPECT_NE(with([](link_settings& s) { s.health.ping_interval = -1ms; }).find("ping_interval"),
              std::string::npos);
    EXPECT_EQ(with([](link_settings& s) { s.first_byte_timeout = 0ms; }), "");
}

TEST(LinkParams, OwnSettingsAreValidatedWithTheLink)
{
    auto p = good();
    p.settings = link_settings{};
    p.settings->queue_capacity = 0;
    EXPECT_NE(rejection(p).find("queue_capacity"), std::string::npos);
}

TEST(LinkParams, PoolRejectsBadParamsAtConstruction)
{
    omnitak::pool_params p;
    p.threads = 1;
    p.max_links = 0;
    EXPECT_THROW(omnitak::connection_pool pool(p), std::invalid_argument);
    p.max_links = 1;
    p.link_defaults.connect_timeout = 0ms;
    EXPECT_THROW(omnitak::connection_pool pool(p), std::invalid_argument);
}

TEST(LinkParams, AddLinkThrowsForBadParamsAndKeepsTheSlot)
{
    asio::io_context io;  // never run: nothing may start
    omnitak::pool_params p;
    p.executor = io.get_executor();
    p.max_links = 1;
    omnitak::connection_pool pool(p);
    auto bad = good();
    bad.port = 0;
    EXPECT_THROW(pool.add_link(bad), std::invalid_argument);
    EXPECT_EQ(pool.size(), 0u);
    pool.shutdown(100ms);
}

TEST(LinkParams, LinksShareTheDefaultsTheyAreGivenAndKeepTheirOwn)
{
    asio::io_context io;  // never run: nothing may start
    auto defaults = std::make_shared<const link_settings>();
    auto first = omnitak::link::make(io.get_executor(), good(), defaults, {});
    auto second_params = good();
    second_params.id = 8;
    auto second = omnitak::link::make(io.get_executor(), second_params, defaults, {});
    EXPECT_EQ(&first->settings(), defaults.get());
    EXPECT_EQ(&second->settings(), defaults.get());

    auto own_params = good();
    own_params.id = 9;
    own_params.settings = link_settings{};
    own_params.settings->queue_capacity = 3;
    auto own = omnitak::link::make(io.get_executor(), own_params, defaults, {});
    EXPECT_NE(&own->settings(), defaults.get());
    EXPECT_EQ(own->settings().queue_capacity, 3u);

    // params() gives the endpoint back; the settings in force are settings().
    const link_params back = own->params();
    EXPECT_EQ(back.id, 9u);
    EXPECT_EQ(back.name, "alpha");
    EXPECT_EQ(back.host, "127.0.0.1");
    EXPECT_EQ(back.port, 8087);
    EXPECT_EQ(back.priority, 128);
    EXPECT_FALSE(back.settings.has_value());

    EXPECT_THROW(omnitak::link::make(io.get_executor(), good(), nullptr, {}),
                 std::invalid_argument);
}

TEST(LinkState, NamesAreStable)
{
    EXPECT_EQ(omnitak::to_string(omnitak::link_state::connecting), "connecting");
    EXPECT_EQ(omnitak::to_string(omnitak::link_state::connected), "connected");
    EXPECT_EQ(omnitak::to_string(omnitak::link_state::backing_off), "backing_off");
    EXPECT_EQ(omnitak::to_string(omnitak::link_state::closed), "closed");
}
