// The Raft consensus state machine (Ongaro & Ousterhout, "In Search of an Understandable
// Consensus Algorithm", and Ongaro's thesis), as a deterministic single-threaded object.
//
// It owns no clock, thread, socket, file or global RNG. Time advances by tick(); messages
// arrive by step(); every effect (persist, send, apply) is queued and handed out by RawNode's
// Ready. Messages that depend on state not yet durable (votes, append acks) are queued
// separately and must only be sent once the Ready that produced them has been persisted.
#pragma once

#include <deque>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/conf_log.h"
#include "core/confchange.h"
#include "core/progress.h"
#include "core/raft_log.h"
#include "core/read_only.h"
#include "core/rng.h"
#include "core/storage.h"
#include "core/tracker.h"
#include "core/types.h"

namespace balsa {

// Context of a snapshot message sent to a witness: metadata only, no state-machine image.
inline constexpr const char* kWitnessSnapshot = "balsa-witness-snapshot";

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };
const char* to_string(Role r);

// Negative controls: classic bugs the simulator must catch. Never set outside tests.
enum class PlantedBug : uint8_t {
  kNone,
  kCommitPreviousTerm,   // count replicas of a previous-term entry to commit it (Figure 8)
  kVoteWithoutLogCheck,  // grant votes without the §5.4.1 up-to-date check
  kConfOnCommit,         // a configuration takes effect when committed, not when appended
  kLeaseWithoutQuorum,   // serve lease reads without a quorum-acknowledged heartbeat round
};

struct Config {
  NodeId id;
  // Initial voters (including id) when storage holds no configuration yet (a new cluster).
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;
  std::vector<NodeId> witnesses;  // subset of voters
  // A node joining an existing cluster: starts with no configuration and learns it from the
  // leader's log or snapshot (voters/learners must then be empty).
  bool join = false;

  int election_ticks = 10;   // election timeout is randomized in [election_ticks, 2*election_ticks)
  int heartbeat_ticks = 1;   // leader heartbeat interval
  LogIndex applied;          // last index the state machine applied (on restart)

  uint64_t max_msg_bytes = 1 << 20;          // entry payload bytes per append message
  size_t max_inflight_msgs = 256;            // per follower, in replicate state
  uint64_t max_inflight_bytes = 32ull << 20; // per follower; 0 = bounded by count only
  uint64_t max_uncommitted_bytes = 0;        // leader refuses proposals past this; 0 = no limit
  uint64_t max_apply_bytes = 64ull << 20;    // committed entry bytes per Ready

  bool pre_vote = true;
  bool check_quorum = true;
  bool forward_proposals = true;  // false: a follower refuses proposals with a leader hint

  // Lease reads (thesis §6.4.1). Off by default: ReadIndex needs no clock assumption. When on,
  // the leader serves read_lease() from its own state for election_ticks - lease_drift_ticks
  // ticks after the start of a heartbeat round a quorum acknowledged; requires check_quorum.
  // A node also refuses votes for an election timeout after it starts (it may have acked a
  // lease before a crash).
  bool lease_reads = false;
  int lease_drift_ticks = 2;  // bound on how many ticks any two clocks drift apart per timeout

  // A learner is promoted only when its log is within this many entries of the leader's.
  uint64_t promotion_max_lag = 64;

  uint64_t seed = 0;  // seeds election-timeout randomization
  PlantedBug planted_bug = PlantedBug::kNone;
  bool debug_invariants = false;  // run the full invariant check after every step
};

struct ReadState {
  LogIndex index;       // serve the read once applied >= index
  std::string context;  // the caller's request id
  bool operator==(const ReadState&) const = default;
};

enum class ProposeStatus : uint8_t {
  kAppended,   // appended at [first_index, first_index + n) in `term`: watch those indexes apply
  kForwarded,  // sent to the leader; its outcome shows up only when applied
  kNotLeader,  // refused: not the leader (leader hint in `leader`, kNoNode if unknown)
  kDropped,    // refused: leadership transfer in progress or too many uncommitted bytes
};
const char* to_string(ProposeStatus s);

struct ProposeResult {
  ProposeStatus status = ProposeStatus::kDropped;
  LogIndex first_index;
  Term term;
  NodeId leader = kNoNode;
};

// Outcome of proposing a configuration change. On success the entry is at (index, term) and
// `conf` is the configuration it produces (already in effect on the leader); it is done when
// that index commits (for a joint change: when the automatic leave entry after it commits).
struct ConfProposeResult {
  ConfError error = ConfError::kOk;
  LogIndex index;
  Term term;
  ConfState conf;
  NodeId leader = kNoNode;
  bool ok() const { return error == ConfError::kOk; }
};

enum class ReadStatus : uint8_t {
  kServed,     // lease read: a ReadState at the commit index is in the next Ready
  kPending,    // ReadIndex: a ReadState follows once a quorum confirmed leadership
  kNotLeader,  // lease read asked of a non-leader, or ReadIndex with no known leader
  kNoLease,    // lease reads off, check_quorum off, lease expired or not yet earned
};
const char* to_string(ReadStatus s);

// Messages the core refused, by reason: bad input is counted, never a crash.
struct CoreStats {
  uint64_t stale_term = 0;      // from an older term
  uint64_t invalid = 0;         // internally inconsistent or impossible
  uint64_t non_member = 0;      // from a node outside the configuration
  uint64_t dropped_proposals = 0;
  uint64_t dropped_reads = 0;
  uint64_t leader_changes = 0;
  uint64_t conf_changes = 0;    // configurations that took effect (appended)
  uint64_t conf_rollbacks = 0;  // configurations undone because their entry was truncated
  uint64_t lease_reads = 0;     // reads served from the lease
};

class Raft {
 public:
  Raft(const Config& config, const Storage* storage);

  void tick();
  void step(const Message& m);
  ProposeResult propose(std::vector<std::string> commands);
  // Proposes a membership change (leader only). Refused with a typed error, changing nothing,
  // if it is illegal or cannot be proposed now.
  ConfProposeResult propose_conf_change(const ConfChangeSet& changes);
  // Asks for a linearizable read point. Returns false if it cannot be served now (no leader).
  bool read_index(std::string context);
  // A lease read: served at once by a leader whose lease holds (kServed), else refused.
  ReadStatus read_lease(std::string context);
  bool lease_valid() const;
  // Starts a transfer to `target` (leader), or asks the leader for one to us (target == id).
  // Returns false if refused (target not a voter that can lead, no leader known).
  bool transfer_leadership(NodeId target);
  void report_snapshot(NodeId to, bool ok);
  void report_unreachable(NodeId to);
  // The runtime persisted everything up to (index, term): lets the leader count itself.
  void on_persisted(LogIndex index, Term term);
  // The runtime handed these committed entries to the state machine.
  void on_applied(const std::vector<Entry>& entries);

  NodeId id() const { return id_; }
  Term term() const { return term_; }
  NodeId vote() const { return vote_; }
  NodeId leader() const { return lead_; }
  Role role() const { return role_; }
  HardState hard_state() const { return {term_, vote_, log_.committed()}; }
  const RaftLog& log() const { return log_; }
  RaftLog& log() { return log_; }
  const CoreStats& stats() const { return stats_; }
  // The active configuration (the newest in the log).
  const ConfState& conf() const { return tracker_.conf(); }
  // The configuration in effect at `index` (for a snapshot taken there).
  const ConfState& conf_at(LogIndex index) const { return confs_.at(index); }
  // Index of the newest configuration entry (0: none since the base) and whether it committed.
  LogIndex conf_index() const { return confs_.latest_index(); }
  bool conf_pending() const { return confs_.latest_index() > log_.committed(); }
  const ProgressTracker& tracker() const { return tracker_; }
  const std::unordered_map<NodeId, Progress>& progress() const { return tracker_.all(); }
  bool is_witness() const { return tracker_.is_witness(id_); }
  NodeId transferee() const { return lead_transferee_; }

  // Outboxes drained by RawNode.
  std::vector<Message> take_messages() { return std::exchange(msgs_, {}); }
  std::vector<Message> take_messages_after_persist() { return std::exchange(msgs_after_persist_, {}); }
  std::vector<ReadState> take_read_states() { return std::exchange(read_states_, {}); }
  bool has_outbox() const {
    return !msgs_.empty() || !msgs_after_persist_.empty() || !read_states_.empty();
  }

  void check_invariants() const;

 private:
  enum class CampaignType : uint8_t { kPreElection, kElection, kTransfer };

  // Role transitions.
  void become_follower(Term term, NodeId lead);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void campaign(CampaignType type);
  void reset(Term term);
  void reset_randomized_election_timeout();

  // Per-role message handling (after term bookkeeping in step()).
  void step_leader(const Message& m);
  void step_candidate(const Message& m);
  void step_follower(const Message& m);
  void handle_vote_request(const Message& m);
  void handle_append(const Message& m);
  void handle_heartbeat(const Message& m);
  void handle_snapshot(const Message& m);
  void handle_append_response(const Message& m, Progress& pr);
  void handle_heartbeat_response(const Message& m, Progress& pr);
  void handle_read_index_request(NodeId from, std::string context);
  void tick_election();
  void tick_heartbeat();

  // Leader replication.
  bool send_append(NodeId to, bool send_if_empty);
  void send_append_all(NodeId to);
  void broadcast_append();
  void broadcast_heartbeat(const std::string& context);
  bool maybe_commit();
  bool append_entries(std::vector<Entry>* entries);
  bool committed_entry_in_current_term() const;

  // Configuration.
  void init_conf(const Config& config, const Storage& storage);
  void apply_conf(const ConfState& cs);
  // Brings the active configuration in line with the log after entries were appended or
  // truncated; returns true if it changed.
  bool sync_conf(const std::vector<Entry>& appended, LogIndex floor);
  void record_conf_entry(const Entry& e);
  void after_commit();
  bool is_voter(NodeId id) const { return tracker_.is_voter(id); }
  bool is_member(NodeId id) const { return tracker_.is_member(id); }
  bool promotable() const { return is_voter(id_) && !tracker_.is_witness(id_); }
  LogIndex match_of(NodeId id) const;
  int lease_ticks() const { return cfg_.election_ticks - cfg_.lease_drift_ticks; }
  void serve_reads(std::vector<ReadIndexQueue::Read> reads);

  void send(Message m);
  int poll(NodeId from, MessageType type, bool granted);

  const NodeId id_;
  const Config cfg_;
  Rng rng_;

  Term term_;
  NodeId vote_ = kNoNode;
  NodeId lead_ = kNoNode;
  Role role_ = Role::kFollower;
  RaftLog log_;

  ProgressTracker tracker_;
  ConfLog confs_;

  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;
  NodeId lead_transferee_ = kNoNode;
  uint64_t uncommitted_bytes_ = 0;

  uint64_t now_ = 0;  // ticks since start: the lease's clock
  ReadIndexQueue reads_;
  Lease lease_;

  std::vector<Message> msgs_;
  std::vector<Message> msgs_after_persist_;
  std::vector<ReadState> read_states_;
  CoreStats stats_;

  // For the debug invariant check: values that must never go back.
  mutable Term checked_term_;
  mutable LogIndex checked_commit_;
};

}  // namespace balsa
