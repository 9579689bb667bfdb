// Table tests of the pure configuration arithmetic: every legal and illegal transition.
#include "core/confchange.h"

#include <gtest/gtest.h>

#include "core/codec.h"

namespace balsa {
namespace {

NodeId N(uint64_t v) { return NodeId{v}; }
std::vector<NodeId> L(std::initializer_list<uint64_t> v) {
  std::vector<NodeId> out;
  for (uint64_t x : v) out.push_back(N(x));
  return out;
}
ConfChange add(uint64_t n) { return {ConfChangeType::kAddVoter, N(n)}; }
ConfChange learner(uint64_t n) { return {ConfChangeType::kAddLearner, N(n)}; }
ConfChange witness(uint64_t n) { return {ConfChangeType::kAddWitness, N(n)}; }
ConfChange promote(uint64_t n) { return {ConfChangeType::kPromote, N(n)}; }
ConfChange remove(uint64_t n) { return {ConfChangeType::kRemoveNode, N(n)}; }

ConfState conf(std::initializer_list<uint64_t> voters, std::initializer_list<uint64_t> learners = {},
               std::initializer_list<uint64_t> witnesses = {}) {
  ConfState c;
  c.voters = L(voters);
  c.learners = L(learners);
  c.witnesses = L(witnesses);
  return c;
}
ConfState joint(std::initializer_list<uint64_t> in, std::initializer_list<uint64_t> out,
                std::initializer_list<uint64_t> learners = {}, std::initializer_list<uint64_t> witnesses = {}) {
  ConfState c = conf(in, learners, witnesses);
  c.voters_outgoing = L(out);
  c.auto_leave = true;
  return c;
}

struct Case {
  const char* name;
  ConfState from;
  ConfChangeSet changes;
  ConfError error;
  ConfState to;  // when error == kOk
};

TEST(ConfChange, Table) {
  const Case cases[] = {
      // Single-server changes: applied directly.
      {"add voter", conf({1, 2, 3}), {{add(4)}}, ConfError::kOk, conf({1, 2, 3, 4})},
      {"remove voter", conf({1, 2, 3}), {{remove(3)}}, ConfError::kOk, conf({1, 2})},
      {"remove leader-or-any voter to one left", conf({1, 2}), {{remove(1)}}, ConfError::kOk, conf({2})},
      {"add learner", conf({1, 2, 3}), {{learner(4)}}, ConfError::kOk, conf({1, 2, 3}, {4})},
      {"remove learner", conf({1, 2, 3}, {4}), {{remove(4)}}, ConfError::kOk, conf({1, 2, 3})},
      {"promote learner", conf({1, 2, 3}, {4}), {{promote(4)}}, ConfError::kOk, conf({1, 2, 3, 4})},
      {"add witness", conf({1, 2}), {{witness(3)}}, ConfError::kOk, conf({1, 2, 3}, {}, {3})},
      {"remove witness", conf({1, 2, 3}, {}, {3}), {{remove(3)}}, ConfError::kOk, conf({1, 2})},
      {"learners and one voter at once", conf({1, 2, 3}), {{learner(5), add(4), learner(6)}}, ConfError::kOk,
       conf({1, 2, 3, 4}, {5, 6})},
      // Several voters, or asked for: joint.
      {"two adds go joint", conf({1, 2, 3}), {{add(4), add(5)}}, ConfError::kOk, joint({1, 2, 3, 4, 5}, {1, 2, 3})},
      {"replace a voter goes joint", conf({1, 2, 3}), {{remove(3), add(4)}}, ConfError::kOk,
       joint({1, 2, 4}, {1, 2, 3})},
      {"two removes go joint", conf({1, 2, 3, 4, 5}), {{remove(4), remove(5)}}, ConfError::kOk,
       joint({1, 2, 3}, {1, 2, 3, 4, 5})},
      {"explicit joint of one", conf({1, 2, 3}), {{add(4)}, true}, ConfError::kOk, joint({1, 2, 3, 4}, {1, 2, 3})},
      {"joint promote and remove", conf({1, 2, 3}, {4}), {{promote(4), remove(1)}}, ConfError::kOk,
       joint({2, 3, 4}, {1, 2, 3})},
      {"joint witness kept in outgoing", conf({1, 2, 3}, {}, {3}), {{remove(3), add(4)}}, ConfError::kOk,
       joint({1, 2, 4}, {1, 2, 3}, {}, {3})},
      {"replace every voter", conf({1, 2, 3}), {{remove(1), remove(2), remove(3), add(4), add(5), add(6)}},
       ConfError::kOk, joint({4, 5, 6}, {1, 2, 3})},
      // Leaving a joint configuration.
      {"leave joint", joint({1, 2, 4}, {1, 2, 3}), {}, ConfError::kOk, conf({1, 2, 4})},
      {"leave joint drops removed witness", joint({1, 2, 4}, {1, 2, 3}, {}, {3}), {}, ConfError::kOk, conf({1, 2, 4})},
      {"leave joint keeps learners", joint({1, 2, 3, 4}, {1, 2, 3}, {5}), {}, ConfError::kOk, conf({1, 2, 3, 4}, {5})},
      // Illegal.
      {"node 0", conf({1, 2, 3}), {{add(0)}}, ConfError::kInvalidNode, {}},
      {"named twice", conf({1, 2, 3}), {{add(4), remove(4)}}, ConfError::kDuplicateNode, {}},
      {"add existing voter", conf({1, 2, 3}), {{add(2)}}, ConfError::kAlreadyMember, {}},
      {"add existing voter as learner", conf({1, 2, 3}), {{learner(2)}}, ConfError::kAlreadyMember, {}},
      {"add existing learner as voter", conf({1, 2, 3}, {4}), {{add(4)}}, ConfError::kAlreadyMember, {}},
      {"add existing as witness", conf({1, 2, 3}), {{witness(3)}}, ConfError::kAlreadyMember, {}},
      {"remove unknown", conf({1, 2, 3}), {{remove(9)}}, ConfError::kUnknownMember, {}},
      {"promote unknown", conf({1, 2, 3}), {{promote(9)}}, ConfError::kUnknownMember, {}},
      {"promote a voter", conf({1, 2, 3}), {{promote(2)}}, ConfError::kNotLearner, {}},
      {"promote a witness", conf({1, 2, 3}, {}, {3}), {{promote(3)}}, ConfError::kNotLearner, {}},
      {"remove the last voter", conf({1}), {{remove(1)}}, ConfError::kNoVoterLeft, {}},
      {"remove the last voter, learner left", conf({1}, {2}), {{remove(1)}}, ConfError::kNoVoterLeft, {}},
      {"remove every voter at once", conf({1, 2, 3}), {{remove(1), remove(2), remove(3)}}, ConfError::kNoVoterLeft, {}},
      {"only witnesses left", conf({1, 2, 3}, {}, {3}), {{remove(1), remove(2)}}, ConfError::kNoVoterLeft, {}},
      {"only witness left, single", conf({1, 2}, {}, {2}), {{remove(1)}}, ConfError::kNoVoterLeft, {}},
      {"change while joint", joint({1, 2, 4}, {1, 2, 3}), {{add(5)}}, ConfError::kAlreadyJoint, {}},
      {"leave when not joint", conf({1, 2, 3}), {}, ConfError::kNotJoint, {}},
      {"empty joint request", conf({1, 2, 3}), {{}, true}, ConfError::kEmptyChange, {}},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    const ConfState before = tc.from;
    const ConfResult r = confchange::apply(tc.from, tc.changes);
    EXPECT_EQ(r.error, tc.error) << to_string(r.error);
    EXPECT_EQ(tc.from, before);  // never mutates
    if (tc.error == ConfError::kOk) {
      EXPECT_EQ(r.conf, tc.to) << confchange::describe(r.conf) << " want " << confchange::describe(tc.to);
      EXPECT_EQ(confchange::validate(r.conf), ConfError::kOk);
    }
  }
}

// Any add/remove/promote of a small universe, applied to every small configuration: the result
// is either an error or valid, and single-voter changes are never joint.
TEST(ConfChange, ExhaustiveSmallUniverseStaysValid) {
  const ConfChangeType types[] = {ConfChangeType::kAddVoter, ConfChangeType::kAddLearner, ConfChangeType::kRemoveNode,
                                  ConfChangeType::kPromote, ConfChangeType::kAddWitness};
  int ok = 0, refused = 0;
  // Each of nodes 1..4 is absent, voter, learner or witness.
  for (int mask = 0; mask < 256; ++mask) {
    ConfState c;
    for (uint64_t n = 1; n <= 4; ++n) {
      const int role = (mask >> (2 * (n - 1))) & 3;
      if (role == 1 || role == 3) c.voters.push_back(N(n));
      if (role == 2) c.learners.push_back(N(n));
      if (role == 3) c.witnesses.push_back(N(n));
    }
    if (confchange::validate(c) != ConfError::kOk) continue;
    for (ConfChangeType t1 : types)
      for (uint64_t n1 = 1; n1 <= 5; ++n1)
        for (ConfChangeType t2 : types)
          for (uint64_t n2 = 1; n2 <= 5; ++n2) {
            for (bool two : {false, true}) {
              ConfChangeSet set;
              set.changes.push_back({t1, N(n1)});
              if (two) set.changes.push_back({t2, N(n2)});
              const ConfResult r = confchange::apply(c, set);
              if (!r.ok()) {
                refused++;
                continue;
              }
              ok++;
              ASSERT_EQ(confchange::validate(r.conf), ConfError::kOk) << confchange::describe(r.conf);
              if (r.conf.joint()) {
                EXPECT_EQ(r.conf.voters_outgoing, c.voters);
                EXPECT_GT(confchange::voter_delta(c, r.conf), 1u);
              } else {
                EXPECT_LE(confchange::voter_delta(c, r.conf), 1u);
              }
              if (r.conf.joint()) {
                const ConfResult left = confchange::apply(r.conf, ConfChangeSet{});
                ASSERT_TRUE(left.ok()) << to_string(left.error);
                EXPECT_EQ(left.conf.voters, r.conf.voters);
                EXPECT_FALSE(left.conf.joint());
              }
            }
          }
  }
  EXPECT_GT(ok, 1000);
  EXPECT_GT(refused, 1000);
}

TEST(ConfChange, ValidateRefusesMalformed) {
  ConfState unsorted = conf({2, 1});
  EXPECT_EQ(confchange::validate(unsorted), ConfError::kInvalidNode);
  EXPECT_EQ(confchange::validate(conf({1, 2}, {2})), ConfError::kDuplicateNode);
  ConfState stray = conf({1, 2});
  stray.witnesses = L({3});
  EXPECT_EQ(confchange::validate(stray), ConfError::kUnknownMember);
  EXPECT_EQ(confchange::validate(ConfState{}), ConfError::kNoVoterLeft);
  ConfState leave = conf({1});
  leave.auto_leave = true;
  EXPECT_EQ(confchange::validate(leave), ConfError::kNotJoint);
}

TEST(ConfChange, EntryRoundTrips) {
  const ConfEntry e{ConfChangeSet{{add(4), remove(2)}, true}, joint({1, 3, 4}, {1, 2, 3}, {7}, {3})};
  EXPECT_EQ(codec::decode<ConfEntry>(codec::encode(e)), e);
  const std::string buf = codec::encode(e);
  for (size_t n = 0; n < buf.size(); ++n) EXPECT_FALSE(codec::decode<ConfEntry>(buf.substr(0, n)).has_value());
}

TEST(ConfChange, ErrorsHaveMessages) {
  for (int e = 0; e < kConfErrorCount; ++e) EXPECT_STRNE(to_string(static_cast<ConfError>(e)), "?");
  EXPECT_STREQ(to_string(ConfError::kNotLearner), "can only promote a learner member");
}

}  // namespace
}  // namespace balsa
