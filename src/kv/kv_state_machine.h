// balsa::kv::KvStateMachine: the MVCC store as a Raft state machine (balsa::StateMachine).
//
// Writes arrive as committed log entries holding an encoded KvCommand (command.h); each entry's
// result is an encoded KvResult, which `propose` hands back to the proposer. Empty entries (the
// leader's no-op) and configuration entries only advance the applied index; their result is "".
// An entry that does not decode yields a KvResult with errors::malformed_command() on every
// member alike (it is a proposer bug, not divergence).
//
// Threading: apply/save/restore run on the runtime's apply thread; the read methods may be
// called from any thread (gRPC handlers, after ReadIndex has caught the applied index up).
// A std::shared_mutex guards the store: readers share it, each applied command takes it
// exclusively for just that command (decoding and result encoding happen outside the lock).
// save_snapshot holds it shared for the whole image, so applies wait while it streams.
#pragma once

#include <atomic>
#include <map>
#include <cstdint>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "core/types.h"
#include "kv/command.h"
#include "kv/mvcc_store.h"
#include "runtime/state_machine.h"

namespace balsa::kv {

class KvStateMachine final : public StateMachine {
 public:
  KvStateMachine() : KvStateMachine(MvccStore::Options{}) {}
  explicit KvStateMachine(MvccStore::Options options);

  // ---- balsa::StateMachine ---------------------------------------------------------------------
  void apply(std::span<const Entry> entries, std::vector<std::string>* results) override;
  LogIndex applied_index() const override;
  // Image: "BALSASM2", u64 applied index (little-endian), u32 member count, per member
  // u64 id, u32-length-prefixed name, u32 URL count, u32-length-prefixed URLs; then
  // MvccStore::save's image. "BALSASM1" images (no member section) still restore.
  void save_snapshot(ByteSink& out) override;
  // A point-in-time image written by the runtime's background thread while apply() goes on
  // (MvccStore::write_image: slices under the shared lock, no copy of the store). A compaction
  // meanwhile abandons it (SnapshotAbandoned); the runtime then takes the next one here.
  std::function<void(ByteSink&)> snapshot_image() override;
  // Throws std::runtime_error on a malformed image or one taken at another index; the
  // state is then unchanged.
  void restore_snapshot(ByteSource& in, LogIndex index) override;

  // ---- Thread-safe reads -----------------------------------------------------------------------
  Result range(const pb::RangeRequest& req, pb::RangeResponse* resp) const;
  Result hash_kv(int64_t revision, pb::HashKVResponse* resp) const;
  // Watch catch-up (MvccStore::events). Live events: MvccStore::Options::on_events, which
  // runs under the exclusive lock, so a watcher that reads `revisions().current` and
  // registers under the same observer's own lock misses nothing.
  Result events(std::string_view key, std::string_view range_end, int64_t start_revision,
                int64_t end_revision, size_t limit, std::vector<mvccpb::Event>* out) const;

  struct Revisions {
    int64_t current = 0;  // header.revision for reads and Status
    int64_t compact = 0;  // -1 until the first compaction
    LogIndex applied;     // StatusResponse.raftAppliedIndex
  };
  Revisions revisions() const;

  // Attributes members published (MemberAttributes commands), by member id.
  std::vector<kvpb::MemberAttributes> members() const;

  // Runs f(const MvccStore&) under the shared lock (tests, tools, future read RPCs).
  template <typename F>
  auto read(F&& f) const {
    std::shared_lock lock(mu_);
    return f(static_cast<const MvccStore&>(store_));
  }

 private:
  std::string image_header() const;  // magic, applied index, members; caller holds mu_

  mutable std::shared_mutex mu_;
  MvccStore store_;                   // guarded by mu_
  std::map<uint64_t, kvpb::MemberAttributes> members_;  // guarded by mu_
  MvccStore::Options options_;
  std::atomic<uint64_t> applied_{0};  // written by the apply thread only
};

}  // namespace balsa::kv
