// NOT COMMITTED: tests that fail against the current core (bugs reported to the core owner).
#include <gtest/gtest.h>

#include "core/test_cluster.h"

namespace balsa::test {
namespace {

Config cfg(uint64_t id, bool debug = true) {
  Config c = test_config(N(id), ids(3));
  c.pre_vote = false;
  c.debug_invariants = debug;
  return c;
}

// Bug 1: a candidate that receives a kApp/kHeartbeat/kSnap with term 0 from a member takes it
// as a new leader and *resets its term to 0* (term goes backwards, vote lost).
TEST(CoreBugs, TermZeroLeaderMessageAtCandidate_RefusedAndCounted) {
  for (MessageType t : {MessageType::kApp, MessageType::kHeartbeat, MessageType::kSnap}) {
    SCOPED_TRACE(to_string(t));
    Solo s(cfg(1, /*debug=*/false));
    for (int k = 0; k < 30 && s.raft().role() != Role::kCandidate; ++k) s.node->tick();
    ASSERT_EQ(s.raft().term(), T(1));
    s.drain();
    Message m = msg(t, 2, 1, 0);
    if (t == MessageType::kSnap) m.snapshot.metadata = SnapshotMetadata{I(5), T(0), ConfState{ids(3), {}, {}}};
    s.node->step(m);
    EXPECT_EQ(s.raft().term(), T(1));
    EXPECT_EQ(s.raft().vote(), N(1));
    EXPECT_EQ(s.node->stats().invalid, 1u);
  }
}

// Same, with the debug invariant check on: the process aborts ("term went back").
TEST(CoreBugs, TermZeroHeartbeatAtCandidate_DoesNotCrash) {
  EXPECT_EXIT(
      {
        Solo s(cfg(1, /*debug=*/true));
        for (int k = 0; k < 30 && s.raft().role() != Role::kCandidate; ++k) s.node->tick();
        s.node->step(msg(MessageType::kHeartbeat, 2, 1, 0));
        std::exit(0);
      },
      testing::ExitedWithCode(0), "");
}

// Bug 1b: at a follower, a term-0 kApp/kHeartbeat is accepted as coming from the leader: it
// replaces the known leader and (heartbeat) advances the commit index.
TEST(CoreBugs, TermZeroHeartbeatAtFollower_RefusedAndCounted) {
  Solo s(cfg(1), with_log({1, 1, 1}, 1));
  s.node->step(msg(MessageType::kHeartbeat, 2, 1, 1));  // leader 2, term 1
  s.drain();
  Message hb = msg(MessageType::kHeartbeat, 3, 1, 0);
  hb.commit = I(3);
  s.node->step(hb);
  EXPECT_EQ(s.raft().leader(), N(2));
  EXPECT_EQ(s.raft().log().committed(), I(0));
  EXPECT_EQ(s.node->stats().invalid, 1u);
}

// Bug 2: a follower that knows leader 1 in term t accepts a kApp from node 3 claiming to lead
// the same term (impossible by Election Safety): it switches leader and appends.
TEST(CoreBugs, SecondLeaderInSameTermAtFollower_RefusedAndCounted) {
  TestCluster c(3);
  c.elect(1);
  const uint64_t term = c.raft(1).term().value;
  const LogIndex last = c.raft(2).log().last_index();
  Message m = msg(MessageType::kApp, 3, 2, term);
  m.index = last;
  m.log_term = T(term);
  m.entries = {ent(term, last.value + 1, "forged")};
  c.node(2).step(m);
  EXPECT_EQ(c.raft(2).leader(), N(1));
  EXPECT_EQ(c.raft(2).log().last_index(), last);
  EXPECT_EQ(c.node(2).stats().invalid, 1u);
}

// Bug 3 (minor): a stale-term kApp/kHeartbeat is answered (good) but not counted in
// CoreStats::stale_term, unlike every other stale message.
TEST(CoreBugs, StaleAppendAndHeartbeat_Counted) {
  Solo s(cfg(1), with_log({}, 5));
  s.node->step(msg(MessageType::kHeartbeat, 2, 1, 5));
  s.drain();
  s.node->step(msg(MessageType::kApp, 3, 1, 3));
  s.node->step(msg(MessageType::kHeartbeat, 3, 1, 3));
  EXPECT_EQ(s.node->stats().stale_term, 2u);
}

// Bug 1c: consequence of bug 1 -- after the term reset the node votes a second time in term 1
// (it already voted for itself): Election Safety can be broken by one malformed message.
TEST(CoreBugs, TermZeroHeartbeatAtCandidate_LeadsToSecondVoteInSameTerm) {
  Config c = cfg(1, /*debug=*/false);
  c.check_quorum = false;  // no leader stickiness, so the vote request is considered at once
  Solo s(c);
  for (int k = 0; k < 30 && s.raft().role() != Role::kCandidate; ++k) s.node->tick();
  ASSERT_EQ(s.raft().vote(), N(1));
  s.drain();
  s.node->step(msg(MessageType::kHeartbeat, 2, 1, 0));
  s.drain();
  Message v = msg(MessageType::kVote, 3, 1, 1);
  s.node->step(v);
  auto resp = of_type(s.drain_msgs(), MessageType::kVoteResp);
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_TRUE(resp[0].reject) << "voted for 3 in term 1 after voting for itself in term 1";
}

// Bug 1d: responses with term 0 are processed as if in the current term: a term-0 granted
// kVoteResp counts as a vote, a term-0 kAppResp as an ack.
TEST(CoreBugs, TermZeroResponses_RefusedAndCounted) {
  {
    Solo s(cfg(1));
    for (int k = 0; k < 30 && s.raft().role() != Role::kCandidate; ++k) s.node->tick();
    s.drain();
    s.node->step(msg(MessageType::kVoteResp, 2, 1, 0));
    EXPECT_EQ(s.raft().role(), Role::kCandidate);
    EXPECT_EQ(s.node->stats().invalid, 1u);
  }
  {
    TestCluster c(3);
    c.elect(1);
    c.isolate(2);
    c.isolate(3);
    c.propose(1, "x");
    const LogIndex committed = c.raft(1).log().committed();
    Message ack = msg(MessageType::kAppResp, 2, 1, 0);
    ack.index = c.raft(1).log().last_index();
    c.node(1).step(ack);
    EXPECT_EQ(c.raft(1).log().committed(), committed);
    EXPECT_EQ(c.node(1).stats().invalid, 1u);
  }
}

}  // namespace
}  // namespace balsa::test
