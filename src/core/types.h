// Vocabulary types of the Raft core: terms, indexes, node ids, log entries, the durable hard
// state, cluster configuration, snapshot metadata and the messages nodes exchange.
//
// Everything here is a plain value: no I/O, no clocks, no allocation beyond std containers.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace balsa {

// A strongly typed unsigned integer: a Term cannot be passed where a LogIndex is expected.
template <typename Tag>
struct StrongU64 {
  uint64_t value = 0;

  constexpr StrongU64() = default;
  constexpr explicit StrongU64(uint64_t v) : value(v) {}

  constexpr auto operator<=>(const StrongU64&) const = default;
  constexpr StrongU64 operator+(uint64_t n) const { return StrongU64(value + n); }
  constexpr StrongU64 operator-(uint64_t n) const { return StrongU64(value - n); }
  constexpr uint64_t operator-(StrongU64 o) const { return value - o.value; }
  constexpr StrongU64& operator++() { ++value; return *this; }
  constexpr StrongU64& operator+=(uint64_t n) { value += n; return *this; }
  friend std::ostream& operator<<(std::ostream& os, StrongU64 s) { return os << s.value; }
};

struct TermTag {};
struct LogIndexTag {};
struct NodeIdTag {};
using Term = StrongU64<TermTag>;
using LogIndex = StrongU64<LogIndexTag>;
using NodeId = StrongU64<NodeIdTag>;

// NodeId 0 means "none": no vote cast, no known leader.
inline constexpr NodeId kNoNode{0};

enum class EntryType : uint8_t {
  kNormal = 0,      // a user command (may be empty: the leader's no-op on election)
  kConfChange = 1,  // data is an encoded ConfChange
};

struct Entry {
  Term term;
  LogIndex index;
  EntryType type = EntryType::kNormal;
  std::string data;

  // Bytes this entry counts for in flow-control and size limits.
  size_t payload_bytes() const { return data.size() + 24; }
  bool operator==(const Entry&) const = default;
};

// State that must be durable before any message that depends on it leaves the node.
// Invariant: term never decreases; vote is kNoNode or a node voted for in `term`.
struct HardState {
  Term term;
  NodeId vote = kNoNode;
  LogIndex commit;
  bool operator==(const HardState&) const = default;
  bool empty() const { return *this == HardState{}; }
};

// The cluster membership. Voters decide elections and commits; learners only receive the log.
// During a joint configuration (voters_outgoing non-empty) decisions need a majority of both
// `voters` (the incoming half) and `voters_outgoing`. Witnesses are voters (of either half) that
// keep only the log's terms and indexes, never the commands or the state machine, and never lead.
// Every id list is kept sorted; a node is in at most one of voters/learners, and witnesses is a
// subset of voters + voters_outgoing.
struct ConfState {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;
  std::vector<NodeId> voters_outgoing;
  std::vector<NodeId> witnesses;
  bool auto_leave = false;  // joint: the leader leaves it by itself once it commits
  bool joint() const { return !voters_outgoing.empty(); }
  bool operator==(const ConfState&) const = default;
};

// One membership change. kAddVoter adds a new voter; kPromote turns a learner into a voter;
// kAddWitness adds a new witness voter; kRemoveNode removes any member.
enum class ConfChangeType : uint8_t {
  kAddVoter = 0,
  kAddLearner = 1,
  kRemoveNode = 2,
  kPromote = 3,
  kAddWitness = 4,
};
inline constexpr int kConfChangeTypeCount = 5;
const char* to_string(ConfChangeType t);

struct ConfChange {
  ConfChangeType type = ConfChangeType::kAddVoter;
  NodeId node;
  bool operator==(const ConfChange&) const = default;
};

// What a caller asks for: one or more changes applied at once. A set that changes at most one
// voter is applied directly (a single-server change) unless `joint` is set; anything larger goes
// through a joint configuration. An empty set means "leave the joint configuration".
struct ConfChangeSet {
  std::vector<ConfChange> changes;
  bool joint = false;
  bool operator==(const ConfChangeSet&) const = default;
};

// What an EntryType::kConfChange entry carries: the request and the configuration it produces.
// Every member adopts `result` as soon as the entry is in its log (thesis §4.1), so a follower
// never recomputes (or disagrees about) a configuration.
struct ConfEntry {
  ConfChangeSet request;
  ConfState result;
  bool operator==(const ConfEntry&) const = default;
};

struct SnapshotMetadata {
  LogIndex index;  // last log index the snapshot covers
  Term term;       // term of that entry
  ConfState conf;  // configuration as of `index`
  bool operator==(const SnapshotMetadata&) const = default;
};

struct Snapshot {
  SnapshotMetadata metadata;
  std::string data;  // the state machine's image (the runtime may stream it instead)
  bool empty() const { return metadata.index == LogIndex{0}; }
  bool operator==(const Snapshot&) const = default;
};

enum class MessageType : uint8_t {
  kApp = 0,               // AppendEntries (leader -> follower)
  kAppResp = 1,           // its reply
  kVote = 2,              // RequestVote
  kVoteResp = 3,
  kPreVote = 4,           // pre-vote probe: would you vote for me in term+1?
  kPreVoteResp = 5,
  kHeartbeat = 6,         // leader -> follower, carries commit bounded by the follower's match
  kHeartbeatResp = 7,
  kSnap = 8,              // InstallSnapshot
  kProp = 9,              // a proposal forwarded from a follower to the leader
  kReadIndex = 10,        // a read-index request forwarded to the leader
  kReadIndexResp = 11,
  kTimeoutNow = 12,       // leadership transfer: start an election now
  kTransferLeader = 13,   // ask the leader to transfer leadership to `from`
};
inline constexpr int kMessageTypeCount = 14;
const char* to_string(MessageType t);

// One message between nodes. Fields are used per type as documented; unused fields stay zero.
struct Message {
  MessageType type = MessageType::kApp;
  NodeId from;
  NodeId to;
  Term term;              // sender's term (0 for local/forwarded messages that carry none)
  LogIndex index;         // kApp: prev index; kAppResp: match or rejected index; kVote: last index
  Term log_term;          // kApp: prev term; kVote: last term; kAppResp reject: conflict term
  std::vector<Entry> entries;
  LogIndex commit;        // kApp/kHeartbeat: leader commit (bounded for heartbeats)
  bool reject = false;
  LogIndex reject_hint;   // kAppResp reject: first index of the conflicting term, or last index + 1
  Snapshot snapshot;      // kSnap
  std::string context;    // kReadIndex / kHeartbeat: read request id carried through the quorum round
  bool operator==(const Message&) const = default;
};

}  // namespace balsa

template <typename Tag>
struct std::hash<balsa::StrongU64<Tag>> {
  size_t operator()(balsa::StrongU64<Tag> s) const noexcept { return std::hash<uint64_t>{}(s.value); }
};
