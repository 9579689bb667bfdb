// The Raft object: construction, role transitions, time, and message dispatch. Replication
// lives in raft_replication.cc, membership and the local API in raft_membership.cc; quorum
// arithmetic in tracker/quorum, configuration arithmetic in confchange, reads in read_only.
#include "core/raft.h"

#include <algorithm>

#include "core/assert.h"
#include "core/message_check.h"

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

const char* to_string(ReadStatus s) {
  switch (s) {
    case ReadStatus::kServed: return "served";
    case ReadStatus::kPending: return "pending";
    case ReadStatus::kNotLeader: return "not-leader";
    case ReadStatus::kNoLease: return "no-lease";
  }
  return "?";
}

namespace {
constexpr const char* kTransferContext = "balsa-transfer";

// A node just removed may still answer the leader (so it learns of its removal), and a leader
// that removed itself may still replicate and hand over until it steps down. Nothing else:
// a removed node never takes part in an election.
bool from_leader_role(MessageType t) {
  return t == MessageType::kApp || t == MessageType::kHeartbeat || t == MessageType::kSnap ||
         t == MessageType::kAppResp || t == MessageType::kHeartbeatResp;
}

bool departing_may_send(MessageType t) {
  switch (t) {
    case MessageType::kAppResp:
    case MessageType::kHeartbeatResp:
    case MessageType::kApp:
    case MessageType::kHeartbeat:
    case MessageType::kTimeoutNow:
      return true;
    default:
      return false;
  }
}
}  // namespace

Raft::Raft(const Config& config, const Storage* storage)
    : id_(config.id), cfg_(config), rng_(config.seed ^ (config.id.value * 0x9e3779b97f4a7c15ULL)),
      log_(storage, config.max_apply_bytes), tracker_(config.max_inflight_msgs, config.max_inflight_bytes) {
  BALSA_ASSERT(id_ != kNoNode, "node id 0 is reserved");
  BALSA_ASSERT(cfg_.election_ticks > cfg_.heartbeat_ticks && cfg_.heartbeat_ticks > 0,
               "election_ticks ({}) must exceed heartbeat_ticks ({}) > 0", cfg_.election_ticks,
               cfg_.heartbeat_ticks);
  BALSA_ASSERT(!cfg_.lease_reads || (cfg_.lease_drift_ticks >= 0 && cfg_.lease_drift_ticks < cfg_.election_ticks),
               "lease_drift_ticks ({}) must be in [0, election_ticks)", cfg_.lease_drift_ticks);
  const InitialState init = storage->initial_state();
  if (!init.hard_state.empty()) {
    BALSA_ASSERT(init.hard_state.commit <= log_.last_index(),
                 "durable commit {} beyond durable log {}", init.hard_state.commit.value,
                 log_.last_index().value);
    term_ = init.hard_state.term;
    vote_ = init.hard_state.vote;
    log_.commit_to(init.hard_state.commit);
  }
  init_conf(config, *storage);
  if (config.applied.value > 0) log_.applied_to(config.applied);
  become_follower(term_, kNoNode);
  checked_term_ = term_;
  checked_commit_ = log_.committed();
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
  tracker_.reset_votes();
  uncommitted_bytes_ = 0;
  // Reads in flight are lost with leadership; the runtime times them out and retries.
  stats_.dropped_reads += reads_.clear();
  lease_.new_term();
  tracker_.reset_progress(log_.last_index() + 1);
  // The leader's own entry counts only what is durable (thesis §10.2.1).
  if (Progress* self = tracker_.progress(id_)) self->match = log_.stable_last_index();
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
  tracker_.reset_votes();
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
  BALSA_ASSERT(promotable(), "node {} cannot lead ({})", id_.value, confchange::describe(conf()).c_str());
  reset(term_);
  role_ = Role::kLeader;
  lead_ = id_;
  stats_.leader_changes++;
  tracker_.progress(id_)->become_replicate();
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
  for (NodeId id : tracker_.voter_ids()) {
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
}

// Records a vote; returns 1 if the election is won, -1 if lost, 0 if pending.
int Raft::poll(NodeId from, MessageType, bool granted) {
  tracker_.record_vote(from, granted);
  switch (tracker_.tally()) {
    case quorum::VoteResult::kWon: return 1;
    case quorum::VoteResult::kLost: return -1;
    case quorum::VoteResult::kPending: return 0;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Time

void Raft::tick() {
  now_++;
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
      if (!tracker_.quorum_active(id_)) {
        become_follower(term_, kNoNode);
        return;
      }
      tracker_.reset_recent_active(id_);
    }
    lead_transferee_ = kNoNode;  // a transfer that did not finish in an election timeout is over
  }
  // A snapshot message that was lost would stall a follower forever: retry after a while.
  for (auto& [id, pr] : tracker_.all()) {
    if (pr.state == ProgressState::kSnapshot && ++pr.snapshot_ticks > 2u * cfg_.election_ticks) {
      pr.become_probe();
      send_append(id, true);
    }
  }
  if (heartbeat_elapsed_ >= cfg_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    broadcast_heartbeat(reads_.empty() ? std::string() : reads_.last_context());
  }
}

// ---------------------------------------------------------------------------------------------
// Messages

void Raft::send(Message m) {
  m.from = id_;
  // Requests forwarded to the leader carry no term: they are valid in whatever term it is.
  if (!termless(m.type) && m.term.value == 0) m.term = term_;
  (needs_persist(m.type) ? msgs_after_persist_ : msgs_).push_back(std::move(m));
}

void Raft::step(const Message& m) {
  if (m.to != id_ || m.from == id_) {
    stats_.invalid++;
    return;
  }
  // Elections and client traffic come only from members: a removed node cannot disrupt. The
  // leader's replication traffic is taken from anyone: our configuration may be stale (an
  // uncommitted entry that removed the leader, or one we have not received yet that added it),
  // and only the leader's appends can bring it up to date; Election Safety makes a leader of
  // its term legitimate whatever we think the members are. A node outside its own
  // configuration (joining, or removed) listens to anyone; it never votes or campaigns.
  if (!is_member(m.from) && is_member(id_) && !from_leader_role(m.type) &&
      !(tracker_.is_departing(m.from) && departing_may_send(m.type))) {
    stats_.non_member++;
    return;
  }
  if (!message_valid(m)) {
    stats_.invalid++;
    return;
  }

  if (m.term.value == 0) {
    // Forwarded requests (proposal, read index, transfer): no term bookkeeping.
  } else if (m.term > term_) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      // Leader stickiness (§4.2.3): while we hear from a live leader, ignore would-be
      // disruptors, unless the leader itself handed over (leadership transfer). With lease
      // reads, a node that just started also waits: before a crash it may have acked a lease.
      const bool forced = m.context == kTransferContext;
      const bool in_lease = cfg_.check_quorum && election_elapsed_ < cfg_.election_ticks &&
                            (lead_ != kNoNode || (cfg_.lease_reads && now_ < static_cast<uint64_t>(cfg_.election_ticks)));
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
  // Only voters vote (a witness does; a learner or removed node does not). The candidate counts
  // only voters of its own configuration in any case.
  if (can_vote && log_ok && is_voter(id_)) {
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
    case MessageType::kAppResp:
    case MessageType::kHeartbeatResp: {
      Progress* pr = tracker_.progress(m.from);
      if (!pr) {
        stats_.non_member++;  // a leader outside its own configuration hears anyone; not this
        return;
      }
      if (m.type == MessageType::kAppResp) {
        handle_append_response(m, *pr);
      } else {
        handle_heartbeat_response(m, *pr);
      }
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
  BALSA_ASSERT(confs_.latest_index() <= log_.last_index(), "configuration at {} beyond the log's last {}",
               confs_.latest_index().value, log_.last_index().value);
  if (cfg_.planted_bug != PlantedBug::kConfOnCommit)
    BALSA_ASSERT(tracker_.conf() == confs_.latest(), "active configuration is not the log's newest");
  switch (role_) {
    case Role::kLeader:
      BALSA_ASSERT(lead_ == id_ && vote_ == id_, "leader {} has lead {} vote {}", id_.value,
                   lead_.value, vote_.value);
      for (const auto& [id, pr] : tracker_.all()) {
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
