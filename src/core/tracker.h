// The leader's (and candidate's) view of the cluster: the active configuration, what each
// member's log is known to hold (Progress), and the votes of the current election. All quorum
// decisions go through here, so joint configurations are handled in one place.
#pragma once

#include <functional>
#include <unordered_map>
#include <vector>

#include "core/progress.h"
#include "core/quorum.h"
#include "core/types.h"

namespace balsa {

class ProgressTracker {
 public:
  ProgressTracker(size_t max_inflight, uint64_t max_inflight_bytes)
      : max_inflight_(max_inflight), max_inflight_bytes_(max_inflight_bytes) {}

  const ConfState& conf() const { return conf_; }
  // Switches to `conf` (the entry at `conf_index`). Members that stay keep their progress; new
  // ones start probing at `next`. Members it removes stay tracked as departing (never counted
  // in any quorum) until they acknowledge the entry that removed them, so that they learn of
  // their removal and stop campaigning.
  void set_conf(const ConfState& conf, LogIndex next, LogIndex conf_index);
  // Tracked only until it learns of its removal (see set_conf).
  bool is_departing(NodeId id) const { return !is_member(id) && progress_.contains(id); }
  // Drops a departing node that acknowledged `match` if that covers its removal.
  void maybe_forget_departing(NodeId id);
  // Forgets everything known about followers (a new term): all probe from `next`.
  void reset_progress(LogIndex next);

  bool is_voter(NodeId id) const;    // of either half
  bool is_learner(NodeId id) const;
  bool is_witness(NodeId id) const;
  bool is_member(NodeId id) const { return is_voter(id) || is_learner(id); }
  bool joint() const { return conf_.joint(); }
  // The only voter of a non-joint configuration.
  bool single_voter(NodeId id) const;

  Progress* progress(NodeId id);
  const Progress* progress(NodeId id) const;
  std::unordered_map<NodeId, Progress>& all() { return progress_; }
  const std::unordered_map<NodeId, Progress>& all() const { return progress_; }

  // The largest index held by a majority of each half (thesis §4.3 for joint configurations).
  LogIndex committed_index() const;
  // Does `member` hold for a quorum (both halves when joint)?
  bool has_quorum(const std::function<bool(NodeId)>& member) const;
  // Heard from a quorum since the last reset_recent_active (self always counts)?
  bool quorum_active(NodeId self) const;
  void reset_recent_active(NodeId self);

  void reset_votes() { votes_.clear(); }
  void record_vote(NodeId id, bool granted) { votes_.try_emplace(id, granted); }
  quorum::VoteResult tally() const;
  // Every voter of either half, once each, sorted.
  std::vector<NodeId> voter_ids() const;

 private:
  size_t max_inflight_;
  uint64_t max_inflight_bytes_;
  ConfState conf_;
  std::unordered_map<NodeId, Progress> progress_;
  std::unordered_map<NodeId, bool> votes_;
  std::unordered_map<NodeId, LogIndex> departing_;  // removed node -> index that removed it
};

}  // namespace balsa
