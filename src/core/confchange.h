// Membership arithmetic, kept pure: a configuration and a set of changes in, the next
// configuration or a typed error out. Nothing is mutated and nothing here knows about logs,
// leaders or progress; the Raft core adds the checks that need those (one change in flight,
// learner catch-up, leadership).
//
//   simple:  at most one voter added or removed (plus any learner changes): applied directly.
//            Any two majorities of the old and new voter sets then intersect (thesis §4.1).
//   joint:   incoming = old voters with the changes applied, outgoing = old voters. Decisions
//            need a majority of both until the leader leaves the joint configuration.
//   leave:   an empty change set on a joint configuration drops the outgoing half.
#pragma once

#include <string>

#include "core/types.h"

namespace balsa {

enum class ConfError : uint8_t {
  kOk = 0,
  kInvalidNode,      // node id 0
  kDuplicateNode,    // the same node named twice in one change set
  kAlreadyMember,    // add of a node that is already a member
  kUnknownMember,    // remove or promote of a node that is not a member
  kNotLearner,       // promote of a member that is not a learner
  kNoVoterLeft,      // the change would leave a half with no voter that can lead
  kAlreadyJoint,     // a change while a joint configuration has not been left
  kNotJoint,         // leave of a configuration that is not joint
  kEmptyChange,      // a change set that asks for nothing (joint flag without changes)
  // Refusals that need the Raft state, produced by Raft::propose_conf_change:
  kNotLeader,        // proposed to a node that is not the leader
  kChangeInFlight,   // the previous configuration change has not committed yet
  kLearnerBehind,    // promote of a learner that is not caught up with the leader
  kTransferring,     // a leadership transfer is in progress
  kBusy,             // the leader refuses more uncommitted bytes for now
};
inline constexpr int kConfErrorCount = 15;
const char* to_string(ConfError e);

struct ConfResult {
  ConfError error = ConfError::kOk;
  ConfState conf;   // the next configuration when ok()
  bool ok() const { return error == ConfError::kOk; }
};

namespace confchange {

// Applies `changes` to `current`. Never mutates its inputs.
ConfResult apply(const ConfState& current, const ConfChangeSet& changes);

// Number of voters whose membership differs between a and b (incoming halves).
size_t voter_delta(const ConfState& a, const ConfState& b);

// Is `conf` well formed (sorted, disjoint, witnesses among voters, every half able to lead)?
ConfError validate(const ConfState& conf);

// A one-line human description, e.g. "voters=[1 2 3] outgoing=[1 2] learners=[4] witnesses=[3]".
std::string describe(const ConfState& conf);

}  // namespace confchange
}  // namespace balsa
