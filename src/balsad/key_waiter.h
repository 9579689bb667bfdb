// balsa::balsad::KeyWaiter: "tell me when this happens to that key", over the member's WatchHub,
// for the Lock and Election services (waiting for a predecessor's deletion, observing a leader).
// A wait is a watch on [key, range_end) from a revision on; the first event that the caller's
// predicate accepts completes it (once), and so does a watch the hub cancels (compaction: the
// caller re-reads and waits again). Callbacks run on the waiter's own thread, never on the
// apply thread that published the event, so they may read the store and propose.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "etcd/mvcc/mvccpb/kv.pb.h"
#include "kv/watch_hub.h"

namespace balsa::balsad {

class KeyWaiter {
 public:
  explicit KeyWaiter(kv::WatchHub& hub);
  ~KeyWaiter();

  // The event that ended a wait; nothing when the hub canceled the watch.
  using Done = std::function<void(std::optional<mvccpb::Event>)>;
  using Match = std::function<bool(const mvccpb::Event&)>;

  // A wait in progress; destroying or cancel()ing it drops the callback (it will not run).
  class Wait {
   public:
    virtual ~Wait() = default;
    virtual void cancel() = 0;
  };

  // Waits for the first event on [key, range_end) at a revision >= from_revision that `match`
  // accepts. `done` runs exactly once unless the wait is canceled first.
  std::shared_ptr<Wait> wait(const std::string& key, const std::string& range_end, int64_t from_revision,
                             Match match, Done done);

  // Runs `f` on the waiter's thread (used to continue a chain of steps off a gRPC thread).
  void post(std::function<void()> f);

 private:
  struct WaitImpl;
  void run();

  kv::WatchHub& hub_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::weak_ptr<WaitImpl>> waits_;  // closed on destruction (no ready after it)
  std::thread thread_;
};

}  // namespace balsa::balsad
