// Membership (configurations taking effect on append, joint consensus, learners, witnesses,
// removing the leader) and the local API: proposals, reads, leadership transfer, and what the
// runtime reports back (persisted, applied, snapshot sent, peer unreachable).
#include <algorithm>

#include "core/assert.h"
#include "core/codec.h"
#include "core/raft.h"

namespace balsa {
namespace {
std::vector<NodeId> sorted(std::vector<NodeId> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Configuration

void Raft::init_conf(const Config& config, const Storage& storage) {
  ConfState base = storage.initial_state().conf;
  const LogIndex base_index = storage.first_index() - 1;
  StorageError err;
  const Term base_term = storage.term(base_index, &err).value_or(Term{0});
  if (base.voters.empty() && base.learners.empty()) {
    if (config.join) {
      BALSA_ASSERT(config.voters.empty() && config.learners.empty(),
                   "node {} joins an existing cluster: it takes no initial members", id_.value);
    } else {
      base.voters = sorted(config.voters);
      base.learners = sorted(config.learners);
      base.witnesses = sorted(config.witnesses);
      const ConfError e = confchange::validate(base);
      BALSA_ASSERT(e == ConfError::kOk, "node {}: initial configuration {}: {}", id_.value,
                   confchange::describe(base).c_str(), to_string(e));
    }
  }
  confs_.reset(base_index, base_term, base);
  // Configurations still in the log are in effect whether or not they committed (§4.1).
  for (LogIndex lo = storage.first_index(); lo <= storage.last_index();) {
    std::vector<Entry> batch = storage.entries(lo, storage.last_index() + 1, 16u << 20, &err);
    BALSA_ASSERT(!batch.empty(), "node {}: storage has no entry at {}", id_.value, lo.value);
    for (const Entry& e : batch) {
      if (e.type != EntryType::kConfChange) continue;
      auto ce = codec::decode<ConfEntry>(e.data);
      BALSA_ASSERT(ce.has_value(), "node {}: configuration entry {} in the durable log does not decode",
                   id_.value, e.index.value);
      confs_.append(e.index, e.term, ce->result);
    }
    lo = batch.back().index + 1;
  }
  const ConfState& active =
      cfg_.planted_bug == PlantedBug::kConfOnCommit ? confs_.at(log_.committed()) : confs_.latest();
  tracker_.set_conf(active, log_.last_index() + 1, confs_.latest_index());
}

void Raft::apply_conf(const ConfState& cs) {
  tracker_.set_conf(cs, log_.last_index() + 1, confs_.latest_index());
  stats_.conf_changes++;
  // The lease was earned from a quorum of the previous configuration.
  lease_.reset();
  if (role_ == Role::kLeader) {
    if (Progress* self = tracker_.progress(id_)) {
      if (self->match.value == 0) self->match = log_.stable_last_index();
      self->become_replicate();
    }
  }
}

bool Raft::sync_conf(const std::vector<Entry>& appended, LogIndex floor) {
  // Committed entries are never truncated, so only configurations above `floor` (the commit
  // index before the append) can go.
  if (confs_.latest_index() > floor &&
      confs_.drop_missing(log_.last_index(), [&](LogIndex i) { return i <= floor ? Term{~0ull} : log_.term_or_zero(i); }))
    stats_.conf_rollbacks++;
  for (const Entry& e : appended) {
    if (e.type != EntryType::kConfChange || e.index <= confs_.latest_index()) continue;
    if (log_.term_or_zero(e.index) != e.term) continue;  // not (or no longer) in the log
    auto ce = codec::decode<ConfEntry>(e.data);
    if (!ce) {
      stats_.invalid++;  // message_valid() refuses these before they reach the log
      continue;
    }
    confs_.append(e.index, e.term, ce->result);
  }
  const ConfState& target =
      cfg_.planted_bug == PlantedBug::kConfOnCommit ? confs_.at(log_.committed()) : confs_.latest();
  if (target == tracker_.conf()) return false;
  apply_conf(target);
  return true;
}

void Raft::after_commit() {
  if (cfg_.planted_bug == PlantedBug::kConfOnCommit) sync_conf({}, log_.committed());
  if (role_ != Role::kLeader) return;
  if (reads_.has_deferred() && committed_entry_in_current_term()) {
    for (auto& [from, ctx] : reads_.take_deferred()) handle_read_index_request(from, std::move(ctx));
  }
  if (conf_pending()) return;
  const ConfState& c = conf();
  if (c.joint() && c.auto_leave) {
    // The joint configuration committed: leave it (thesis §4.3). The leave entry is a change
    // like any other, in effect on append.
    ConfResult left = confchange::apply(c, ConfChangeSet{});
    BALSA_ASSERT(left.ok(), "leaving {}: {}", confchange::describe(c).c_str(), to_string(left.error));
    std::vector<Entry> e{Entry{term_, LogIndex{0}, EntryType::kConfChange,
                               codec::encode(ConfEntry{ConfChangeSet{}, left.conf})}};
    append_entries(&e);
  } else if (!is_voter(id_)) {
    // Our own removal committed: hand over to the most up-to-date voter, tell everyone the
    // commit index, and stop leading (thesis §4.2.2). We no longer campaign.
    NodeId best = kNoNode;
    for (NodeId id : tracker_.voter_ids()) {
      const Progress* pr = tracker_.progress(id);
      if (pr && !tracker_.is_witness(id) && pr->match == log_.last_index()) best = id;
    }
    broadcast_append();
    if (best != kNoNode) {
      Message t;
      t.type = MessageType::kTimeoutNow;
      t.to = best;
      send(std::move(t));
    }
    become_follower(term_, kNoNode);
  }
}

LogIndex Raft::match_of(NodeId id) const {
  const Progress* pr = tracker_.progress(id);
  return pr ? pr->match : LogIndex{0};
}

ConfProposeResult Raft::propose_conf_change(const ConfChangeSet& set) {
  ConfProposeResult r;
  r.leader = lead_;
  auto refuse = [&](ConfError e) {
    r.error = e;
    return r;
  };
  if (role_ != Role::kLeader) return refuse(ConfError::kNotLeader);
  if (lead_transferee_ != kNoNode) return refuse(ConfError::kTransferring);
  // One change at a time: the previous one (or the joint configuration's leave) must commit.
  if (conf_pending()) return refuse(ConfError::kChangeInFlight);
  ConfResult next = confchange::apply(conf(), set);
  if (!next.ok()) return refuse(next.error);
  for (const ConfChange& cc : set.changes) {
    if (cc.type != ConfChangeType::kPromote) continue;
    const Progress* pr = tracker_.progress(cc.node);
    if (!pr || pr->match + cfg_.promotion_max_lag < log_.last_index()) return refuse(ConfError::kLearnerBehind);
  }
  std::vector<Entry> e{Entry{term_, LogIndex{0}, EntryType::kConfChange,
                             codec::encode(ConfEntry{set, next.conf})}};
  const LogIndex index = log_.last_index() + 1;
  if (!append_entries(&e)) return refuse(ConfError::kBusy);
  broadcast_append();
  r.index = index;
  r.term = term_;
  r.conf = std::move(next.conf);
  if (cfg_.debug_invariants) check_invariants();
  return r;
}

// ---------------------------------------------------------------------------------------------
// Local API

ProposeResult Raft::propose(std::vector<std::string> commands) {
  ProposeResult r;
  r.leader = lead_;
  if (commands.empty()) {
    r.status = ProposeStatus::kDropped;
    return r;
  }
  if (role_ != Role::kLeader) {
    if (lead_ == kNoNode || !cfg_.forward_proposals) {
      stats_.dropped_proposals++;
      r.status = ProposeStatus::kNotLeader;
      return r;
    }
    Message m;
    m.type = MessageType::kProp;
    m.to = lead_;
    for (auto& c : commands) m.entries.push_back(Entry{Term{0}, LogIndex{0}, EntryType::kNormal, std::move(c)});
    send(std::move(m));
    r.status = ProposeStatus::kForwarded;
    return r;
  }
  if (lead_transferee_ != kNoNode) {
    stats_.dropped_proposals++;
    r.status = ProposeStatus::kDropped;
    return r;
  }
  std::vector<Entry> entries;
  entries.reserve(commands.size());
  for (auto& c : commands) entries.push_back(Entry{Term{0}, LogIndex{0}, EntryType::kNormal, std::move(c)});
  const LogIndex first = log_.last_index() + 1;
  if (!append_entries(&entries)) {
    stats_.dropped_proposals++;
    r.status = ProposeStatus::kDropped;
    return r;
  }
  broadcast_append();
  r.status = ProposeStatus::kAppended;
  r.first_index = first;
  r.term = term_;
  if (cfg_.debug_invariants) check_invariants();
  return r;
}

bool Raft::read_index(std::string context) {
  if (role_ == Role::kLeader) {
    handle_read_index_request(id_, std::move(context));
    return true;
  }
  if (lead_ == kNoNode) {
    stats_.dropped_reads++;
    return false;
  }
  Message m;
  m.type = MessageType::kReadIndex;
  m.to = lead_;
  m.context = std::move(context);
  send(std::move(m));
  return true;
}

bool Raft::lease_valid() const {
  // A new leader's commit index may lag until an entry of its own term commits.
  if (role_ != Role::kLeader || !committed_entry_in_current_term()) return false;
  if (cfg_.planted_bug == PlantedBug::kLeaseWithoutQuorum) return true;
  if (!cfg_.lease_reads || !cfg_.check_quorum || lead_transferee_ != kNoNode) return false;
  if (tracker_.single_voter(id_)) return true;
  return lease_.valid(now_, lease_ticks());
}

ReadStatus Raft::read_lease(std::string context) {
  if (role_ != Role::kLeader) return ReadStatus::kNotLeader;
  if (!lease_valid()) return ReadStatus::kNoLease;
  read_states_.push_back({log_.committed(), std::move(context)});
  stats_.lease_reads++;
  return ReadStatus::kServed;
}

bool Raft::transfer_leadership(NodeId target) {
  if (role_ != Role::kLeader) {
    // The leader transfers to the sender of kTransferLeader, so only the target may ask.
    if (lead_ == kNoNode || target != id_ || !promotable()) return false;
    Message m;
    m.type = MessageType::kTransferLeader;
    m.to = lead_;
    send(std::move(m));
    return true;
  }
  if (target == id_ || !is_voter(target) || tracker_.is_witness(target)) return false;
  lead_transferee_ = target;
  election_elapsed_ = 0;  // the transfer must finish within an election timeout
  // The target will campaign with a forced vote that ignores the followers' stickiness: no
  // lease read is safe in this term from now on.
  lease_.revoke();
  const Progress* pr = tracker_.progress(target);
  if (pr->match == log_.last_index()) {
    Message t;
    t.type = MessageType::kTimeoutNow;
    t.to = target;
    send(std::move(t));
  } else {
    send_append(target, true);
  }
  return true;
}

void Raft::report_snapshot(NodeId to, bool ok) {
  Progress* pr = tracker_.progress(to);
  if (role_ != Role::kLeader || !pr) return;
  if (pr->state != ProgressState::kSnapshot) return;
  if (!ok) pr->pending_snapshot = LogIndex{0};
  pr->become_probe();
  // Wait for the follower's reply (or the next heartbeat) before probing again.
  pr->probe_sent = true;
}

void Raft::report_unreachable(NodeId to) {
  Progress* pr = tracker_.progress(to);
  if (role_ != Role::kLeader || !pr) return;
  if (pr->state == ProgressState::kReplicate) pr->become_probe();
}

void Raft::on_persisted(LogIndex index, Term term) {
  if (role_ != Role::kLeader) return;
  // Only entries of our own log that are now durable count towards commitment.
  if (log_.term_or_zero(index) != term) return;
  Progress* self = tracker_.progress(id_);
  if (!self) return;  // a leader removing itself no longer counts itself
  if (self->maybe_update(index) && maybe_commit() && role_ == Role::kLeader) broadcast_append();
}

void Raft::on_applied(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  log_.applied_to(entries.back().index);
  confs_.compact_to(log_.applied());
  if (role_ == Role::kLeader) {
    uint64_t bytes = 0;
    for (const Entry& e : entries)
      if (e.term == term_) bytes += e.data.size();
    uncommitted_bytes_ = bytes >= uncommitted_bytes_ ? 0 : uncommitted_bytes_ - bytes;
  }
}

}  // namespace balsa
