#include "core/raft.h"

#include <algorithm>

#include "core/assert.h"
#include "core/quorum.h"

namespace balsa {

const char* to_string(Role r) {
  switch (r) {
    case Role::kFollower: return "follower";
    case Role::kPreCandidate: return "pre-candidate";
    case Role::kCandidate: return "candidate";
    case Role::kLeader: return "leader";
  }
  return "?";
}

const char* to_string(ProposeStatus s) {
  switch (s) {
    case ProposeStatus::kAppended: return "appended";
    case ProposeStatus::kForwarded: return "forwarded";
    case ProposeStatus::kNotLeader: return "not-leader";
    case ProposeStatus::kDropped: return "dropped";
  }
  return "?";
}

namespace {
constexpr const char* kTransferContext = "balsa-transfer";

bool contains(const std::vector<NodeId>& v, NodeId id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

// Messages that must wait until the Ready that produced them is durable: a vote (the voter's
// term and vote), a candidate's request (its own vote), and every reply that acknowledges log
// state. Only the leader's replication traffic and stateless probes leave immediately; the
// leader's own appends may race its disk write because it counts itself only once persisted.
bool needs_persist(MessageType t) {
  switch (t) {
    case MessageType::kApp:
    case MessageType::kHeartbeat:
    case MessageType::kSnap:
    case MessageType::kTimeoutNow:
    case MessageType::kPreVote:
    case MessageType::kPreVoteResp:
    case MessageType::kProp:
    case MessageType::kReadIndex:
    case MessageType::kReadIndexResp:
    case MessageType::kTransferLeader:
      return false;
    case MessageType::kAppResp:
    case MessageType::kVote:
    case MessageType::kVoteResp:
    case MessageType::kHeartbeatResp:
      return true;
  }
  return true;
}
}  // namespace

Raft::Raft(const Config& config, const Storage* storage)
    : id_(config.id), cfg_(config), rng_(config.seed ^ (config.id.value * 0x9e3779b97f4a7c15ULL)),
      log_(storage, config.max_apply_bytes) {
  BALSA_ASSERT(id_ != kNoNode, "node id 0 is reserved");
  BALSA_ASSERT(cfg_.election_ticks > cfg_.heartbeat_ticks && cfg_.heartbeat_ticks > 0,
               "election_ticks ({}) must exceed heartbeat_ticks ({}) > 0", cfg_.election_ticks,
               cfg_.heartbeat_ticks);
  const InitialState init = storage->initial_state();
  ConfState cs = init.conf;
  if (cs.voters.empty() && cs.learners.empty()) {
    cs.voters = config.voters;
    cs.learners = config.learners;
  }
  BALSA_ASSERT(!cs.voters.empty(), "node {} has no configuration", id_.value);
  apply_conf(cs);
  if (!init.hard_state.empty()) {
    BALSA_ASSERT(init.hard_state.commit <= log_.last_index(),
                 "durable commit {} beyond durable log {}", init.hard_state.commit.value,
                 log_.last_index().value);
    term_ = init.hard_state.term;
    vote_ = init.hard_state.vote;
    log_.commit_to(init.hard_state.commit);
  }
  if (config.applied.value > 0) log_.applied_to(config.applied);
  become_follower(term_, kNoNode);
  checked_term_ = term_;
  checked_commit_ = log_.committed();
}

// ---------------------------------------------------------------------------------------------
// Configuration

void Raft::apply_conf(const ConfState& cs) {
  conf_ = cs;
  std::unordered_map<NodeId, Progress> next;
  auto add = [&](NodeId id, bool learner) {
    auto it = progress_.find(id);
    Progress pr = it != progress_.end()
                      ? it->second
                      : Progress(log_.last_index() + 1, cfg_.max_inflight_msgs, cfg_.max_inflight_bytes);
    pr.is_learner = learner;
    next.emplace(id, std::move(pr));
  };
  for (NodeId id : cs.voters) add(id, false);
  for (NodeId id : cs.voters_outgoing) add(id, false);
  for (NodeId id : cs.learners) add(id, true);
  progress_ = std::move(next);
}

bool Raft::is_voter(NodeId id) const {
  return contains(conf_.voters, id) || contains(conf_.voters_outgoing, id);
}

bool Raft::is_member(NodeId id) const { return progress_.contains(id); }

LogIndex Raft::match_of(NodeId id) const {
  auto it = progress_.find(id);
  return it == progress_.end() ? LogIndex{0} : it->second.match;
}

bool Raft::quorum_active() const {
  return quorum::has_quorum(conf_.voters, conf_.voters_outgoing, [&](NodeId id) {
    if (id == id_) return true;
    auto it = progress_.find(id);
    return it != progress_.end() && it->second.recent_active;
  });
}

// ---------------------------------------------------------------------------------------------
// Role transitions

void Raft::reset(Term term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNoNode;
  }
  lead_ = kNoNode;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  reset_randomized_election_timeout();
  lead_transferee_ = kNoNode;
  votes_.clear();
  uncommitted_bytes_ = 0;
  // Reads in flight are lost with leadership; the runtime times them out and retries.
  stats_.dropped_reads += pending_reads_.size() + reads_before_commit_.size();
  pending_reads_.clear();
  reads_before_commit_.clear();
  for (auto& [id, pr] : progress_) {
    const bool learner = pr.is_learner;
    pr = Progress(log_.last_index() + 1, cfg_.max_inflight_msgs, cfg_.max_inflight_bytes);
    pr.is_learner = learner;
    // The leader's own entry counts only what is durable (thesis §10.2.1).
    if (id == id_) pr.match = log_.stable_last_index();
  }
}

void Raft::reset_randomized_election_timeout() {
  randomized_election_timeout_ =
      cfg_.election_ticks + static_cast<int>(rng_.below(static_cast<uint64_t>(cfg_.election_ticks)));
}

void Raft::become_follower(Term term, NodeId lead) {
  const NodeId old_lead = lead_;
  reset(term);
  role_ = Role::kFollower;
  lead_ = lead;
  if (lead != kNoNode && lead != old_lead) stats_.leader_changes++;
}

void Raft::become_pre_candidate() {
  BALSA_ASSERT(role_ != Role::kLeader, "leader {} cannot become pre-candidate", id_.value);
  // Pre-vote changes neither term nor vote: a partitioned node cannot inflate terms.
  role_ = Role::kPreCandidate;
  votes_.clear();
  lead_ = kNoNode;
}

void Raft::become_candidate() {
  BALSA_ASSERT(role_ != Role::kLeader, "leader {} cannot become candidate", id_.value);
  reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

void Raft::become_leader() {
  BALSA_ASSERT(role_ == Role::kCandidate, "node {} becomes leader from {}", id_.value,
               to_string(role_));
  reset(term_);
  role_ = Role::kLeader;
  lead_ = id_;
  stats_.leader_changes++;
  auto& self = progress_.at(id_);
  self.become_replicate();
  // A no-op in the new term lets the leader commit (and learn the commit index of) everything
  // before it: entries of earlier terms are only committed indirectly (§5.4.2).
  std::vector<Entry> noop{Entry{term_, log_.last_index() + 1, EntryType::kNormal, {}}};
  append_entries(&noop);
  broadcast_append();
}

void Raft::campaign(CampaignType type) {
  if (!promotable()) return;
  MessageType vote_type;
  Term vote_term;
  if (type == CampaignType::kPreElection) {
    become_pre_candidate();
    vote_type = MessageType::kPreVote;
    vote_term = term_ + 1;
  } else {
    become_candidate();
    vote_type = MessageType::kVote;
    vote_term = term_;
  }
  if (poll(id_, vote_type == MessageType::kPreVote ? MessageType::kPreVoteResp : MessageType::kVoteResp,
           true) == 1) {
    // Won alone (a single-voter configuration).
    if (type == CampaignType::kPreElection) {
      campaign(CampaignType::kElection);
    } else {
      become_leader();
    }
    return;
  }
  auto send_to = [&](const std::vector<NodeId>& set) {
    for (NodeId id : set) {
      if (id == id_) continue;
      Message m;
      m.type = vote_type;
      m.to = id;
      m.term = vote_term;
      m.index = log_.last_index();
      m.log_term = log_.last_term();
      if (type == CampaignType::kTransfer) m.context = kTransferContext;
      send(std::move(m));
    }
  };
  send_to(conf_.voters);
  for (NodeId id : conf_.voters_outgoing)
    if (!contains(conf_.voters, id)) send_to({id});
}

// Records a vote; returns 1 if the election is won, -1 if lost, 0 if pending.
int Raft::poll(NodeId from, MessageType, bool granted) {
  votes_.try_emplace(from, granted);
  switch (quorum::joint_vote(conf_.voters, conf_.voters_outgoing, votes_)) {
    case quorum::VoteResult::kWon: return 1;
    case quorum::VoteResult::kLost: return -1;
    case quorum::VoteResult::kPending: return 0;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Time

void Raft::tick() {
  switch (role_) {
    case Role::kLeader:
      tick_heartbeat();
      break;
    case Role::kFollower:
    case Role::kPreCandidate:
    case Role::kCandidate:
      tick_election();
      break;
  }
  if (cfg_.debug_invariants) check_invariants();
}

void Raft::tick_election() {
  election_elapsed_++;
  if (promotable() && election_elapsed_ >= randomized_election_timeout_) {
    election_elapsed_ = 0;
    campaign(cfg_.pre_vote ? CampaignType::kPreElection : CampaignType::kElection);
  }
}

void Raft::tick_heartbeat() {
  heartbeat_elapsed_++;
  election_elapsed_++;
  if (election_elapsed_ >= cfg_.election_ticks) {
    election_elapsed_ = 0;
    if (cfg_.check_quorum) {
      // A leader that has not heard from a quorum for an election timeout may be partitioned
      // away; stepping down lets the majority side elect without waiting on it (§6.2).
      if (!quorum_active()) {
        become_follower(term_, kNoNode);
        return;
      }
      for (auto& [id, pr] : progress_)
        if (id != id_) pr.recent_active = false;
    }
    lead_transferee_ = kNoNode;  // a transfer that did not finish in an election timeout is over
  }
  // A snapshot message that was lost would stall a follower forever: retry after a while.
  for (auto& [id, pr] : progress_) {
    if (pr.state == ProgressState::kSnapshot && ++pr.snapshot_ticks > 2u * cfg_.election_ticks) {
      pr.become_probe();
      send_append(id, true);
    }
  }
  if (heartbeat_elapsed_ >= cfg_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    broadcast_heartbeat(pending_reads_.empty() ? std::string() : pending_reads_.back().context);
  }
}

// ---------------------------------------------------------------------------------------------
// Messages

bool Raft::valid(const Message& m) const {
  // Only requests forwarded to the leader travel without a term; anything else with term 0 is
  // forged or corrupt (and would otherwise reset our term).
  const bool termless = m.type == MessageType::kProp || m.type == MessageType::kReadIndex ||
                        m.type == MessageType::kTransferLeader;
  if (termless != (m.term.value == 0)) return false;
  switch (m.type) {
    case MessageType::kApp: {
      if (m.log_term > m.term) return false;
      Term prev = m.log_term;
      for (size_t k = 0; k < m.entries.size(); ++k) {
        const Entry& e = m.entries[k];
        if (e.index != m.index + (k + 1) || e.term < prev || e.term > m.term) return false;
        prev = e.term;
      }
      return true;
    }
    case MessageType::kVote:
    case MessageType::kPreVote:
      return m.log_term <= m.term;
    case MessageType::kSnap:
      return m.snapshot.metadata.index.value > 0 && m.snapshot.metadata.term <= m.term &&
             !m.snapshot.metadata.conf.voters.empty();
    case MessageType::kProp:
      for (const Entry& e : m.entries)
        if (e.type != EntryType::kNormal) return false;  // conf changes are proposed locally
      return !m.entries.empty();
    case MessageType::kAppResp:
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp:
    case MessageType::kHeartbeat:
    case MessageType::kHeartbeatResp:
    case MessageType::kReadIndex:
    case MessageType::kReadIndexResp:
    case MessageType::kTimeoutNow:
    case MessageType::kTransferLeader:
      return true;
  }
  return false;
}

void Raft::send(Message m) {
  m.from = id_;
  // Requests forwarded to the leader carry no term: they are valid in whatever term it is.
  if (m.type != MessageType::kProp && m.type != MessageType::kReadIndex &&
      m.type != MessageType::kTransferLeader && m.term.value == 0)
    m.term = term_;
  (needs_persist(m.type) ? msgs_after_persist_ : msgs_).push_back(std::move(m));
}

void Raft::step(const Message& m) {
  if (m.to != id_ || m.from == id_) {
    stats_.invalid++;
    return;
  }
  if (!is_member(m.from)) {
    stats_.non_member++;
    return;
  }
  if (!valid(m)) {
    stats_.invalid++;
    return;
  }

  if (m.term.value == 0) {
    // Forwarded requests (proposal, read index, transfer): no term bookkeeping.
  } else if (m.term > term_) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      // Leader stickiness (§4.2.3): while we hear from a live leader, ignore would-be
      // disruptors, unless the leader itself handed over (leadership transfer).
      const bool forced = m.context == kTransferContext;
      const bool in_lease = cfg_.check_quorum && lead_ != kNoNode &&
                            election_elapsed_ < cfg_.election_ticks;
      if (!forced && in_lease) {
        stats_.stale_term++;
        return;
      }
    }
    if (m.type == MessageType::kPreVote) {
      // A pre-vote for a future term changes nothing here.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // A granted pre-vote carries the term we would campaign in, not a newer leader's.
    } else if (m.type == MessageType::kApp || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnap) {
      become_follower(m.term, m.from);
    } else {
      become_follower(m.term, kNoNode);
    }
  } else if (m.term < term_) {
    stats_.stale_term++;
    if ((cfg_.check_quorum || cfg_.pre_vote) &&
        (m.type == MessageType::kHeartbeat || m.type == MessageType::kApp)) {
      // A stale leader (e.g. healed from a partition) learns our term and steps down. Without
      // this, with pre-vote on, it could keep a minority candidate from ever winning.
      Message resp;
      resp.type = MessageType::kAppResp;
      resp.to = m.from;
      send(std::move(resp));
    } else if (m.type == MessageType::kPreVote) {
      Message resp;
      resp.type = MessageType::kPreVoteResp;
      resp.to = m.from;
      resp.reject = true;
      send(std::move(resp));
    }
    return;
  }

  switch (m.type) {
    case MessageType::kVote:
    case MessageType::kPreVote:
      handle_vote_request(m);
      break;
    default:
      switch (role_) {
        case Role::kLeader: step_leader(m); break;
        case Role::kCandidate:
        case Role::kPreCandidate: step_candidate(m); break;
        case Role::kFollower: step_follower(m); break;
      }
  }
  if (cfg_.debug_invariants) check_invariants();
}

void Raft::handle_vote_request(const Message& m) {
  if (m.term.value == 0) {
    stats_.invalid++;
    return;
  }
  // We can vote for the candidate if we already did in this term, or have voted for no one and
  // know of no leader; a pre-vote for a later term is always allowed.
  const bool can_vote = vote_ == m.from || (vote_ == kNoNode && lead_ == kNoNode) ||
                        (m.type == MessageType::kPreVote && m.term > term_);
  const bool log_ok = cfg_.planted_bug == PlantedBug::kVoteWithoutLogCheck ||
                      log_.is_up_to_date(m.index, m.log_term);
  Message resp;
  resp.type = m.type == MessageType::kVote ? MessageType::kVoteResp : MessageType::kPreVoteResp;
  resp.to = m.from;
  if (can_vote && log_ok && promotable()) {
    // A granted response carries the candidate's term, so it counts in that election.
    resp.term = m.term;
    if (m.type == MessageType::kVote) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    resp.reject = true;
  }
  send(std::move(resp));
}

void Raft::step_follower(const Message& m) {
  const bool from_leader = m.type == MessageType::kApp || m.type == MessageType::kHeartbeat ||
                           m.type == MessageType::kSnap;
  if (from_leader && lead_ != kNoNode && lead_ != m.from) {
    // Two leaders in one term cannot exist (Election Safety): refuse the impostor.
    stats_.invalid++;
    return;
  }
  switch (m.type) {
    case MessageType::kProp:
      if (lead_ == kNoNode || !cfg_.forward_proposals) {
        stats_.dropped_proposals++;
        return;
      }
      {
        Message fwd = m;
        fwd.to = lead_;
        send(std::move(fwd));
      }
      break;
    case MessageType::kApp:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_append(m);
      break;
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_heartbeat(m);
      break;
    case MessageType::kSnap:
      election_elapsed_ = 0;
      lead_ = m.from;
      handle_snapshot(m);
      break;
    case MessageType::kTimeoutNow:
      // The leader hands over: campaign at once, skipping pre-vote (it would be refused by
      // followers that still hear from the leader).
      campaign(CampaignType::kTransfer);
      break;
    case MessageType::kReadIndexResp:
      read_states_.push_back({m.index, m.context});
      break;
    case MessageType::kTransferLeader:
      if (lead_ == kNoNode) return;
      {
        Message fwd = m;
        fwd.to = lead_;
        send(std::move(fwd));
      }
      break;
    case MessageType::kReadIndex:
    case MessageType::kAppResp:
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp:
    case MessageType::kHeartbeatResp:
    case MessageType::kVote:
    case MessageType::kPreVote:
      break;  // not for a follower (e.g. a late reply to an earlier role)
  }
}

void Raft::step_candidate(const Message& m) {
  switch (m.type) {
    case MessageType::kApp:
      become_follower(m.term, m.from);
      handle_append(m);
      break;
    case MessageType::kHeartbeat:
      become_follower(m.term, m.from);
      handle_heartbeat(m);
      break;
    case MessageType::kSnap:
      become_follower(m.term, m.from);
      handle_snapshot(m);
      break;
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp: {
      const bool mine = (role_ == Role::kCandidate && m.type == MessageType::kVoteResp) ||
                        (role_ == Role::kPreCandidate && m.type == MessageType::kPreVoteResp);
      if (!mine) return;
      switch (poll(m.from, m.type, !m.reject)) {
        case 1:
          if (role_ == Role::kPreCandidate) {
            campaign(CampaignType::kElection);
          } else {
            become_leader();
          }
          break;
        case -1:
          become_follower(term_, kNoNode);
          break;
        default:
          break;
      }
      break;
    }
    case MessageType::kProp:
      stats_.dropped_proposals++;
      break;
    case MessageType::kReadIndex:
    case MessageType::kReadIndexResp:
    case MessageType::kTimeoutNow:
    case MessageType::kTransferLeader:
    case MessageType::kAppResp:
    case MessageType::kHeartbeatResp:
    case MessageType::kVote:
    case MessageType::kPreVote:
      break;
  }
}

void Raft::step_leader(const Message& m) {
  switch (m.type) {
    case MessageType::kProp: {
      if (lead_transferee_ != kNoNode) {
        stats_.dropped_proposals++;
        return;
      }
      std::vector<Entry> entries = m.entries;
      if (!append_entries(&entries)) {
        stats_.dropped_proposals++;
        return;
      }
      broadcast_append();
      break;
    }
    case MessageType::kReadIndex:
      handle_read_index_request(m.from, m.context);
      break;
    case MessageType::kAppResp: {
      auto it = progress_.find(m.from);
      handle_append_response(m, it->second);
      break;
    }
    case MessageType::kHeartbeatResp: {
      auto it = progress_.find(m.from);
      handle_heartbeat_response(m, it->second);
      break;
    }
    case MessageType::kTransferLeader:
      transfer_leadership(m.from);
      break;
    case MessageType::kApp:
    case MessageType::kHeartbeat:
    case MessageType::kSnap:
      // Another leader in our own term cannot exist (Election Safety): this message is forged
      // or corrupt. Refuse it rather than crash.
      stats_.invalid++;
      break;
    case MessageType::kVoteResp:
    case MessageType::kPreVoteResp:
    case MessageType::kReadIndexResp:
    case MessageType::kTimeoutNow:
    case MessageType::kVote:
    case MessageType::kPreVote:
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// Follower side of replication

void Raft::handle_append(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (m.index < log_.committed()) {
    // Everything up to our commit index is already known to match: say so.
    resp.index = log_.committed();
    send(std::move(resp));
    return;
  }
  if (auto last_new = log_.maybe_append(m.index, m.log_term, m.commit, m.entries)) {
    resp.index = *last_new;
    send(std::move(resp));
    return;
  }
  // Reject with a hint so the leader can skip a whole term at once (§5.3, "fast backup"):
  // our last index + 1 if our log is too short, else the conflicting term and its first index.
  resp.reject = true;
  resp.index = m.index;
  if (m.index > log_.last_index()) {
    resp.reject_hint = log_.last_index() + 1;
  } else {
    resp.log_term = log_.term_or_zero(m.index);
    resp.reject_hint = log_.first_index_of_term(m.index, log_.committed());
  }
  send(std::move(resp));
}

void Raft::handle_heartbeat(const Message& m) {
  // The leader bounds the commit index by our match, so it never exceeds what we hold.
  log_.commit_to(std::min(m.commit, log_.last_index()));
  Message resp;
  resp.type = MessageType::kHeartbeatResp;
  resp.to = m.from;
  resp.context = m.context;
  send(std::move(resp));
}

void Raft::handle_snapshot(const Message& m) {
  const SnapshotMetadata& meta = m.snapshot.metadata;
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (meta.index <= log_.committed()) {
    resp.index = log_.committed();
  } else if (log_.match_term(meta.index, meta.term)) {
    // We already hold the snapshot's last entry: just fast-forward the commit index.
    log_.commit_to(meta.index);
    resp.index = log_.committed();
  } else {
    log_.restore(m.snapshot);
    apply_conf(meta.conf);
    resp.index = log_.last_index();
  }
  send(std::move(resp));
}

// ---------------------------------------------------------------------------------------------
// Leader side of replication

bool Raft::append_entries(std::vector<Entry>* entries) {
  uint64_t bytes = 0;
  for (const Entry& e : *entries) bytes += e.data.size();
  if (cfg_.max_uncommitted_bytes != 0 && uncommitted_bytes_ > 0 &&
      uncommitted_bytes_ + bytes > cfg_.max_uncommitted_bytes)
    return false;
  uncommitted_bytes_ += bytes;
  LogIndex next = log_.last_index() + 1;
  for (Entry& e : *entries) {
    e.term = term_;
    e.index = next;
    ++next;
  }
  log_.append(std::move(*entries));
  // A single-voter cluster commits as soon as the entry is durable: see on_persisted().
  return true;
}

bool Raft::send_append(NodeId to, bool send_if_empty) {
  if (to == id_) return false;
  Progress& pr = progress_.at(to);
  if (pr.is_paused()) return false;
  Message m;
  m.to = to;
  const LogIndex prev = pr.next - 1;
  const auto prev_term = log_.term(prev);
  bool compacted = false;
  std::vector<Entry> entries;
  if (prev_term) entries = log_.entries_from(pr.next, cfg_.max_msg_bytes, &compacted);
  if (!prev_term || compacted) {
    // The follower needs entries we no longer have: send the snapshot instead.
    if (!pr.recent_active) return false;
    const Snapshot* pending = log_.pending_snapshot();
    Snapshot snap = pending ? *pending : log_.storage().snapshot();
    BALSA_ASSERT(!snap.empty(), "log compacted below {} but no snapshot exists", pr.next.value);
    m.type = MessageType::kSnap;
    pr.become_snapshot(snap.metadata.index);
    m.snapshot = std::move(snap);
    send(std::move(m));
    return false;
  }
  if (entries.empty() && !send_if_empty) return false;
  uint64_t bytes = 0;
  for (const Entry& e : entries) bytes += e.payload_bytes();
  const size_t count = entries.size();
  const LogIndex last = count ? entries.back().index : prev;
  m.type = MessageType::kApp;
  m.index = prev;
  m.log_term = *prev_term;
  m.entries = std::move(entries);
  m.commit = log_.committed();
  pr.sent_entries(last, bytes, count);
  send(std::move(m));
  return count > 0;
}

// Streams everything a replicating follower can take now (pipelining within the window).
void Raft::send_append_all(NodeId to) {
  if (!send_append(to, true)) return;
  while (send_append(to, false)) {
  }
}

void Raft::broadcast_append() {
  for (auto& [id, pr] : progress_)
    if (id != id_) send_append_all(id);
}

void Raft::broadcast_heartbeat(const std::string& context) {
  for (auto& [id, pr] : progress_) {
    if (id == id_) continue;
    Message m;
    m.type = MessageType::kHeartbeat;
    m.to = id;
    // Never tell a follower to commit past what it is known to hold.
    m.commit = std::min(pr.match, log_.committed());
    m.context = context;
    send(std::move(m));
  }
}

bool Raft::maybe_commit() {
  const LogIndex idx = quorum::joint_index(conf_.voters, conf_.voters_outgoing,
                                           [&](NodeId id) { return match_of(id); });
  bool advanced;
  if (cfg_.planted_bug == PlantedBug::kCommitPreviousTerm) {
    // The Figure 8 bug: counting replicas of an older term's entry is not enough.
    advanced = idx > log_.committed();
    if (advanced) log_.commit_to(idx);
  } else {
    // Only an entry of the current term is committed by counting replicas (§5.4.2).
    advanced = log_.maybe_commit(idx, term_);
  }
  if (advanced && committed_entry_in_current_term() && !reads_before_commit_.empty()) {
    auto waiting = std::exchange(reads_before_commit_, {});
    for (auto& [from, ctx] : waiting) handle_read_index_request(from, std::move(ctx));
  }
  return advanced;
}

void Raft::handle_append_response(const Message& m, Progress& pr) {
  pr.recent_active = true;
  if (m.index > log_.last_index()) {
    stats_.invalid++;  // acknowledges entries we never had
    return;
  }
  if (m.reject) {
    // Where to retry: if we have the follower's conflicting term, right after our last entry
    // of that term; otherwise at the first index the follower has of it.
    LogIndex retry = m.reject_hint;
    if (m.log_term.value != 0) {
      const LogIndex j = log_.find_conflict_by_term(m.index, m.log_term);
      if (j.value > 0 && log_.term_or_zero(j) == m.log_term) retry = j + 1;
    }
    if (pr.maybe_decrease_to(m.index, retry)) send_append(m.from, true);
    return;
  }
  const bool was_paused = pr.is_paused();
  if (!pr.maybe_update(m.index)) return;  // an old, reordered ack
  switch (pr.state) {
    case ProgressState::kProbe:
      pr.become_replicate();
      break;
    case ProgressState::kSnapshot:
      if (pr.match >= pr.pending_snapshot) pr.become_probe();
      break;
    case ProgressState::kReplicate:
      pr.inflights.free_le(m.index);
      break;
  }
  if (maybe_commit()) {
    broadcast_append();
  } else if (was_paused || pr.next <= log_.last_index()) {
    send_append_all(m.from);
  }
  if (m.from == lead_transferee_ && pr.match == log_.last_index()) {
    Message t;
    t.type = MessageType::kTimeoutNow;
    t.to = m.from;
    send(std::move(t));
  }
}

void Raft::handle_heartbeat_response(const Message& m, Progress& pr) {
  pr.recent_active = true;
  pr.probe_sent = false;
  // If the window is full, assume the oldest append was lost so replication can resume.
  if (pr.state == ProgressState::kReplicate && pr.inflights.full()) pr.inflights.free_first_one();
  if (pr.match < log_.last_index()) send_append(m.from, true);

  if (m.context.empty() || pending_reads_.empty()) return;
  for (size_t k = 0; k < pending_reads_.size(); ++k) {
    if (pending_reads_[k].context != m.context) continue;
    pending_reads_[k].acks.insert(m.from);
    const auto& acks = pending_reads_[k].acks;
    if (quorum::has_quorum(conf_.voters, conf_.voters_outgoing,
                           [&](NodeId id) { return acks.contains(id); }))
      release_reads(k);
    return;
  }
}

void Raft::release_reads(size_t upto) {
  // A quorum confirmed leadership at this request's round, so every earlier one is safe too.
  for (size_t k = 0; k <= upto; ++k) {
    PendingRead& r = pending_reads_.front();
    if (r.from == id_) {
      read_states_.push_back({r.index, std::move(r.context)});
    } else {
      Message resp;
      resp.type = MessageType::kReadIndexResp;
      resp.to = r.from;
      resp.index = r.index;
      resp.context = std::move(r.context);
      send(std::move(resp));
    }
    pending_reads_.pop_front();
  }
}

bool Raft::committed_entry_in_current_term() const {
  return log_.term_or_zero(log_.committed()) == term_;
}

void Raft::handle_read_index_request(NodeId from, std::string context) {
  if (!committed_entry_in_current_term()) {
    // Until the no-op commits, our commit index may be behind the previous leader's (§6.4).
    reads_before_commit_.emplace_back(from, std::move(context));
    return;
  }
  const bool single = conf_.voters.size() == 1 && conf_.voters_outgoing.empty();
  pending_reads_.push_back({log_.committed(), std::move(context), from, {id_}});
  if (single) {
    release_reads(pending_reads_.size() - 1);
    return;
  }
  broadcast_heartbeat(pending_reads_.back().context);
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

void Raft::transfer_leadership(NodeId target) {
  if (role_ != Role::kLeader) {
    if (lead_ == kNoNode) return;
    Message m;
    m.type = MessageType::kTransferLeader;
    m.to = lead_;
    // The leader transfers to the sender of kTransferLeader, so only the target may ask.
    if (target != id_) return;
    send(std::move(m));
    return;
  }
  if (target == id_ || !is_voter(target)) return;
  lead_transferee_ = target;
  election_elapsed_ = 0;  // the transfer must finish within an election timeout
  const Progress& pr = progress_.at(target);
  if (pr.match == log_.last_index()) {
    Message t;
    t.type = MessageType::kTimeoutNow;
    t.to = target;
    send(std::move(t));
  } else {
    send_append(target, true);
  }
}

void Raft::report_snapshot(NodeId to, bool ok) {
  auto it = progress_.find(to);
  if (role_ != Role::kLeader || it == progress_.end()) return;
  Progress& pr = it->second;
  if (pr.state != ProgressState::kSnapshot) return;
  if (!ok) pr.pending_snapshot = LogIndex{0};
  pr.become_probe();
  // Wait for the follower's reply (or the next heartbeat) before probing again.
  pr.probe_sent = true;
}

void Raft::report_unreachable(NodeId to) {
  auto it = progress_.find(to);
  if (role_ != Role::kLeader || it == progress_.end()) return;
  if (it->second.state == ProgressState::kReplicate) it->second.become_probe();
}

void Raft::on_persisted(LogIndex index, Term term) {
  if (role_ != Role::kLeader) return;
  // Only entries of our own log that are now durable count towards commitment.
  if (log_.term_or_zero(index) != term) return;
  Progress& self = progress_.at(id_);
  if (self.maybe_update(index) && maybe_commit()) broadcast_append();
}

void Raft::on_applied(const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  log_.applied_to(entries.back().index);
  if (role_ == Role::kLeader) {
    uint64_t bytes = 0;
    for (const Entry& e : entries)
      if (e.term == term_) bytes += e.data.size();
    uncommitted_bytes_ = bytes >= uncommitted_bytes_ ? 0 : uncommitted_bytes_ - bytes;
  }
}

// ---------------------------------------------------------------------------------------------
// Invariants

void Raft::check_invariants() const {
  log_.check_invariants();
  BALSA_ASSERT(term_ >= checked_term_, "term went back from {} to {}", checked_term_.value,
               term_.value);
  BALSA_ASSERT(log_.committed() >= checked_commit_, "commit went back from {} to {}",
               checked_commit_.value, log_.committed().value);
  checked_term_ = term_;
  checked_commit_ = log_.committed();
  BALSA_ASSERT(log_.last_term() <= term_, "last log term {} above current term {}",
               log_.last_term().value, term_.value);
  switch (role_) {
    case Role::kLeader:
      BALSA_ASSERT(lead_ == id_ && vote_ == id_, "leader {} has lead {} vote {}", id_.value,
                   lead_.value, vote_.value);
      for (const auto& [id, pr] : progress_) {
        BALSA_ASSERT(pr.match < pr.next, "progress of {}: match {} next {}", id.value,
                     pr.match.value, pr.next.value);
        BALSA_ASSERT(pr.match <= log_.last_index(), "progress of {}: match {} beyond last {}",
                     id.value, pr.match.value, log_.last_index().value);
      }
      break;
    case Role::kCandidate:
      BALSA_ASSERT(vote_ == id_, "candidate {} voted for {}", id_.value, vote_.value);
      break;
    case Role::kPreCandidate:
    case Role::kFollower:
      BALSA_ASSERT(lead_ != id_, "non-leader {} names itself leader", id_.value);
      break;
  }
}

}  // namespace balsa
