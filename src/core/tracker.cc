#include "core/tracker.h"

#include <algorithm>
#include <utility>

namespace balsa {
namespace {
bool has(const std::vector<NodeId>& v, NodeId id) { return std::find(v.begin(), v.end(), id) != v.end(); }
}  // namespace

void ProgressTracker::set_conf(const ConfState& conf, LogIndex next, LogIndex conf_index) {
  const ConfState old = std::exchange(conf_, conf);
  std::unordered_map<NodeId, Progress> kept;
  auto add = [&](NodeId id, bool learner) {
    if (kept.contains(id)) return;
    auto it = progress_.find(id);
    Progress pr = it != progress_.end() ? it->second : Progress(next, max_inflight_, max_inflight_bytes_);
    pr.is_learner = learner;
    kept.emplace(id, std::move(pr));
  };
  for (NodeId id : conf.voters) add(id, false);
  for (NodeId id : conf.voters_outgoing) add(id, false);
  for (NodeId id : conf.learners) add(id, true);
  departing_.clear();
  for (const auto* set : {&old.voters, &old.voters_outgoing, &old.learners}) {
    for (NodeId id : *set) {
      auto it = progress_.find(id);
      if (kept.contains(id) || it == progress_.end()) continue;
      kept.emplace(id, it->second);
      departing_[id] = conf_index;
    }
  }
  progress_ = std::move(kept);
}

void ProgressTracker::maybe_forget_departing(NodeId id) {
  auto it = departing_.find(id);
  if (it == departing_.end()) return;
  const Progress* pr = progress(id);
  if (!pr || pr->match >= it->second) {
    progress_.erase(id);
    departing_.erase(it);
  }
}

void ProgressTracker::reset_progress(LogIndex next) {
  for (auto& [id, pr] : progress_) {
    const bool learner = pr.is_learner;
    pr = Progress(next, max_inflight_, max_inflight_bytes_);
    pr.is_learner = learner;
  }
}

bool ProgressTracker::is_voter(NodeId id) const { return has(conf_.voters, id) || has(conf_.voters_outgoing, id); }
bool ProgressTracker::is_learner(NodeId id) const { return has(conf_.learners, id); }
bool ProgressTracker::is_witness(NodeId id) const { return has(conf_.witnesses, id); }

bool ProgressTracker::single_voter(NodeId id) const {
  return !conf_.joint() && conf_.voters.size() == 1 && conf_.voters[0] == id;
}

Progress* ProgressTracker::progress(NodeId id) {
  auto it = progress_.find(id);
  return it == progress_.end() ? nullptr : &it->second;
}
const Progress* ProgressTracker::progress(NodeId id) const {
  auto it = progress_.find(id);
  return it == progress_.end() ? nullptr : &it->second;
}

LogIndex ProgressTracker::committed_index() const {
  return quorum::joint_index(conf_.voters, conf_.voters_outgoing, [&](NodeId id) {
    const Progress* pr = progress(id);
    return pr ? pr->match : LogIndex{0};
  });
}

bool ProgressTracker::has_quorum(const std::function<bool(NodeId)>& member) const {
  return quorum::has_quorum(conf_.voters, conf_.voters_outgoing, member);
}

bool ProgressTracker::quorum_active(NodeId self) const {
  return has_quorum([&](NodeId id) {
    if (id == self) return true;
    const Progress* pr = progress(id);
    return pr && pr->recent_active;
  });
}

void ProgressTracker::reset_recent_active(NodeId self) {
  for (auto& [id, pr] : progress_)
    if (id != self) pr.recent_active = false;
}

quorum::VoteResult ProgressTracker::tally() const {
  return quorum::joint_vote(conf_.voters, conf_.voters_outgoing, votes_);
}

std::vector<NodeId> ProgressTracker::voter_ids() const {
  std::vector<NodeId> v = conf_.voters;
  for (NodeId id : conf_.voters_outgoing)
    if (!has(v, id)) v.push_back(id);
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace balsa
