// Admission controller logic, driven by a single-threaded io_context with poll(): no sleeps.
// The queue timeout is set far beyond the test's run time; the timeout itself is covered by
// tests/stress/admission_stress_test.cpp with a short real timer.
#include "omnitak/pool/admission.hpp"

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "omnitak/pool/error.hpp"

namespace {

using namespace std::chrono_literals;
using omnitak::admission_controller;
using omnitak::admission_params;
using omnitak::admission_permit;
using omnitak::errc;

// What one waiting request ended with.
struct outcome {
    bool done = false;
    std::error_code ec;
    bool granted = false;
};

class Admission : public ::testing::Test {
protected:
    static admission_params params(std::size_t permits, std::size_t queue = 1000)
    {
        return admission_params{.max_permits = permits, .max_queue = queue, .queue_timeout = 1h};
    }

    // Starts a request. When granted, the permit is kept in held_ (hold = true) or released at
    // once; either way the order of grants is recorded.
    void request(admission_controller& ctrl, std::uint8_t priority, outcome& out, int id = 0,
                 bool hold = true, asio::cancellation_slot slot = {})
    {
        asio::co_spawn(
            io_,
            [this, &ctrl, priority, &out, id, hold]() -> asio::awaitable<void> {
                auto permit = co_await ctrl.async_acquire(priority);
                out.done = true;
                out.ec = permit.error();
                out.granted = permit.owns_permit();
                if (permit) {
                    grant_order_.push_back(id);
                    if (hold) held_.push_back(std::move(permit));
                }
            },
            asio::bind_cancellation_slot(slot, asio::detached));
        run();
    }

    // poll() stops the io_context when it runs out of work; restart it every time.
    void run()
    {
        io_.restart();
        io_.poll();
    }

    admission_controller& make(admission_params p) { return ctrl_.emplace(p); }

    // Declared first so it is destroyed last: coroutines still suspended in it when the
    // io_context dies take themselves out of its queue.
    std::optional<admission_controller> ctrl_;
    asio::io_context io_;
    std::vector<admission_permit> held_;
    std::vector<int> grant_order_;
};

TEST_F(Admission, GrantsFreePermitsWithoutWaiting)
{
    auto& ctrl = make(params(2));
    outcome a, b;
    request(ctrl, 1, a);
    request(ctrl, 1, b);
    EXPECT_TRUE(a.granted);
    EXPECT_TRUE(b.granted);
    EXPECT_EQ(ctrl.in_use(), 2u);
    EXPECT_EQ(ctrl.waiting(), 0u);
    EXPECT_FALSE(ctrl.try_acquire());
}

TEST_F(Admission, PermitDestructionReturnsThePermit)
{
    auto& ctrl = make(params(1));
    {
        outcome a;
        request(ctrl, 1, a);
        ASSERT_TRUE(a.granted);
        EXPECT_EQ(ctrl.in_use(), 1u);
        held_.clear();
    }
    EXPECT_EQ(ctrl.in_use(), 0u);

    ASSERT_TRUE(ctrl.try_acquire());
    admission_permit adopted(ctrl, std::adopt_lock);
    EXPECT_TRUE(adopted.owns_permit());
    admission_permit moved = std::move(adopted);
    EXPECT_FALSE(adopted.owns_permit());
    EXPECT_EQ(ctrl.in_use(), 1u);
    moved.reset();
    EXPECT_EQ(ctrl.in_use(), 0u);

    ASSERT_TRUE(ctrl.try_acquire());
    admission_permit detached(ctrl, std::adopt_lock);
    EXPECT_EQ(detached.detach(), &ctrl);
    EXPECT_EQ(ctrl.in_use(), 1u);
    ctrl.release();
    EXPECT_EQ(ctrl.in_use(), 0u);
}

TEST_F(Admission, WaitersAreServedByPriorityThenArrival)
{
    auto& ctrl = make(params(1));
    ASSERT_TRUE(ctrl.try_acquire());

    // id: arrival order; priorities 10, 200, 10, 200, 50.
    const std::uint8_t priorities[] = {10, 200, 10, 200, 50};
    std::vector<outcome> outcomes(5);
    for (int id = 0; id < 5; ++id) {
        request(ctrl, priorities[id], outcomes[id], id, /*hold=*/false);
    }
    EXPECT_EQ(ctrl.waiting(), 5u);
    EXPECT_TRUE(grant_order_.empty());

    // Each granted request releases at once, which grants the next.
    ctrl.release();
    run();
    EXPECT_EQ(grant_order_, (std::vector<int>{1, 3, 4, 0, 2}));
    EXPECT_EQ(ctrl.in_use(), 0u);
    EXPECT_EQ(ctrl.waiting(), 0u);
}

TEST_F(Admission, ReleaseHandsThePermitToTheBestWaiterNotToTryAcquire)
{
    auto& ctrl = make(params(1));
    ASSERT_TRUE(ctrl.try_acquire());
    outcome waiter;
    request(ctrl, 7, waiter);
    ASSERT_FALSE(waiter.done);

    ctrl.release();
    EXPECT_FALSE(ctrl.try_acquire());  // already promised to the waiter
    run();
    EXPECT_TRUE(waiter.granted);
    EXPECT_EQ(ctrl.in_use(), 1u);
}

TEST_F(Admission, FullQueueEvictsTheLowestPriorityMostRecentWaiter)
{
    auto& ctrl = make(params(1, 3));
    ASSERT_TRUE(ctrl.try_acquire());
    outcome low_old, low_new, high, newcomer;
    request(ctrl, 5, low_old, 0);
    request(ctrl, 5, low_new, 1);
    request(ctrl, 9, high, 2);
    ASSERT_EQ(ctrl.waiting(), 3u);

    request(ctrl, 6, newcomer, 3);
    EXPECT_TRUE(low_new.done);
    EXPECT_EQ(low_new.ec, errc::admission_evicted);
    EXPECT_FALSE(low_old.done);
    EXPECT_FALSE(newcomer.done);
    EXPECT_EQ(ctrl.waiting(), 3u);
    EXPECT_EQ(ctrl.evicted(), 1u);

    // The queue now holds 9, 6, 5(old): serve them all.
    held_.clear();
    ctrl.release();
    run();
    ASSERT_EQ(grant_order_, (std::vector<int>{2}));
    held_.clear();
    run();
    held_.clear();
    run();
    EXPECT_EQ(grant_order_, (std::vector<int>{2, 3, 0}));
}

TEST_F(Admission, NewcomerThatRanksLowestIsRefusedWhenTheQueueIsFull)
{
    auto& ctrl = make(params(1, 2));
    ASSERT_TRUE(ctrl.try_acquire());
    outcome a, b, same_priority, lower;
    request(ctrl, 5, a);
    request(ctrl, 5, b);

    // Equal priority: the newcomer arrived last, so it is the one that does not fit.
    request(ctrl, 5, same_priority);
    EXPECT_TRUE(same_priority.done);
    EXPECT_EQ(same_priority.ec, errc::admission_queue_full);

    request(ctrl, 1, lower);
    EXPECT_EQ(lower.ec, errc::admission_queue_full);
    EXPECT_FALSE(a.done);
    EXPECT_FALSE(b.done);
    EXPECT_EQ(ctrl.refused_queue_full(), 2u);
    EXPECT_EQ(ctrl.evicted(), 0u);
}

TEST_F(Admission, ZeroMaxQueueRefusesAtOnceWhenNoPermitIsFree)
{
    auto& ctrl = make(params(1, 0));
    outcome first, second;
    request(ctrl, 1, first);
    request(ctrl, 255, second);
    EXPECT_TRUE(first.granted);
    EXPECT_EQ(second.ec, errc::admission_queue_full);
}

TEST_F(Admission, CancelledWaiterLeavesTheQueueAtOnce)
{
    auto& ctrl = make(params(1));
    ASSERT_TRUE(ctrl.try_acquire());
    asio::cancellation_signal signal;
    outcome cancelled, later;
    request(ctrl, 200, cancelled, 0, true, signal.slot());
    request(ctrl, 1, later, 1);
    ASSERT_EQ(ctrl.waiting(), 2u);

    signal.emit(asio::cancellation_type::terminal);
    run();
    EXPECT_TRUE(cancelled.done);
    EXPECT_EQ(cancelled.ec, errc::cancelled);
    EXPECT_EQ(ctrl.waiting(), 1u);
    EXPECT_EQ(ctrl.cancelled(), 1u);

    // The permit goes to the remaining waiter, not to the cancelled one.
    ctrl.release();
    run();
    EXPECT_TRUE(later.granted);
    EXPECT_EQ(ctrl.in_use(), 1u);
}

TEST_F(Admission, WaiterRacedAgainstAnotherOperationLeavesTheQueueWhenItLoses)
{
    using namespace asio::experimental::awaitable_operators;
    auto& ctrl = make(params(1));
    ASSERT_TRUE(ctrl.try_acquire());

    asio::experimental::channel<void(std::error_code, int)> trigger(io_, 1);
    std::optional<std::size_t> winner;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
            auto result =
                co_await (ctrl.async_acquire(3) ||
                          trigger.async_receive(asio::experimental::as_tuple(asio::use_awaitable)));
            winner = result.index();
        },
        asio::detached);
    run();
    ASSERT_EQ(ctrl.waiting(), 1u);

    trigger.try_send(std::error_code{}, 0);
    run();
    ASSERT_EQ(winner, 1u);
    EXPECT_EQ(ctrl.waiting(), 0u);
    ctrl.release();
    EXPECT_EQ(ctrl.in_use(), 0u);
}

TEST_F(Admission, PermitGrantedAsTheWaiterIsCancelledIsNotLeaked)
{
    auto& ctrl = make(params(1));
    ASSERT_TRUE(ctrl.try_acquire());
    asio::cancellation_signal signal;
    outcome waiter;
    request(ctrl, 1, waiter, 0, true, signal.slot());

    // Grant and cancel before the waiter's coroutine gets to run again.
    ctrl.release();
    signal.emit(asio::cancellation_type::terminal);
    run();
    EXPECT_TRUE(waiter.done);
    EXPECT_EQ(waiter.ec, errc::cancelled);
    EXPECT_FALSE(waiter.granted);
    EXPECT_EQ(ctrl.in_use(), 0u);
    EXPECT_TRUE(ctrl.try_acquire());
}

TEST_F(Admission, PermitWonTogetherWithARacingOperationIsReturned)
{
    using namespace asio::experimental::awaitable_operators;
    auto& ctrl = make(params(1));
    ASSERT_TRUE(ctrl.try_acquire());

    asio::experimental::channel<void(std::error_code, int)> trigger(io_, 1);
    std::optional<std::size_t> winner;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
            auto result =
                co_await (ctrl.async_acquire(3) ||
                          trigger.async_receive(asio::experimental::as_tuple(asio::use_awaitable)));
            winner = result.index();
        },
        asio::detached);
    run();

    // Both complete in the same turn; whichever wins, no permit may stay in use.
    ctrl.release();
    trigger.try_send(std::error_code{}, 0);
    run();
    ASSERT_TRUE(winner.has_value());
    EXPECT_EQ(ctrl.in_use(), 0u);
    EXPECT_EQ(ctrl.waiting(), 0u);
}

TEST_F(Admission, AlreadyCancelledCoroutineDoesNotQueue)
{
    auto& ctrl = make(params(1));
    ASSERT_TRUE(ctrl.try_acquire());
    asio::experimental::channel<void(std::error_code, int)> never(io_, 1);
    asio::cancellation_signal signal;
    outcome out;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
            // The cancellation lands on this wait; the coroutine carries on cancelled.
            co_await asio::this_coro::throw_if_cancelled(false);
            co_await never.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
            auto permit = co_await ctrl.async_acquire(1);
            out.done = true;
            out.ec = permit.error();
        },
        asio::bind_cancellation_slot(signal.slot(), asio::detached));
    run();
    signal.emit(asio::cancellation_type::terminal);
    run();
    EXPECT_TRUE(out.done);
    EXPECT_EQ(out.ec, errc::cancelled);
    EXPECT_EQ(ctrl.waiting(), 0u);
}

TEST_F(Admission, CloseFailsWaitersAndLaterRequests)
{
    auto& ctrl = make(params(1));
    outcome holder, a, b, after;
    request(ctrl, 1, holder);
    request(ctrl, 1, a);
    request(ctrl, 2, b);
    ASSERT_EQ(ctrl.waiting(), 2u);

    ctrl.close();
    run();
    EXPECT_EQ(a.ec, errc::shut_down);
    EXPECT_EQ(b.ec, errc::shut_down);
    EXPECT_EQ(ctrl.waiting(), 0u);
    EXPECT_TRUE(ctrl.closed());

    request(ctrl, 255, after);
    EXPECT_EQ(after.ec, errc::shut_down);

    // Permits in use stay valid and can still be returned.
    EXPECT_EQ(ctrl.in_use(), 1u);
    held_.clear();
    EXPECT_EQ(ctrl.in_use(), 0u);
    EXPECT_FALSE(ctrl.try_acquire());
}

TEST_F(Admission, DestroyedWaitingCoroutineLeavesTheQueue)
{
    auto& ctrl = make(params(1));
    ASSERT_TRUE(ctrl.try_acquire());
    {
        asio::io_context other;
        outcome out;
        asio::co_spawn(
            other,
            [&]() -> asio::awaitable<void> {
                auto permit = co_await ctrl.async_acquire(1);
                out.done = true;
            },
            asio::detached);
        other.poll();
        ASSERT_EQ(ctrl.waiting(), 1u);
    }  // the io_context destroys the suspended coroutine
    EXPECT_EQ(ctrl.waiting(), 0u);
    ctrl.release();
    EXPECT_EQ(ctrl.in_use(), 0u);
}

TEST(AdmissionParams, RejectsBadParamsNamingTheField)
{
    try {
        admission_controller ctrl(admission_params{});
        FAIL() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("max_permits"), std::string::npos);
    }
    EXPECT_THROW(admission_controller(admission_params{.max_permits = 1, .queue_timeout = -1ms}),
                 std::invalid_argument);
}

}  // namespace
