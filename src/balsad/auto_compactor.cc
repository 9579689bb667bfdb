#include "balsad/auto_compactor.h"

#include <spdlog/spdlog.h>

#include "kv/command.h"

namespace balsa::balsad {

AutoCompactor::AutoCompactor(const Config& cfg, Node& node, kv::KvStateMachine& sm) : node_(node), sm_(sm) {
  periodic_ = cfg.auto_compaction_mode == "periodic";
  if (periodic_) {
    retention_ = std::chrono::milliseconds(auto_compaction_period_ms(cfg));
    enabled_ = retention_.count() > 0;
    interval_ = std::clamp(retention_ / 10, std::chrono::milliseconds(1000), std::chrono::milliseconds(3600 * 1000));
  } else {
    retention_revs_ = std::stoll(cfg.auto_compaction_retention);
    enabled_ = retention_revs_ > 0;
    interval_ = std::chrono::minutes(5);
  }
  if (!enabled_) return;
  spdlog::info("auto compaction: mode {} retention {} (checked every {} ms on the leader)", cfg.auto_compaction_mode,
               cfg.auto_compaction_retention, interval_.count());
  thread_ = std::thread([this] { run(); });
}

AutoCompactor::~AutoCompactor() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AutoCompactor::compact_to(int64_t revision) {
  const auto revs = sm_.revisions();
  if (revision <= revs.compact || revision > revs.current) return;
  ::etcdserverpb::CompactionRequest req;
  req.set_revision(revision);
  std::string data;
  if (!kv::encode_command(kv::make_command(0, req), &data).ok()) return;
  node_.propose(std::move(data), [revision](CommandResult r) {
    if (!r.ok()) {
      spdlog::warn("auto compaction to revision {} failed: {}", revision, to_string(r.error));
      return;
    }
    kvpb::KvResult res;
    if (kv::decode_result(r.value, &res) && kv::result_status(res).ok())
      spdlog::info("auto compaction: compacted to revision {}", revision);
    else
      spdlog::debug("auto compaction to revision {} not applied (already compacted?)", revision);
  });
}

void AutoCompactor::run() {
  // Periodic: samples (time, revision), taken every interval while leader.
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> samples;
  std::unique_lock lk(mu_);
  while (!cv_.wait_for(lk, interval_, [&] { return stop_; })) {
    lk.unlock();
    const bool leader = node_.status().role == Role::kLeader;
    const auto now = std::chrono::steady_clock::now();
    if (!leader) {
      samples.clear();  // a new leader starts its window afresh, as etcd's compactor pauses
    } else if (periodic_) {
      samples.emplace_back(now, sm_.revisions().current);
      int64_t target = 0;
      while (!samples.empty() && now - samples.front().first >= retention_) {
        target = samples.front().second;
        samples.pop_front();
      }
      if (target > 0) compact_to(target);
    } else {
      compact_to(sm_.revisions().current - retention_revs_);
    }
    lk.lock();
  }
}

}  // namespace balsa::balsad
