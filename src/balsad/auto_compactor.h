// etcd's --auto-compaction-mode / --auto-compaction-retention, run by the leader only: a
// compaction is an ordinary CompactionRequest proposed through the log, so every member compacts
// at the same revision.
//   periodic: every retention/10 (at least 1 s, at most 1 h) the current revision is sampled;
//             the store is compacted to the revision sampled `retention` ago (etcd 3.4's
//             periodic compactor keeps the same window).
//   revision: every 5 minutes (etcd's interval), compact to current - retention when that is
//             past the last compaction.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "balsad/config.h"
#include "kv/kv_state_machine.h"
#include "runtime/node.h"

namespace balsa::balsad {

class AutoCompactor {
 public:
  AutoCompactor(const Config& cfg, Node& node, kv::KvStateMachine& sm);
  ~AutoCompactor();  // stops the thread
  bool enabled() const { return enabled_; }

 private:
  void run();
  void compact_to(int64_t revision);

  Node& node_;
  kv::KvStateMachine& sm_;
  bool enabled_ = false;
  bool periodic_ = true;
  std::chrono::milliseconds retention_{0};
  int64_t retention_revs_ = 0;
  std::chrono::milliseconds interval_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace balsa::balsad
