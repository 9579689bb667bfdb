#include "runtime/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <vector>

namespace balsa {
namespace {

using namespace std::chrono_literals;

TEST(ThreadExecutor, PostRunsInOrderOnOneThread) {
  ThreadExecutor ex;
  ex.start();
  std::vector<int> order;  // only the worker touches it: the executor is serial
  std::thread::id worker;
  std::promise<void> done;
  for (int i = 0; i < 1000; ++i)
    ex.post([&, i] {
      if (i == 0) worker = std::this_thread::get_id();
      EXPECT_EQ(worker, std::this_thread::get_id());
      order.push_back(i);
      if (i == 999) done.set_value();
    });
  done.get_future().wait();
  ex.stop();
  ASSERT_EQ(order.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(order[i], i);
}

TEST(ThreadExecutor, TimersRunNoEarlierThanDueAndInDueOrder) {
  ThreadExecutor ex;
  ex.start();
  std::mutex mu;
  std::vector<int> order;
  std::promise<void> done;
  const auto t0 = ex.now();
  std::vector<Executor::TimePoint> ran(3);
  // Posted out of order; same due time keeps posting order.
  ex.post_at(t0 + 30ms, [&] {
    std::lock_guard lk(mu);
    ran[2] = ex.now();
    order.push_back(3);
    done.set_value();
  });
  ex.post_at(t0 + 10ms, [&] {
    std::lock_guard lk(mu);
    ran[0] = ex.now();
    order.push_back(1);
  });
  ex.post_at(t0 + 10ms, [&] {
    std::lock_guard lk(mu);
    ran[1] = ex.now();
    order.push_back(2);
  });
  done.get_future().wait();
  ex.stop();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_GE(ran[0], t0 + 10ms);
  EXPECT_GE(ran[2], t0 + 30ms);
}

TEST(ThreadExecutor, StopDiscardsQueuedWorkAndRejectsNewWork) {
  ThreadExecutor ex;
  ex.start();
  std::atomic<int> ran{0};
  std::promise<void> blocked, release;
  ex.post([&] {
    blocked.set_value();
    release.get_future().wait();
  });
  blocked.get_future().wait();
  for (int i = 0; i < 10; ++i) ex.post([&] { ran++; });
  ex.post_at(ex.now() + 1h, [&] { ran++; });
  std::thread stopper([&] { ex.stop(); });
  while (!ex.stopping()) std::this_thread::yield();
  release.set_value();
  stopper.join();
  ex.post([&] { ran++; });
  EXPECT_EQ(ran.load(), 0);
}

}  // namespace
}  // namespace balsa
