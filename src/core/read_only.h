// Linearizable reads without writing to the log (thesis §6.4).
//
// ReadIndex: the leader records its commit index, confirms with a heartbeat round that a quorum
// still follows it, and only then hands out the read point. Reads that arrive before the leader
// committed an entry of its own term wait (its commit index may lag the previous leader's).
//
// Lease (thesis §6.4.1): every heartbeat round has a number and the tick it started. Once a
// quorum acknowledges round r, no other leader can be elected before start(r) + election
// timeout on the followers' clocks (they refuse votes while they hear from a leader), so the
// leader may serve reads from its own state until start(r) + election_ticks - drift_ticks.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/tracker.h"
#include "core/types.h"

namespace balsa {

class ReadIndexQueue {
 public:
  struct Read {
    LogIndex index;
    std::string context;
    NodeId from;
  };

  void add(LogIndex index, std::string context, NodeId from, NodeId self);
  // A heartbeat ack carrying `context` from `from`: returns the reads it releases, in order.
  std::vector<Read> ack(const std::string& context, NodeId from, const ProgressTracker& tracker);
  // Releases every pending read (a single-voter leader needs no round).
  std::vector<Read> release_all();
  void defer(NodeId from, std::string context) { deferred_.emplace_back(from, std::move(context)); }
  std::vector<std::pair<NodeId, std::string>> take_deferred() { return std::exchange(deferred_, {}); }
  bool has_deferred() const { return !deferred_.empty(); }
  bool empty() const { return pending_.empty(); }
  const std::string& last_context() const { return pending_.back().read.context; }
  // Drops everything (leadership lost); returns how many reads were dropped.
  size_t clear();

 private:
  struct Pending {
    Read read;
    std::set<NodeId> acks;
  };
  std::deque<Pending> pending_;
  std::vector<std::pair<NodeId, std::string>> deferred_;
};

class Lease {
 public:
  // A heartbeat round starts at tick `now`; returns its number (carried in Message::index).
  uint64_t start_round(uint64_t now);
  // `from` acknowledged round `round`. Extends the lease if a quorum now acknowledged a round
  // newer than the one the lease is measured from.
  void ack(NodeId from, uint64_t round, NodeId self, const ProgressTracker& tracker);
  // Is the lease held at tick `now` for a lease of `ticks`?
  bool valid(uint64_t now, int ticks) const;
  // Forgets every acknowledgement (new term, configuration change): the lease must be earned
  // again under the current configuration.
  void reset();
  // No lease for the rest of this term (after a leadership transfer began: a forced election
  // ignores the followers' stickiness, so the lease's premise is gone).
  void revoke() { reset(); revoked_ = true; }
  void new_term() { reset(); revoked_ = false; }
  std::optional<uint64_t> held_since() const { return since_; }

 private:
  struct Round {
    uint64_t number;
    uint64_t start;
    std::set<NodeId> acks;
  };
  static constexpr size_t kMaxRounds = 64;
  std::deque<Round> rounds_;
  uint64_t next_round_ = 1;
  std::optional<uint64_t> since_;  // start tick of the newest round a quorum acknowledged
  uint64_t since_round_ = 0;
  bool revoked_ = false;
};

}  // namespace balsa
