#include "core/quorum.h"

#include <algorithm>

namespace balsa::quorum {

std::optional<LogIndex> majority_index(const std::vector<NodeId>& voters,
                                       const std::function<LogIndex(NodeId)>& acked) {
  if (voters.empty()) return std::nullopt;
  // Small clusters are the norm: a stack array avoids an allocation on the commit path.
  constexpr size_t kInline = 16;
  LogIndex inline_buf[kInline];
  std::vector<LogIndex> heap;
  LogIndex* idx = inline_buf;
  if (voters.size() > kInline) {
    heap.resize(voters.size());
    idx = heap.data();
  }
  for (size_t i = 0; i < voters.size(); ++i) idx[i] = acked(voters[i]);
  std::sort(idx, idx + voters.size(), std::greater<>());
  // With n voters a majority is n/2+1: the (n/2+1)-th largest index is on a majority.
  return idx[voters.size() / 2];
}

LogIndex joint_index(const std::vector<NodeId>& incoming, const std::vector<NodeId>& outgoing,
                     const std::function<LogIndex(NodeId)>& acked) {
  auto a = majority_index(incoming, acked);
  auto b = majority_index(outgoing, acked);
  if (!a && !b) return LogIndex{0};
  if (!a) return *b;
  if (!b) return *a;
  return std::min(*a, *b);
}

VoteResult majority_vote(const std::vector<NodeId>& voters,
                         const std::unordered_map<NodeId, bool>& votes) {
  if (voters.empty()) return VoteResult::kWon;
  size_t granted = 0, rejected = 0;
  for (NodeId v : voters) {
    auto it = votes.find(v);
    if (it == votes.end()) continue;
    (it->second ? granted : rejected)++;
  }
  const size_t q = voters.size() / 2 + 1;
  if (granted >= q) return VoteResult::kWon;
  if (voters.size() - rejected < q) return VoteResult::kLost;
  return VoteResult::kPending;
}

VoteResult joint_vote(const std::vector<NodeId>& incoming, const std::vector<NodeId>& outgoing,
                      const std::unordered_map<NodeId, bool>& votes) {
  const VoteResult a = majority_vote(incoming, votes);
  const VoteResult b = majority_vote(outgoing, votes);
  if (a == b) return a;
  if (a == VoteResult::kLost || b == VoteResult::kLost) return VoteResult::kLost;
  return VoteResult::kPending;
}

bool has_quorum(const std::vector<NodeId>& incoming, const std::vector<NodeId>& outgoing,
                const std::function<bool(NodeId)>& member) {
  std::unordered_map<NodeId, bool> votes;
  for (const auto* set : {&incoming, &outgoing})
    for (NodeId id : *set) votes[id] = member(id);
  return joint_vote(incoming, outgoing, votes) == VoteResult::kWon;
}

}  // namespace balsa::quorum
