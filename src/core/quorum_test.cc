// Table tests for quorum arithmetic, and a quick-check against a deliberately naive model.
#include "core/quorum.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "core/rng.h"

namespace balsa::quorum {
namespace {

std::vector<NodeId> ids(std::initializer_list<uint64_t> v) {
  std::vector<NodeId> out;
  for (uint64_t x : v) out.push_back(NodeId{x});
  return out;
}

std::function<LogIndex(NodeId)> acks(std::map<uint64_t, uint64_t> m) {
  return [m = std::move(m)](NodeId id) {
    auto it = m.find(id.value);
    return it == m.end() ? LogIndex{0} : LogIndex{it->second};
  };
}

std::unordered_map<NodeId, bool> votes(std::map<uint64_t, bool> m) {
  std::unordered_map<NodeId, bool> out;
  for (auto [k, v] : m) out[NodeId{k}] = v;
  return out;
}

TEST(Quorum, MajorityIndex) {
  struct Case {
    std::vector<NodeId> voters;
    std::map<uint64_t, uint64_t> acked;
    std::optional<uint64_t> want;
  };
  const Case cases[] = {
      {{}, {}, std::nullopt},
      {ids({1}), {}, 0},
      {ids({1}), {{1, 5}}, 5},
      {ids({1, 2}), {{1, 5}, {2, 3}}, 3},  // both needed
      {ids({1, 2, 3}), {{1, 5}, {2, 3}, {3, 1}}, 3},
      {ids({1, 2, 3}), {{1, 5}}, 0},
      {ids({1, 2, 3}), {{1, 5}, {2, 5}}, 5},
      {ids({1, 2, 3, 4}), {{1, 5}, {2, 4}, {3, 3}, {4, 2}}, 3},  // 3 of 4
      {ids({1, 2, 3, 4}), {{1, 9}, {2, 9}}, 0},                  // half is not a majority
      {ids({1, 2, 3, 4, 5}), {{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}}, 3},
      {ids({1, 2, 3, 4, 5}), {{1, 7}, {2, 7}, {3, 7}, {9, 100}}, 7},  // non-voters don't count
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(testing::Message() << tc.voters.size() << " voters");
    auto got = majority_index(tc.voters, acks(tc.acked));
    ASSERT_EQ(got.has_value(), tc.want.has_value());
    if (got) {
      EXPECT_EQ(got->value, *tc.want);
    }
  }
  // Larger than the inline buffer: 20 voters, acks 1..20, majority (11) holds >= 10.
  std::vector<NodeId> many;
  std::map<uint64_t, uint64_t> m;
  for (uint64_t k = 1; k <= 20; ++k) {
    many.push_back(NodeId{k});
    m[k] = k;
  }
  EXPECT_EQ(majority_index(many, acks(m)), LogIndex{10});
}

TEST(Quorum, JointIndex) {
  struct Case {
    std::vector<NodeId> in, out;
    std::map<uint64_t, uint64_t> acked;
    uint64_t want;
  };
  const Case cases[] = {
      {{}, {}, {}, 0},
      {ids({1, 2, 3}), {}, {{1, 5}, {2, 4}, {3, 1}}, 4},
      {{}, ids({1, 2, 3}), {{1, 5}, {2, 4}, {3, 1}}, 4},
      {ids({1, 2, 3}), ids({3, 4, 5}), {{1, 9}, {2, 9}, {3, 2}, {4, 5}, {5, 1}}, 2},
      {ids({1, 2, 3}), ids({1, 2, 3}), {{1, 9}, {2, 8}, {3, 7}}, 8},
      {ids({1}), ids({2}), {{1, 9}, {2, 3}}, 3},
  };
  for (const Case& tc : cases) EXPECT_EQ(joint_index(tc.in, tc.out, acks(tc.acked)), LogIndex{tc.want});
}

TEST(Quorum, MajorityVote) {
  struct Case {
    std::vector<NodeId> voters;
    std::map<uint64_t, bool> cast;
    VoteResult want;
  };
  const Case cases[] = {
      {{}, {}, VoteResult::kWon},
      {ids({1}), {}, VoteResult::kPending},
      {ids({1}), {{1, true}}, VoteResult::kWon},
      {ids({1}), {{1, false}}, VoteResult::kLost},
      {ids({1, 2}), {{1, true}}, VoteResult::kPending},
      {ids({1, 2}), {{1, true}, {2, false}}, VoteResult::kLost},
      {ids({1, 2, 3}), {{1, true}, {2, true}}, VoteResult::kWon},
      {ids({1, 2, 3}), {{1, true}, {2, false}}, VoteResult::kPending},
      {ids({1, 2, 3}), {{2, false}, {3, false}}, VoteResult::kLost},
      {ids({1, 2, 3}), {{1, true}, {7, true}, {8, true}}, VoteResult::kPending},  // non-voters
      {ids({1, 2, 3, 4}), {{1, true}, {2, true}, {3, false}, {4, false}}, VoteResult::kLost},
      {ids({1, 2, 3, 4}), {{1, true}, {2, true}, {3, false}}, VoteResult::kPending},
      {ids({1, 2, 3, 4, 5}), {{1, true}, {2, true}, {3, true}}, VoteResult::kWon},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(testing::Message() << tc.voters.size() << " voters, " << tc.cast.size() << " cast");
    EXPECT_EQ(majority_vote(tc.voters, votes(tc.cast)), tc.want);
  }
}

TEST(Quorum, JointVote) {
  struct Case {
    std::vector<NodeId> in, out;
    std::map<uint64_t, bool> cast;
    VoteResult want;
  };
  const Case cases[] = {
      {ids({1, 2, 3}), {}, {{1, true}, {2, true}}, VoteResult::kWon},
      {ids({1, 2, 3}), ids({3, 4, 5}), {{1, true}, {2, true}}, VoteResult::kPending},
      {ids({1, 2, 3}), ids({3, 4, 5}), {{1, true}, {2, true}, {4, true}, {5, true}}, VoteResult::kWon},
      {ids({1, 2, 3}), ids({3, 4, 5}), {{1, true}, {2, true}, {4, false}, {5, false}}, VoteResult::kLost},
      {ids({1, 2, 3}), ids({3, 4, 5}), {{1, false}, {2, false}, {4, true}, {5, true}}, VoteResult::kLost},
      {ids({1, 2, 3}), ids({3, 4, 5}), {{1, false}, {2, false}}, VoteResult::kLost},
      {ids({1, 2, 3}), ids({3, 4, 5}), {{3, true}}, VoteResult::kPending},
      {ids({1, 2, 3}), ids({3, 4, 5}), {{3, true}, {1, true}, {4, true}}, VoteResult::kWon},
  };
  for (const Case& tc : cases) EXPECT_EQ(joint_vote(tc.in, tc.out, votes(tc.cast)), tc.want);
}

TEST(Quorum, HasQuorum) {
  struct Case {
    std::vector<NodeId> in, out;
    std::set<uint64_t> active;
    bool want;
  };
  const Case cases[] = {
      {ids({1}), {}, {1}, true},
      {ids({1, 2, 3}), {}, {1}, false},
      {ids({1, 2, 3}), {}, {1, 3}, true},
      {ids({1, 2, 3, 4}), {}, {1, 3}, false},
      {ids({1, 2, 3, 4}), {}, {1, 2, 3}, true},
      {ids({1, 2, 3}), ids({4, 5, 6}), {1, 2}, false},
      {ids({1, 2, 3}), ids({4, 5, 6}), {1, 2, 4, 5}, true},
      {ids({1, 2, 3}), ids({1, 2, 4}), {1, 2}, true},
      {ids({1, 2, 3}), {}, {4, 5, 6}, false},
  };
  for (const Case& tc : cases) {
    auto member = [&](NodeId id) { return tc.active.contains(id.value); };
    EXPECT_EQ(has_quorum(tc.in, tc.out, member), tc.want);
  }
}

// ---- Quick-check: the real code against models simple enough to be obviously right.

// The largest x such that more than half of the voters acked at least x.
uint64_t naive_majority_index(const std::vector<NodeId>& voters, const std::map<uint64_t, uint64_t>& acked) {
  uint64_t best = 0;
  for (uint64_t x = 0; x <= 64; ++x) {
    size_t n = 0;
    for (NodeId v : voters) {
      auto it = acked.find(v.value);
      if ((it == acked.end() ? 0 : it->second) >= x) ++n;
    }
    if (2 * n > voters.size()) best = x;
  }
  return best;
}

VoteResult naive_vote(const std::vector<NodeId>& voters, const std::map<uint64_t, bool>& cast) {
  if (voters.empty()) return VoteResult::kWon;
  size_t yes = 0, no = 0;
  for (NodeId v : voters) {
    auto it = cast.find(v.value);
    if (it == cast.end()) continue;
    (it->second ? yes : no)++;
  }
  if (2 * yes > voters.size()) return VoteResult::kWon;
  // Even if every missing voter said yes, no majority: lost.
  if (2 * (voters.size() - no) <= voters.size()) return VoteResult::kLost;
  return VoteResult::kPending;
}

TEST(Quorum, QuickCheckAgainstNaiveModel) {
  Rng rng(20240601);
  for (int iter = 0; iter < 20000; ++iter) {
    const size_t n = rng.below(20) + 1;  // 1..20 voters: covers the inline and heap paths
    std::vector<NodeId> voters;
    std::set<uint64_t> used;
    while (voters.size() < n) {
      const uint64_t id = rng.below(40) + 1;
      if (used.insert(id).second) voters.push_back(NodeId{id});
    }
    std::map<uint64_t, uint64_t> acked;
    std::map<uint64_t, bool> cast;
    for (uint64_t id = 1; id <= 40; ++id) {
      if (rng.chance(0.8)) acked[id] = rng.below(65);
      if (rng.chance(0.6)) cast[id] = rng.chance(0.5);
    }
    SCOPED_TRACE(iter);
    ASSERT_EQ(majority_index(voters, acks(acked))->value, naive_majority_index(voters, acked));
    ASSERT_EQ(majority_vote(voters, votes(cast)), naive_vote(voters, cast));
    // Joint: split the voters into two overlapping halves.
    std::vector<NodeId> in(voters.begin(), voters.begin() + static_cast<std::ptrdiff_t>((n + 1) / 2));
    std::vector<NodeId> out(voters.begin() + static_cast<std::ptrdiff_t>(n / 2), voters.end());
    const uint64_t want = std::min(naive_majority_index(in, acked), naive_majority_index(out, acked));
    ASSERT_EQ(joint_index(in, out, acks(acked)).value, want);
    const VoteResult a = naive_vote(in, cast), b = naive_vote(out, cast);
    const VoteResult want_vote = (a == VoteResult::kLost || b == VoteResult::kLost) ? VoteResult::kLost
                                 : (a == VoteResult::kWon && b == VoteResult::kWon) ? VoteResult::kWon
                                                                                   : VoteResult::kPending;
    ASSERT_EQ(joint_vote(in, out, votes(cast)), want_vote);
  }
}

}  // namespace
}  // namespace balsa::quorum
