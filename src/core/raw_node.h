// RawNode: the whole public API of the core. The owner drives it from one thread:
//
//   loop:
//     node.tick() every tick interval; node.step(msg) for each message received;
//     node.propose(...), node.read_index(...) for clients;
//     if (node.has_ready()) {
//       Ready rd = node.ready();
//       send rd.messages                         (may run in parallel with the disk write)
//       persist rd.snapshot, rd.entries, rd.hard_state; fsync if rd.must_sync
//       send rd.persisted_messages               (only now: they promise durability)
//       apply rd.committed_entries, serve rd.read_states once applied
//       node.advance(rd);
//     }
//
// step/tick/propose may be called between ready() and advance(); what they produce goes into
// the next Ready. At most one Ready is outstanding: has_ready() is false until advance().
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/raft.h"

namespace balsa {

struct SoftState {
  NodeId leader = kNoNode;
  Role role = Role::kFollower;
  bool operator==(const SoftState&) const = default;
};

struct Ready {
  uint64_t number = 0;                      // 1, 2, 3, ... in the order handed out
  std::optional<SoftState> soft_state;      // set when leader or role changed
  std::optional<HardState> hard_state;      // set when it changed: persist with the entries
  std::vector<Entry> entries;               // to append to the durable log (may overwrite a suffix)
  std::optional<Snapshot> snapshot;         // received from the leader: persist and restore
  std::vector<Entry> committed_entries;     // to apply, in order, after persisting this Ready
  std::vector<Message> messages;            // send now
  std::vector<Message> persisted_messages;  // send only after this Ready is durable
  std::vector<ReadState> read_states;       // linearizable read points
  bool must_sync = false;                   // entries, term or vote changed: fsync before acking

  bool empty() const {
    return !soft_state && !hard_state && entries.empty() && !snapshot &&
           committed_entries.empty() && messages.empty() && persisted_messages.empty() &&
           read_states.empty();
  }
};

struct Status {
  NodeId id;
  HardState hard_state;
  SoftState soft_state;
  LogIndex applied;
  LogIndex last_index;
  NodeId transferee;
  struct Peer {
    NodeId id;
    LogIndex match;
    LogIndex next;
    ProgressState state;
    bool recent_active;
    bool is_learner;
  };
  std::vector<Peer> progress;  // leader only, sorted by id
};

class RawNode {
 public:
  RawNode(const Config& config, const Storage* storage);

  void tick() { raft_.tick(); }
  void step(const Message& m) { raft_.step(m); }
  ProposeResult propose(std::vector<std::string> commands) { return raft_.propose(std::move(commands)); }
  ProposeResult propose(std::string command);
  bool read_index(std::string context) { return raft_.read_index(std::move(context)); }
  bool transfer_leadership(NodeId target) { return raft_.transfer_leadership(target); }
  ConfProposeResult propose_conf_change(const ConfChangeSet& changes) { return raft_.propose_conf_change(changes); }
  ReadStatus read_lease(std::string context) { return raft_.read_lease(std::move(context)); }
  void report_snapshot(NodeId to, bool ok) { raft_.report_snapshot(to, ok); }
  void report_unreachable(NodeId to) { raft_.report_unreachable(to); }

  bool has_ready() const;
  Ready ready();
  void advance(const Ready& rd);

  Status status() const;
  const Raft& raft() const { return raft_; }
  const CoreStats& stats() const { return raft_.stats(); }

 private:
  Raft raft_;
  SoftState prev_soft_;
  HardState prev_hard_;
  uint64_t next_number_ = 1;
  bool outstanding_ = false;
};

}  // namespace balsa
