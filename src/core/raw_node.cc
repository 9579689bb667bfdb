#include "core/raw_node.h"

#include <algorithm>

#include "core/assert.h"

namespace balsa {

RawNode::RawNode(const Config& config, const Storage* storage) : raft_(config, storage) {
  prev_soft_ = SoftState{raft_.leader(), raft_.role()};
  prev_hard_ = raft_.hard_state();
}

ProposeResult RawNode::propose(std::string command) {
  std::vector<std::string> v;
  v.push_back(std::move(command));
  return raft_.propose(std::move(v));
}

bool RawNode::has_ready() const {
  if (outstanding_) return false;
  const RaftLog& log = raft_.log();
  return raft_.has_outbox() || SoftState{raft_.leader(), raft_.role()} != prev_soft_ ||
         raft_.hard_state() != prev_hard_ || !log.unstable_entries().empty() ||
         log.unstable_snapshot().has_value() || log.has_next_committed();
}

Ready RawNode::ready() {
  BALSA_ASSERT(!outstanding_, "ready() called again before advance() of Ready {}", next_number_ - 1);
  Ready rd;
  rd.number = next_number_++;
  RaftLog& log = raft_.log();
  const SoftState soft{raft_.leader(), raft_.role()};
  if (soft != prev_soft_) rd.soft_state = soft;
  const HardState hard = raft_.hard_state();
  if (hard != prev_hard_) rd.hard_state = hard;
  rd.entries = log.unstable_entries();
  if (log.unstable_snapshot()) rd.snapshot = *log.unstable_snapshot();
  rd.committed_entries = log.next_committed();
  rd.messages = raft_.take_messages();
  rd.persisted_messages = raft_.take_messages_after_persist();
  rd.read_states = raft_.take_read_states();
  rd.must_sync = !rd.entries.empty() || rd.snapshot.has_value() ||
                 (rd.hard_state && (hard.term != prev_hard_.term || hard.vote != prev_hard_.vote));
  outstanding_ = true;
  return rd;
}

void RawNode::advance(const Ready& rd) {
  BALSA_ASSERT(outstanding_ && rd.number == next_number_ - 1, "advance() of Ready {} but {} is outstanding",
               rd.number, next_number_ - 1);
  outstanding_ = false;
  if (rd.soft_state) prev_soft_ = *rd.soft_state;
  if (rd.hard_state) prev_hard_ = *rd.hard_state;
  RaftLog& log = raft_.log();
  if (rd.snapshot) log.stable_snapshot_to(rd.snapshot->metadata.index);
  if (!rd.entries.empty()) {
    const Entry& last = rd.entries.back();
    log.stable_to(last.index, last.term);
    raft_.on_persisted(last.index, last.term);
  }
  raft_.on_applied(rd.committed_entries);
}

Status RawNode::status() const {
  Status s;
  s.id = raft_.id();
  s.hard_state = raft_.hard_state();
  s.soft_state = SoftState{raft_.leader(), raft_.role()};
  s.applied = raft_.log().applied();
  s.last_index = raft_.log().last_index();
  s.transferee = raft_.transferee();
  if (raft_.role() == Role::kLeader) {
    for (const auto& [id, pr] : raft_.progress())
      s.progress.push_back({id, pr.match, pr.next, pr.state, pr.recent_active, pr.is_learner});
    std::sort(s.progress.begin(), s.progress.end(),
              [](const Status::Peer& a, const Status::Peer& b) { return a.id < b.id; });
  }
  return s;
}

}  // namespace balsa
