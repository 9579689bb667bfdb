// Bad input: a message with a stale term, from a non-member, addressed to someone else, or
// internally inconsistent is refused or ignored and counted in CoreStats -- never a crash --
// and the node keeps working afterwards.
#include <gtest/gtest.h>

#include <limits>

#include "core/rng.h"
#include "core/test_cluster.h"

namespace balsa::test {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

struct Snap {
  Term term;
  NodeId vote, leader;
  Role role;
  LogIndex last, committed;
  bool operator==(const Snap&) const = default;
};
Snap snap(const Raft& r) {
  return {r.term(), r.vote(), r.leader(), r.role(), r.log().last_index(), r.log().committed()};
}

// A 3-node cluster whose durable term starts at 5, led by node 1 (in term 6).
class BadInput : public testing::Test {
 protected:
  BadInput() : c(0) {
    for (uint64_t id = 1; id <= 3; ++id) c.add(test_config(N(id), ids(3)), with_log({}, 5));
    c.elect(1);
    c.propose(1, "before");
    c.tick(1);
    c.stabilize();
    term = c.raft(1).term().value;
  }

  // Delivers m to its target; expects no state change, no output, and `counter` to go up by one.
  void expect_refused(const Message& m, uint64_t CoreStats::*counter) {
    SCOPED_TRACE(testing::Message() << to_string(m.type) << " " << m.from << "->" << m.to << " term " << m.term);
    const uint64_t target = m.to.value <= 3 && m.to.value > 0 ? m.to.value : 2;
    const Snap before = snap(c.raft(target));
    const CoreStats stats = c.node(target).stats();
    c.node(target).step(m);
    EXPECT_EQ(snap(c.raft(target)), before);
    EXPECT_EQ(c.node(target).stats().*counter, stats.*counter + 1);
    c.process_ready(target);
    EXPECT_TRUE(c.take_queue().empty()) << "a refused message produced output";
  }
  void expect_refused_at(uint64_t target, Message m, uint64_t CoreStats::*counter) {
    const NodeId to = m.to;
    // Deliver to `target` even if m.to says otherwise.
    const Snap before = snap(c.raft(target));
    const CoreStats stats = c.node(target).stats();
    c.node(target).step(m);
    EXPECT_EQ(snap(c.raft(target)), before) << to_string(m.type) << " to " << to;
    EXPECT_EQ(c.node(target).stats().*counter, stats.*counter + 1) << to_string(m.type);
    c.process_ready(target);
    EXPECT_TRUE(c.take_queue().empty());
  }

  // The cluster still elects nothing new and commits a fresh proposal everywhere.
  void expect_cluster_works() {
    const auto r = c.node(1).propose("after");
    ASSERT_EQ(r.status, ProposeStatus::kAppended);
    c.stabilize();
    c.tick(1);
    c.stabilize();
    for (uint64_t id = 1; id <= 3; ++id) {
      EXPECT_EQ(c.applied_data(id).back(), "after") << "node " << id;
      EXPECT_EQ(c.raft(id).term(), T(term));
    }
    EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  }

  Message app(uint64_t from, uint64_t to, uint64_t t, uint64_t prev, uint64_t prev_term,
              std::vector<Entry> es) {
    Message m = msg(MessageType::kApp, from, to, t);
    m.index = I(prev);
    m.log_term = T(prev_term);
    m.entries = std::move(es);
    return m;
  }

  TestCluster c;
  uint64_t term = 0;
};

TEST_F(BadInput, StaleTerm_IgnoredAndCounted) {
  const uint64_t stale = term - 2;
  // At a follower.
  for (MessageType t : {MessageType::kVote, MessageType::kVoteResp, MessageType::kSnap,
                        MessageType::kTimeoutNow, MessageType::kReadIndexResp,
                        MessageType::kHeartbeatResp, MessageType::kAppResp}) {
    Message m = msg(t, 3, 2, stale);
    if (t == MessageType::kSnap) {
      m.snapshot.metadata = SnapshotMetadata{I(50), T(stale), ConfState{ids(3), {}, {}}};
    }
    expect_refused(m, &CoreStats::stale_term);
  }
  // At the leader: old acks and votes from an earlier term are dropped.
  for (MessageType t : {MessageType::kAppResp, MessageType::kHeartbeatResp, MessageType::kVoteResp,
                        MessageType::kVote}) {
    Message m = msg(t, 2, 1, stale);
    m.index = I(1);
    expect_refused(m, &CoreStats::stale_term);
  }
  expect_cluster_works();
}

TEST_F(BadInput, StaleAppendIsAnsweredWithTheNewTermAndChangesNothing) {
  Message m = app(3, 2, term - 1, 0, 0, {ent(term - 1, 1, "forged")});
  const Snap before = snap(c.raft(2));
  c.node(2).step(m);
  EXPECT_EQ(snap(c.raft(2)), before);
  c.process_ready(2);
  auto out = c.take_queue();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, MessageType::kAppResp);
  EXPECT_EQ(out[0].term, T(term));
  EXPECT_EQ(out[0].index, I(0));
  expect_cluster_works();
}

// Election and client traffic from outside the configuration is refused. (Replication traffic
// is taken from anyone: a node's configuration may be stale, and only the leader can fix it.)
TEST_F(BadInput, NonMemberSender_IgnoredAndCounted) {
  int refused_types = 0;
  for (int t = 0; t < kMessageTypeCount; ++t) {
    const auto type = static_cast<MessageType>(t);
    if (type == MessageType::kApp || type == MessageType::kHeartbeat || type == MessageType::kSnap ||
        type == MessageType::kAppResp || type == MessageType::kHeartbeatResp)
      continue;
    refused_types++;
    for (uint64_t to : {1, 2}) {
      Message m = msg(type, 9, to, term + 3);  // even with a newer term
      m.index = I(1);
      m.log_term = T(1);
      m.entries = {ent(term, 5, "x")};
      m.snapshot.metadata = SnapshotMetadata{I(40), T(term), ConfState{ids(3), {}, {}}};
      expect_refused(m, &CoreStats::non_member);
    }
  }
  EXPECT_EQ(c.node(2).stats().non_member, static_cast<uint64_t>(refused_types));
  expect_cluster_works();
}

TEST_F(BadInput, MisaddressedOrFromSelf_Counted) {
  Message hb = msg(MessageType::kHeartbeat, 1, 3, term);  // to node 3 ...
  expect_refused_at(2, hb, &CoreStats::invalid);           // ... but delivered to node 2
  expect_refused_at(2, msg(MessageType::kVote, 2, 2, term + 1), &CoreStats::invalid);
  expect_refused_at(1, msg(MessageType::kAppResp, 1, 1, term), &CoreStats::invalid);
  expect_refused_at(2, msg(MessageType::kHeartbeat, 1, 0, term), &CoreStats::invalid);
  expect_cluster_works();
}

TEST_F(BadInput, ImpossibleAppendIndexes_RefusedAndCounted) {
  const uint64_t last = c.raft(2).log().last_index().value;
  const uint64_t lt = c.raft(2).log().last_term().value;
  struct Case {
    std::string name;
    Message m;
  };
  const Case cases[] = {
      {"entries not contiguous", app(1, 2, term, last, lt, {ent(term, last + 1), ent(term, last + 3)})},
      {"first entry not after prev", app(1, 2, term, last, lt, {ent(term, last + 2)})},
      {"entry repeats an index", app(1, 2, term, last, lt, {ent(term, last + 1), ent(term, last + 1)})},
      {"entry term above message term", app(1, 2, term, last, lt, {ent(term + 1, last + 1)})},
      {"entry term below prev term", app(1, 2, term, last, term, {ent(1, last + 1)})},
      {"entry terms go back", app(1, 2, term, last, lt, {ent(term, last + 1), ent(term - 1, last + 2)})},
      {"prev term above message term", app(1, 2, term, last, term + 1, {})},
      {"index wraps around", app(1, 2, term, kMax, 1, {ent(term, 5)})},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    expect_refused(tc.m, &CoreStats::invalid);
  }
  expect_cluster_works();
}

TEST_F(BadInput, InconsistentSnapshotVoteAndProposal_RefusedAndCounted) {
  auto snap_msg = [&](uint64_t index, uint64_t snap_term, std::vector<NodeId> voters) {
    Message m = msg(MessageType::kSnap, 1, 2, term);
    m.snapshot.metadata = SnapshotMetadata{I(index), T(snap_term), ConfState{std::move(voters), {}, {}}};
    return m;
  };
  expect_refused(snap_msg(0, term, ids(3)), &CoreStats::invalid);          // snapshot of nothing
  expect_refused(snap_msg(50, term + 1, ids(3)), &CoreStats::invalid);     // from the future
  expect_refused(snap_msg(50, term, {}), &CoreStats::invalid);             // no voters
  Message v = msg(MessageType::kVote, 3, 2, term + 1);
  v.log_term = T(term + 2);                                                // last term > term
  expect_refused(v, &CoreStats::invalid);
  Message pv = msg(MessageType::kPreVote, 3, 2, term + 1);
  pv.log_term = T(term + 5);
  expect_refused(pv, &CoreStats::invalid);
  expect_refused(msg(MessageType::kVote, 3, 2, 0), &CoreStats::invalid);    // a vote with no term
  // Proposals: empty, or smuggling a configuration change past the local API.
  expect_refused(msg(MessageType::kProp, 2, 1, 0), &CoreStats::invalid);
  Message cc = msg(MessageType::kProp, 2, 1, 0);
  cc.entries = {Entry{T(0), I(0), EntryType::kConfChange, "x"}};
  expect_refused(cc, &CoreStats::invalid);
  expect_cluster_works();
}

TEST_F(BadInput, AckBeyondLastIndex_RefusedAndCounted) {
  const LogIndex last = c.raft(1).log().last_index();
  for (bool reject : {false, true}) {
    Message m = msg(MessageType::kAppResp, 2, 1, term);
    m.index = last + 100;
    m.reject = reject;
    m.reject_hint = I(kMax);
    const auto before = c.node(1).status().progress;
    expect_refused(m, &CoreStats::invalid);
    const auto after = c.node(1).status().progress;
    ASSERT_EQ(after.size(), before.size());
    for (size_t k = 0; k < after.size(); ++k) {
      EXPECT_EQ(after[k].match, before[k].match);
      EXPECT_EQ(after[k].next, before[k].next);
    }
  }
  Message far = msg(MessageType::kAppResp, 2, 1, term);
  far.index = I(kMax);
  expect_refused(far, &CoreStats::invalid);
  expect_cluster_works();
}

TEST_F(BadInput, SecondLeaderInSameTermAtLeader_RefusedAndCounted) {
  Message a = app(2, 1, term, 0, 0, {});
  expect_refused(a, &CoreStats::invalid);
  expect_refused(msg(MessageType::kHeartbeat, 3, 1, term), &CoreStats::invalid);
  Message s = msg(MessageType::kSnap, 2, 1, term);
  s.snapshot.metadata = SnapshotMetadata{I(99), T(term), ConfState{ids(3), {}, {}}};
  expect_refused(s, &CoreStats::invalid);
  expect_cluster_works();
}

// Extreme but well-formed values: answered sensibly, nothing breaks.
TEST_F(BadInput, ExtremeValuesDoNotBreakTheNode) {
  const LogIndex last = c.raft(2).log().last_index();
  {  // An append far beyond our log is rejected with our last index + 1.
    c.node(2).step(app(1, 2, term, kMax - 5, term, {}));
    c.process_ready(2);
    auto out = c.take_queue();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(out[0].reject);
    EXPECT_EQ(out[0].reject_hint, last + 1);
  }
  {  // A heartbeat's commit is never applied past what we hold.
    Message hb = msg(MessageType::kHeartbeat, 1, 2, term);
    hb.commit = I(kMax);
    c.node(2).step(hb);
    EXPECT_LE(c.raft(2).log().committed(), c.raft(2).log().last_index());
    c.process_ready(2);
    c.take_queue();
  }
  {  // A rejection with an absurd hint leaves next within [match + 1, last + 1].
    Message r = msg(MessageType::kAppResp, 2, 1, term);
    r.reject = true;
    r.index = c.raft(1).log().last_index();
    r.reject_hint = I(kMax);
    r.log_term = T(kMax);
    c.node(1).step(r);
    for (const auto& p : c.node(1).status().progress) {
      EXPECT_GE(p.next, p.match + 1);
      EXPECT_LE(p.next, c.raft(1).log().last_index() + 1);
    }
    c.stabilize();
  }
  expect_cluster_works();
}

// Seeded random garbage from members, with well-formed terms, thrown at one node with the
// debug invariant check on: it must never crash, and every refusal shows up in the counters.
TEST(BadInputFuzz, RandomMessagesNeverCrashOneNode) {
  uint64_t leader_changes = 0, commits = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(seed);
    Rng rng(seed);
    Config cf = test_config(N(1), ids(3));
    cf.seed = seed;
    Solo s(cf, with_log({1, 1, 2}, 2, 1));
    for (int k = 0; k < 400; ++k) {
      Message m;
      m.type = static_cast<MessageType>(rng.below(kMessageTypeCount));
      m.from = N(rng.below(5));  // 0 (none), self, two members, a non-member
      m.to = N(rng.chance(0.9) ? 1 : rng.below(5));
      const uint64_t base = std::max<uint64_t>(s.raft().term().value, 1);
      m.term = T(m.type == MessageType::kProp || m.type == MessageType::kReadIndex ||
                         m.type == MessageType::kTransferLeader
                     ? 0
                     : base - std::min<uint64_t>(base - 1, rng.below(3)) + rng.below(2));
      m.index = I(rng.below(12));
      m.log_term = T(rng.below(m.term.value + 2));
      m.commit = I(rng.below(12));
      m.reject = rng.chance(0.3);
      m.reject_hint = I(rng.below(12));
      const size_t n = rng.below(4);
      for (size_t e = 0; e < n; ++e)
        m.entries.push_back(Entry{T(rng.below(m.term.value + 2)), m.index + (e + 1 + (rng.chance(0.1) ? 1 : 0)),
                                  rng.chance(0.1) ? EntryType::kConfChange : EntryType::kNormal, "f"});
      if (m.type == MessageType::kSnap) {
        m.snapshot.metadata = SnapshotMetadata{I(rng.below(20)), T(rng.below(m.term.value + 2)),
                                               ConfState{ids(3), {}, {}}};
      }
      m.context = rng.chance(0.5) ? "ctx" : "";
      s.node->step(m);
      if (rng.chance(0.2)) s.node->tick();
      if (rng.chance(0.1)) s.node->propose("p");
      s.drain();
    }
    s.raft().check_invariants();
    const CoreStats& st = s.node->stats();
    EXPECT_GT(st.invalid + st.non_member + st.stale_term, 0u);
    leader_changes += st.leader_changes;
    commits += s.raft().log().committed().value;
  }
  // The garbage is plausible enough to drive the node through elections and commits.
  EXPECT_GT(leader_changes, 20u);
  EXPECT_GT(commits, 20u);
}

}  // namespace
}  // namespace balsa::test
