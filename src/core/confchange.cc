#include "core/confchange.h"

#include <algorithm>

namespace balsa {

const char* to_string(ConfError e) {
  switch (e) {
    case ConfError::kOk: return "ok";
    case ConfError::kInvalidNode: return "invalid node id 0";
    case ConfError::kDuplicateNode: return "node named twice in one change";
    case ConfError::kAlreadyMember: return "member already exists";
    case ConfError::kUnknownMember: return "member not found";
    case ConfError::kNotLearner: return "can only promote a learner member";
    case ConfError::kNoVoterLeft: return "change would leave no voter that can lead";
    case ConfError::kAlreadyJoint: return "joint configuration not left yet";
    case ConfError::kNotJoint: return "configuration is not joint";
    case ConfError::kEmptyChange: return "change set is empty";
    case ConfError::kNotLeader: return "not leader";
    case ConfError::kChangeInFlight: return "a configuration change is still pending";
    case ConfError::kLearnerBehind: return "can only promote a learner member which is in sync with leader";
    case ConfError::kTransferring: return "leadership transfer in progress";
    case ConfError::kBusy: return "too many uncommitted entries";
  }
  return "?";
}

namespace confchange {
namespace {

bool has(const std::vector<NodeId>& v, NodeId id) { return std::binary_search(v.begin(), v.end(), id); }

void insert(std::vector<NodeId>& v, NodeId id) {
  auto it = std::lower_bound(v.begin(), v.end(), id);
  if (it == v.end() || *it != id) v.insert(it, id);
}

void erase(std::vector<NodeId>& v, NodeId id) {
  auto it = std::lower_bound(v.begin(), v.end(), id);
  if (it != v.end() && *it == id) v.erase(it);
}

bool sorted_unique(const std::vector<NodeId>& v) {
  return std::adjacent_find(v.begin(), v.end(), [](NodeId a, NodeId b) { return a >= b; }) == v.end();
}

// A half can elect a leader only if it has a voter that is not a witness.
bool can_lead(const std::vector<NodeId>& half, const std::vector<NodeId>& witnesses) {
  return std::any_of(half.begin(), half.end(), [&](NodeId id) { return !has(witnesses, id); });
}

// Applies the changes to `voters` (the incoming half) and `learners`; `outgoing` (if joint) is
// read-only. Membership tests look at the configuration as it was before the set.
ConfError apply_changes(const ConfState& before, const std::vector<ConfChange>& changes, ConfState* out) {
  std::vector<NodeId> seen;
  for (const ConfChange& cc : changes) {
    if (cc.node == kNoNode) return ConfError::kInvalidNode;
    if (has(seen, cc.node)) return ConfError::kDuplicateNode;
    insert(seen, cc.node);
    const bool voter = has(before.voters, cc.node) || has(before.voters_outgoing, cc.node);
    const bool learner = has(before.learners, cc.node);
    switch (cc.type) {
      case ConfChangeType::kAddVoter:
      case ConfChangeType::kAddWitness:
      case ConfChangeType::kAddLearner:
        if (voter || learner) return ConfError::kAlreadyMember;
        if (cc.type == ConfChangeType::kAddLearner) {
          insert(out->learners, cc.node);
        } else {
          insert(out->voters, cc.node);
          if (cc.type == ConfChangeType::kAddWitness) insert(out->witnesses, cc.node);
        }
        break;
      case ConfChangeType::kPromote:
        if (!voter && !learner) return ConfError::kUnknownMember;
        if (!learner) return ConfError::kNotLearner;
        erase(out->learners, cc.node);
        insert(out->voters, cc.node);
        break;
      case ConfChangeType::kRemoveNode:
        if (!voter && !learner) return ConfError::kUnknownMember;
        erase(out->voters, cc.node);
        erase(out->learners, cc.node);
        break;
    }
  }
  return ConfError::kOk;
}

// Drops witness marks of nodes that are no longer voters of either half.
void prune_witnesses(ConfState* c) {
  std::erase_if(c->witnesses, [&](NodeId id) { return !has(c->voters, id) && !has(c->voters_outgoing, id); });
}

}  // namespace

size_t voter_delta(const ConfState& a, const ConfState& b) {
  std::vector<NodeId> diff;
  std::set_symmetric_difference(a.voters.begin(), a.voters.end(), b.voters.begin(), b.voters.end(),
                                std::back_inserter(diff));
  return diff.size();
}

ConfError validate(const ConfState& c) {
  for (const auto* v : {&c.voters, &c.learners, &c.voters_outgoing, &c.witnesses})
    if (!sorted_unique(*v) || (!v->empty() && v->front() == kNoNode)) return ConfError::kInvalidNode;
  for (NodeId id : c.learners)
    if (has(c.voters, id) || has(c.voters_outgoing, id)) return ConfError::kDuplicateNode;
  for (NodeId id : c.witnesses)
    if (!has(c.voters, id) && !has(c.voters_outgoing, id)) return ConfError::kUnknownMember;
  if (!can_lead(c.voters, c.witnesses)) return ConfError::kNoVoterLeft;
  if (c.joint() && !can_lead(c.voters_outgoing, c.witnesses)) return ConfError::kNoVoterLeft;
  if (!c.joint() && c.auto_leave) return ConfError::kNotJoint;
  return ConfError::kOk;
}

ConfResult apply(const ConfState& current, const ConfChangeSet& set) {
  ConfResult r;
  if (set.changes.empty()) {
    if (set.joint) {
      r.error = ConfError::kEmptyChange;
      return r;
    }
    // Leave the joint configuration: the incoming half is all that remains.
    if (!current.joint()) {
      r.error = ConfError::kNotJoint;
      return r;
    }
    r.conf = current;
    r.conf.voters_outgoing.clear();
    r.conf.auto_leave = false;
    prune_witnesses(&r.conf);
    r.error = validate(r.conf);
    return r;
  }
  if (current.joint()) {
    r.error = ConfError::kAlreadyJoint;
    return r;
  }
  ConfState next = current;
  if (ConfError e = apply_changes(current, set.changes, &next); e != ConfError::kOk) {
    r.error = e;
    return r;
  }
  if (set.joint || voter_delta(current, next) > 1) {
    next.voters_outgoing = current.voters;
    next.auto_leave = true;
  }
  prune_witnesses(&next);
  if (ConfError e = validate(next); e != ConfError::kOk) {
    r.error = e;
    return r;
  }
  r.conf = std::move(next);
  return r;
}

std::string describe(const ConfState& c) {
  auto list = [](const std::vector<NodeId>& v) {
    std::string s;
    for (NodeId id : v) s += (s.empty() ? "" : " ") + std::to_string(id.value);
    return "[" + s + "]";
  };
  std::string s = "voters=" + list(c.voters);
  if (c.joint()) s += " outgoing=" + list(c.voters_outgoing) + (c.auto_leave ? " auto-leave" : "");
  if (!c.learners.empty()) s += " learners=" + list(c.learners);
  if (!c.witnesses.empty()) s += " witnesses=" + list(c.witnesses);
  return s;
}

}  // namespace confchange
}  // namespace balsa
