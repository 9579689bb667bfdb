// Where the runtime's work runs, and what time it is there.
//
// The Node never creates a thread or reads a clock on its own: it posts tasks to an Executor
// and asks the Executor for the time. In production that is a ThreadExecutor (one worker
// thread, the steady clock). The deterministic simulator supplies its own executor on virtual
// time, so the same Node code runs under a seed and replays byte for byte.
//
// Contract for every implementation:
//  - Serial: tasks posted to one executor never run concurrently, and a task posted with
//    post() runs after every task posted before it with post() (FIFO).
//  - post_at() runs the task no earlier than `when` (by this executor's clock); tasks due at
//    the same time run in posting order.
//  - post() and post_at() are thread-safe and never block on the tasks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace balsa {

class Executor {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Task = std::function<void()>;

  virtual ~Executor() = default;
  virtual TimePoint now() const = 0;
  virtual void post(Task task) = 0;
  virtual void post_at(TimePoint when, Task task) = 0;
};

// One worker thread on the steady clock. stop() runs no further tasks (queued ones are
// discarded, destroyed on the caller's thread) and joins the worker; it is idempotent and
// must not be called from a task.
class ThreadExecutor final : public Executor {
 public:
  ThreadExecutor() = default;
  ~ThreadExecutor() override { stop(); }
  ThreadExecutor(const ThreadExecutor&) = delete;
  ThreadExecutor& operator=(const ThreadExecutor&) = delete;

  void start() {
    std::lock_guard lk(mu_);
    if (started_ || stopping_) return;
    started_ = true;
    worker_ = std::thread([this] { run(); });
  }

  void stop() {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    std::deque<Task> ready;
    std::priority_queue<Timed, std::vector<Timed>, Later> timed;
    {
      std::lock_guard lk(mu_);
      ready.swap(ready_);
      timed.swap(timed_);
    }
  }

  bool stopping() const {
    std::lock_guard lk(mu_);
    return stopping_;
  }

  TimePoint now() const override { return Clock::now(); }

  void post(Task task) override {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      ready_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  void post_at(TimePoint when, Task task) override {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      timed_.push(Timed{when, next_seq_++, std::move(task)});
    }
    cv_.notify_one();
  }

 private:
  struct Timed {
    TimePoint when;
    uint64_t seq;
    Task task;
  };
  struct Later {
    bool operator()(const Timed& a, const Timed& b) const {
      return a.when != b.when ? a.when > b.when : a.seq > b.seq;
    }
  };

  void run() {
    std::unique_lock lk(mu_);
    while (!stopping_) {
      const TimePoint now = Clock::now();
      // Due timers join the FIFO in their order, behind what is already queued.
      while (!timed_.empty() && timed_.top().when <= now) {
        ready_.push_back(std::move(const_cast<Timed&>(timed_.top()).task));
        timed_.pop();
      }
      if (ready_.empty()) {
        if (timed_.empty())
          cv_.wait(lk);
        else
          cv_.wait_until(lk, timed_.top().when);
        continue;
      }
      Task task = std::move(ready_.front());
      ready_.pop_front();
      lk.unlock();
      task();
      task = nullptr;  // destroy captures outside the lock
      lk.lock();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> ready_;
  std::priority_queue<Timed, std::vector<Timed>, Later> timed_;
  uint64_t next_seq_ = 0;
  bool started_ = false;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace balsa
