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

#include "core/progress.h"
#include "core/raft_log.h"
#include "core/rng.h"
#include "core/storage.h"
#include "core/types.h"

namespace balsa {

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };
const char* to_string(Role r);

// Negative controls: classic bugs the simulator must catch. Never set outside tests.
enum class PlantedBug : uint8_t {
  kNone,
  kCommitPreviousTerm,   // count replicas of a previous-term entry to commit it (Figure 8)
  kVoteWithoutLogCheck,  // grant votes without the §5.4.1 up-to-date check
};

struct Config {
  NodeId id;
  // Initial voters (including id) when storage holds no configuration yet (a new cluster).
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;

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

// Messages the core refused, by reason: bad input is counted, never a crash.
struct CoreStats {
  uint64_t stale_term = 0;      // from an older term
  uint64_t invalid = 0;         // internally inconsistent or impossible
  uint64_t non_member = 0;      // from a node outside the configuration
  uint64_t dropped_proposals = 0;
  uint64_t dropped_reads = 0;
  uint64_t leader_changes = 0;
};

class Raft {
 public:
  Raft(const Config& config, const Storage* storage);

  void tick();
  void step(const Message& m);
  ProposeResult propose(std::vector<std::string> commands);
  // Asks for a linearizable read point. Returns false if it cannot be served now (no leader).
  bool read_index(std::string context);
  void transfer_leadership(NodeId target);
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
  const ConfState& conf() const { return conf_; }
  const std::unordered_map<NodeId, Progress>& progress() const { return progress_; }
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
  void release_reads(size_t upto);

  // Configuration.
  void apply_conf(const ConfState& cs);
  bool is_voter(NodeId id) const;
  bool is_member(NodeId id) const;
  bool promotable() const { return is_voter(id_); }
  bool quorum_active() const;
  LogIndex match_of(NodeId id) const;

  bool valid(const Message& m) const;
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

  ConfState conf_;
  std::unordered_map<NodeId, Progress> progress_;
  std::unordered_map<NodeId, bool> votes_;

  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;
  NodeId lead_transferee_ = kNoNode;
  uint64_t uncommitted_bytes_ = 0;

  // ReadIndex (thesis §6.4): reads waiting for a heartbeat quorum, in arrival order.
  struct PendingRead {
    LogIndex index;
    std::string context;
    NodeId from;
    std::set<NodeId> acks;
  };
  std::deque<PendingRead> pending_reads_;
  // Reads that arrived before the leader committed an entry of its own term.
  std::vector<std::pair<NodeId, std::string>> reads_before_commit_;

  std::vector<Message> msgs_;
  std::vector<Message> msgs_after_persist_;
  std::vector<ReadState> read_states_;
  CoreStats stats_;

  // For the debug invariant check: values that must never go back.
  mutable Term checked_term_;
  mutable LogIndex checked_commit_;
};

}  // namespace balsa
