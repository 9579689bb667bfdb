// Quorum arithmetic, kept pure so it can be table-tested and compared with a naive model.
#pragma once

#include <functional>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/types.h"

namespace balsa::quorum {

enum class VoteResult : uint8_t { kPending, kLost, kWon };

// The largest index acknowledged by a majority of `voters`; `acked(id)` gives each voter's
// acknowledged index (0 if unknown). An empty configuration returns nullopt: it imposes no
// constraint (used for the absent half of a non-joint config).
std::optional<LogIndex> majority_index(const std::vector<NodeId>& voters,
                                       const std::function<LogIndex(NodeId)>& acked);

// Joint consensus: both halves must agree; the result is the smaller of the two.
LogIndex joint_index(const std::vector<NodeId>& incoming, const std::vector<NodeId>& outgoing,
                     const std::function<LogIndex(NodeId)>& acked);

// Election result from votes cast (true = granted). Missing voters count as pending.
VoteResult majority_vote(const std::vector<NodeId>& voters,
                         const std::unordered_map<NodeId, bool>& votes);
VoteResult joint_vote(const std::vector<NodeId>& incoming, const std::vector<NodeId>& outgoing,
                      const std::unordered_map<NodeId, bool>& votes);

// Is a set of nodes (e.g. recently active ones) a quorum of the configuration?
bool has_quorum(const std::vector<NodeId>& incoming, const std::vector<NodeId>& outgoing,
                const std::function<bool(NodeId)>& member);

}  // namespace balsa::quorum
