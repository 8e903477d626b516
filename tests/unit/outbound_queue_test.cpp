#include "omnitak/pool/outbound_queue.hpp"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using omnitak::message_ptr;
using omnitak::outbound_queue;

namespace {

message_ptr msg(int n)
{
    return std::make_shared<const omnitak::cot_message>("<event n='" + std::to_string(n) + "'/>",
                                                        omnitak::cot_summary{});
}

}  // namespace

TEST(OutboundQueue, StopsAtCapacityAndCountsRejections)
{
    asio::io_context io;
    outbound_queue q(io.get_executor(), 3);
    EXPECT_TRUE(q.try_push(msg(1)));
    EXPECT_TRUE(q.try_push(msg(2)));
    EXPECT_TRUE(q.try_push(msg(3)));
    EXPECT_FALSE(q.try_push(msg(4)));
    EXPECT_FALSE(q.try_push(msg(5)));
    EXPECT_EQ(q.size(), 3u);
    EXPECT_EQ(q.rejected(), 2u);
}

TEST(OutboundQueue, PopsInPushOrderForOneProducer)
{
    asio::io_context io;
    outbound_queue q(io.get_executor(), 100);
    for (int i = 0; i < 50; ++i)
        ASSERT_TRUE(q.try_push(msg(i)));
    message_ptr out[64];
    ASSERT_EQ(q.try_pop_bulk(out, 64), 50u);
    for (int i = 0; i < 50; ++i) {
        EXPECT_EQ(out[i]->bytes(), "<event n='" + std::to_string(i) + "'/>");
    }
    EXPECT_EQ(q.size(), 0u);
    EXPECT_EQ(q.try_pop_bulk(out, 64), 0u);
}

TEST(OutboundQueue, SpaceFreedByPoppingCanBeReused)
{
    asio::io_context io;
    outbound_queue q(io.get_executor(), 2);
    message_ptr out[2];
    for (int round = 0; round < 100; ++round) {
        ASSERT_TRUE(q.try_push(msg(round)));
        ASSERT_TRUE(q.try_push(msg(round)));
        ASSERT_FALSE(q.try_push(msg(round)));
        ASSERT_EQ(q.try_pop_bulk(out, 2), 2u);
    }
    EXPECT_EQ(q.rejected(), 100u);
}

TEST(OutboundQueue, CloseRefusesPushesButKeepsQueuedMessages)
{
    asio::io_context io;
    outbound_queue q(io.get_executor(), 4);
    ASSERT_TRUE(q.try_push(msg(1)));
    q.close();
    q.close();
    EXPECT_TRUE(q.closed());
    EXPECT_FALSE(q.try_push(msg(2)));
    EXPECT_EQ(q.rejected(), 1u);
    message_ptr out[4];
    EXPECT_EQ(q.try_pop_bulk(out, 4), 1u);
}

TEST(OutboundQueue, DrainReleasesEveryQueuedMessage)
{
    asio::io_context io;
    outbound_queue q(io.get_executor(), 100);
    auto m = msg(1);
    for (int i = 0; i < 40; ++i)
        ASSERT_TRUE(q.try_push(m));
    EXPECT_EQ(m.use_count(), 41);
    EXPECT_EQ(q.drain(), 40u);
    EXPECT_EQ(m.use_count(), 1);
    EXPECT_EQ(q.size(), 0u);
}

TEST(OutboundQueue, ZeroCapacityIsRejected)
{
    asio::io_context io;
    EXPECT_THROW(outbound_queue(io.get_executor(), 0), std::invalid_argument);
}

TEST(OutboundQueue, WaitNonemptyCompletesOnPushCloseOrWake)
{
    asio::io_context io;
    outbound_queue q(io.get_executor(), 4);
    int woken = 0;
    auto waiter = [&]() -> asio::awaitable<void> {
        co_await q.async_wait_nonempty();
        ++woken;
    };

    asio::co_spawn(io, waiter(), asio::detached);
    io.run_for(10ms);
    EXPECT_EQ(woken, 0);
    q.try_push(msg(1));
    io.restart();
    io.run_for(50ms);
    EXPECT_EQ(woken, 1);

    message_ptr out[4];
    q.try_pop_bulk(out, 4);
    io.restart();
    asio::co_spawn(io, waiter(), asio::detached);
    io.run_for(10ms);
    q.wake_consumer();
    io.restart();
    io.run_for(50ms);
    EXPECT_EQ(woken, 2);

    io.restart();
    asio::co_spawn(io, waiter(), asio::detached);
    io.run_for(10ms);
    q.close();
    io.restart();
    io.run_for(50ms);
    EXPECT_EQ(woken, 3);
}

TEST(OutboundQueue, AsyncPushWaitsForSpaceThenTimesOut)
{
    asio::io_context io;
    outbound_queue q(io.get_executor(), 1);
    ASSERT_TRUE(q.try_push(msg(1)));
    std::vector<bool> results;
    auto pusher = [&](std::chrono::milliseconds wait) -> asio::awaitable<void> {
        results.push_back(co_await q.async_push(msg(2), wait));
    };

    // Times out while full.
    asio::co_spawn(io, pusher(20ms), asio::detached);
    io.run_for(200ms);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_FALSE(results[0]);
    EXPECT_EQ(q.rejected(), 1u);

    // Succeeds once the consumer makes room.
    io.restart();
    asio::co_spawn(io, pusher(5s), asio::detached);
    io.run_for(10ms);
    message_ptr out[1];
    ASSERT_EQ(q.try_pop_bulk(out, 1), 1u);
    io.restart();
    io.run_for(200ms);
    ASSERT_EQ(results.size(), 2u);
    EXPECT_TRUE(results[1]);
    EXPECT_EQ(q.size(), 1u);
}

TEST(OutboundQueue, PushFrontPutsAFailedBatchAheadOfEverythingInItsOrder)
{
    asio::io_context io;
    outbound_queue q(io.get_executor(), 10);
    for (int i = 0; i < 6; ++i)
        ASSERT_TRUE(q.try_push(msg(i)));
    message_ptr batch[4];
    ASSERT_EQ(q.try_pop_bulk(batch, 4), 4u);  // 0..3 taken, their write "fails"
    ASSERT_TRUE(q.try_push(msg(6)));          // pushed meanwhile

    EXPECT_EQ(q.push_front(batch, 4), 4u);
    EXPECT_EQ(q.size(), 7u);
    EXPECT_EQ(q.front_size(), 4u);
    EXPECT_EQ(q.rejected(), 0u);

    // Taken out again in two pops, a put-back message and a queued one in the same pop.
    message_ptr out[10];
    ASSERT_EQ(q.try_pop_bulk(out, 2), 2u);
    EXPECT_EQ(q.front_size(), 2u);
    EXPECT_EQ(q.push_front(out, 2), 2u);  // failed again: back at the head
    ASSERT_EQ(q.try_pop_bulk(out, 5), 5u);
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(out[i]->bytes(), msg(i)->bytes()) << i;
    ASSERT_EQ(q.try_pop_bulk(out, 10), 2u);
    EXPECT_EQ(out[0]->bytes(), msg(5)->bytes());
    EXPECT_EQ(out[1]->bytes(), msg(6)->bytes());
    EXPECT_EQ(q.size(), 0u);
    EXPECT_EQ(q.front_size(), 0u);
}

TEST(OutboundQueue, PushFrontKeepsOnlyWhatTheCapacityHasRoomFor)
{
    asio::io_context io;
    outbound_queue q(io.get_executor(), 4);
    for (int i = 0; i < 4; ++i)
        ASSERT_TRUE(q.try_push(msg(i)));
    message_ptr batch[4];
    ASSERT_EQ(q.try_pop_bulk(batch, 4), 4u);
    for (int i = 10; i < 13; ++i)
        ASSERT_TRUE(q.try_push(msg(i)));  // the slots the batch left are taken

    EXPECT_EQ(q.push_front(batch, 4), 1u);  // room for the oldest one only
    EXPECT_FALSE(batch[0]);
    EXPECT_EQ(batch[1]->bytes(), msg(1)->bytes());  // the rest stays with the caller
    EXPECT_EQ(q.size(), 4u);
    EXPECT_FALSE(q.try_push(msg(99)));  // full: put-back messages count
    EXPECT_EQ(q.push_front(batch + 1, 3), 0u);

    message_ptr out[4];
    ASSERT_EQ(q.try_pop_bulk(out, 4), 4u);
    EXPECT_EQ(out[0]->bytes(), msg(0)->bytes());
    EXPECT_EQ(out[1]->bytes(), msg(10)->bytes());
}

TEST(OutboundQueue, PutBackMessagesWakeTheConsumerAndAreDrainedOnClose)
{
    asio::io_context io;
    outbound_queue q(io.get_executor(), 8);
    ASSERT_TRUE(q.try_push(msg(1)));
    message_ptr batch[1];
    ASSERT_EQ(q.try_pop_bulk(batch, 1), 1u);
    ASSERT_EQ(q.push_front(batch, 1), 1u);

    bool woken = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            co_await q.async_wait_nonempty();
            woken = true;
        },
        asio::detached);
    io.run_for(50ms);
    EXPECT_TRUE(woken);  // a put-back message is there to pop

    q.close();
    message_ptr again[1];
    ASSERT_EQ(q.try_pop_bulk(again, 1), 1u);
    EXPECT_EQ(q.push_front(again, 1), 1u);  // a closed queue still takes its own back
    EXPECT_EQ(q.drain(), 1u);
    EXPECT_EQ(q.size(), 0u);
    EXPECT_EQ(q.front_size(), 0u);
}
