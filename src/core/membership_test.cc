// Membership and reads, end to end through RawNode: interaction tests that print every Ready of
// scripted scenarios (compared with golden files under testdata/; BALSA_UPDATE_GOLDEN=1
// rewrites them), and behaviour tests of joint consensus, learners, witnesses, leader removal,
// rollback on truncation and lease reads.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/codec.h"
#include "core/confchange.h"
#include "core/test_cluster.h"

namespace balsa::test {
namespace {

ConfChange add(uint64_t n) { return {ConfChangeType::kAddVoter, N(n)}; }
ConfChange learner(uint64_t n) { return {ConfChangeType::kAddLearner, N(n)}; }
ConfChange witness(uint64_t n) { return {ConfChangeType::kAddWitness, N(n)}; }
ConfChange promote(uint64_t n) { return {ConfChangeType::kPromote, N(n)}; }
ConfChange remove_node(uint64_t n) { return {ConfChangeType::kRemoveNode, N(n)}; }
ConfChangeSet set(std::vector<ConfChange> c, bool joint = false) { return ConfChangeSet{std::move(c), joint}; }

// Adds node `id` as a new machine joining the cluster (no configuration of its own).
void add_joiner(TestCluster& c, uint64_t id, const std::function<void(Config&)>& tweak = {}) {
  Config cfg = test_config(N(id), {});
  cfg.join = true;
  if (tweak) tweak(cfg);
  c.add(cfg);
}

std::string describe_entry(const Entry& e) {
  std::string s = std::to_string(e.term.value) + "/" + std::to_string(e.index.value);
  if (e.type == EntryType::kConfChange) {
    auto ce = codec::decode<ConfEntry>(e.data);
    s += ce ? " conf(" + confchange::describe(ce->result) + ")" : " conf(?)";
  } else if (!e.data.empty()) {
    s += " " + e.data;
  }
  return s;
}

// One line per Ready, with what matters for membership: role, hard state, entries, commits,
// messages (type, peer, index/commit), read states and the active configuration.
class ReadyPrinter {
 public:
  explicit ReadyPrinter(TestCluster& c) : c_(c) {
    c.set_on_ready([this](NodeId id, const Ready& rd) { print(id, rd); });
  }
  void note(const std::string& s) { out_ << "# " << s << "\n"; }
  std::string text() const { return out_.str(); }

 private:
  void print(NodeId id, const Ready& rd) {
    out_ << "n" << id.value << ":";
    if (rd.soft_state)
      out_ << " " << to_string(rd.soft_state->role) << "(lead=" << rd.soft_state->leader.value << ")";
    if (rd.hard_state)
      out_ << " hs=" << rd.hard_state->term.value << "/" << rd.hard_state->vote.value << "/"
           << rd.hard_state->commit.value;
    if (!rd.entries.empty()) {
      out_ << " ents=[";
      for (size_t k = 0; k < rd.entries.size(); ++k) out_ << (k ? ", " : "") << describe_entry(rd.entries[k]);
      out_ << "]";
    }
    if (!rd.committed_entries.empty())
      out_ << " commit=" << rd.committed_entries.front().index.value << ".." << rd.committed_entries.back().index.value;
    auto msgs = [&](const std::vector<Message>& ms, const char* tag) {
      if (ms.empty()) return;
      out_ << " " << tag << "=[";
      for (size_t k = 0; k < ms.size(); ++k) {
        const Message& m = ms[k];
        out_ << (k ? " " : "") << to_string(m.type) << "->" << m.to.value;
        if (m.type == MessageType::kApp) out_ << "(" << m.index.value << "+" << m.entries.size() << ",c" << m.commit.value << ")";
        if (m.type == MessageType::kAppResp) out_ << "(" << m.index.value << (m.reject ? ",rej" : "") << ")";
        if ((m.type == MessageType::kVoteResp || m.type == MessageType::kPreVoteResp) && m.reject) out_ << "(rej)";
      }
      out_ << "]";
    };
    msgs(rd.messages, "send");
    msgs(rd.persisted_messages, "send-after-sync");
    for (const ReadState& r : rd.read_states) out_ << " read(" << r.index.value << "," << r.context << ")";
    out_ << " | " << confchange::describe(c_.raft(id.value).conf()) << "\n";
  }
  TestCluster& c_;
  std::ostringstream out_;
};

void expect_golden(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::path(BALSA_CORE_TESTDATA) / (name + ".golden");
  if (const char* u = std::getenv("BALSA_UPDATE_GOLDEN"); u && std::string(u) == "1") {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "missing golden file " << path << " (run with BALSA_UPDATE_GOLDEN=1)";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(text, want.str()) << "interaction trace differs from " << path;
}

std::vector<NodeId> V(std::initializer_list<uint64_t> v) {
  std::vector<NodeId> out;
  for (uint64_t x : v) out.push_back(N(x));
  return out;
}

bool sent_any(const std::vector<Message>& ms, uint64_t from, MessageType t) {
  for (const Message& m : ms)
    if (m.from == N(from) && m.type == t) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Interaction: joint consensus, enter and leave.

TEST(MembershipInteraction, JointEnterAndLeave) {
  TestCluster c(3);
  c.elect(1);
  add_joiner(c, 4);
  add_joiner(c, 5);
  ReadyPrinter p(c);
  p.note("replace 3 by 4 and 5: a joint configuration");
  ConfProposeResult r = c.node(1).propose_conf_change(set({add(4), add(5), remove_node(3)}));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  // In effect on the leader as soon as it is appended, before anything commits.
  EXPECT_EQ(c.raft(1).conf().voters, V({1, 2, 4, 5}));
  EXPECT_EQ(c.raft(1).conf().voters_outgoing, V({1, 2, 3}));
  EXPECT_TRUE(c.raft(1).conf_pending());
  c.stabilize();
  p.note("the joint entry committed; the leader left it by itself");
  for (uint64_t id : {1, 2, 4, 5}) {
    EXPECT_EQ(c.raft(id).conf().voters, V({1, 2, 4, 5})) << id;
    EXPECT_FALSE(c.raft(id).conf().joint()) << id;
  }
  EXPECT_FALSE(c.raft(1).conf_pending());
  p.note("node 3 is out: it never campaigns");
  c.clear_sent();
  c.tick(3, 100);
  c.stabilize();
  EXPECT_FALSE(sent_any(c.sent(), 3, MessageType::kPreVote));
  EXPECT_FALSE(sent_any(c.sent(), 3, MessageType::kVote));
  c.propose(1, "after");
  EXPECT_EQ(c.applied_data(5).back(), "after");
  expect_golden("joint_enter_leave", p.text());
}

TEST(Membership, JointCommitNeedsBothHalves) {
  TestCluster c(3);
  c.elect(1);
  add_joiner(c, 4);
  add_joiner(c, 5);
  add_joiner(c, 6);
  // Move from {1,2,3} to {1,4,5,6}: the new half cannot answer yet.
  c.isolate(4);
  c.isolate(5);
  c.isolate(6);
  ASSERT_TRUE(c.node(1).propose_conf_change(set({add(4), add(5), add(6), remove_node(2), remove_node(3)})).ok());
  c.stabilize();
  const LogIndex joint_at = c.raft(1).conf_index();
  // A majority of the old half holds it, but not of the new: not committed.
  EXPECT_LT(c.raft(1).log().committed(), joint_at);
  EXPECT_TRUE(c.raft(1).conf().joint());
  c.heal();
  c.tick(1);
  c.stabilize();
  EXPECT_GE(c.raft(1).log().committed(), joint_at);
  EXPECT_EQ(c.raft(1).conf().voters, V({1, 4, 5, 6}));
  EXPECT_FALSE(c.raft(1).conf().joint());
}

TEST(Membership, JointElectionNeedsBothHalves) {
  TestCluster c(3);
  c.elect(1);
  add_joiner(c, 4);
  add_joiner(c, 5);
  // Enter the joint configuration everywhere, but keep it from being left: drop the leave.
  c.set_filter([](Message& m) {
    for (const Entry& e : m.entries)
      if (e.type == EntryType::kConfChange && !codec::decode<ConfEntry>(e.data)->result.joint()) return false;
    return true;
  });
  ASSERT_TRUE(c.node(1).propose_conf_change(set({add(4), add(5), remove_node(2), remove_node(3)})).ok());
  c.stabilize();
  ASSERT_TRUE(c.raft(2).conf().joint());
  c.set_filter({});
  c.isolate(1);
  // Node 2 has the old half {1,2,3} (2 and 3) but none of the new {1,4,5}: it cannot win.
  c.isolate(4);
  c.isolate(5);
  for (int k = 0; k < 50; ++k) {
    c.tick(2);
    c.stabilize();
  }
  EXPECT_NE(c.raft(2).role(), Role::kLeader);
  EXPECT_NE(c.raft(3).role(), Role::kLeader);
}

// ---------------------------------------------------------------------------------------------
// Interaction: removing the leader.

TEST(MembershipInteraction, LeaderRemoval) {
  TestCluster c(3);
  c.elect(1);
  ReadyPrinter p(c);
  p.note("the leader removes itself");
  ConfProposeResult r = c.node(1).propose_conf_change(set({remove_node(1)}));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);  // keeps leading until the removal commits
  EXPECT_EQ(c.raft(1).conf().voters, V({2, 3}));
  c.stabilize();
  p.note("removal committed: node 1 handed over and stepped down");
  EXPECT_NE(c.raft(1).role(), Role::kLeader);
  const NodeId lead = c.raft(2).leader();
  ASSERT_TRUE(lead == N(2) || lead == N(3));
  EXPECT_EQ(c.raft(lead.value).role(), Role::kLeader);
  p.note("node 1 never campaigns again");
  c.clear_sent();
  c.tick(1, 100);
  c.stabilize();
  EXPECT_FALSE(sent_any(c.sent(), 1, MessageType::kPreVote));
  EXPECT_FALSE(sent_any(c.sent(), 1, MessageType::kVote));
  c.propose(lead.value, "x");
  EXPECT_EQ(c.applied_data(lead.value == 2 ? 3 : 2).back(), "x");
  expect_golden("leader_removal", p.text());
}

TEST(Membership, RemovedNodeDoesNotDisrupt) {
  TestCluster c(3);
  c.elect(1);
  c.isolate(3);  // node 3 misses its own removal
  ASSERT_TRUE(c.node(1).propose_conf_change(set({remove_node(3)})).ok());
  c.stabilize();
  c.heal();
  const Term before = c.raft(1).term();
  // Node 3 still thinks it is a voter and campaigns; the others do not listen to it.
  for (int k = 0; k < 100; ++k) {
    c.tick(3);
    c.tick(1);
    c.stabilize();
  }
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  EXPECT_EQ(c.raft(1).term(), before);
  EXPECT_GT(c.node(1).stats().non_member + c.node(2).stats().non_member, 0u);
}

// ---------------------------------------------------------------------------------------------
// Interaction: learners and promotion.

TEST(MembershipInteraction, LearnerPromotion) {
  TestCluster c(3, [](Config& cfg) { cfg.promotion_max_lag = 2; });
  c.elect(1);
  add_joiner(c, 4);
  ReadyPrinter p(c);
  p.note("add 4 as a learner, cut off from the leader");
  c.cut(1, 4);
  ASSERT_TRUE(c.node(1).propose_conf_change(set({learner(4)})).ok());
  c.stabilize();
  EXPECT_EQ(c.raft(1).conf().learners, V({4}));
  for (int k = 0; k < 5; ++k) c.propose(1, "w" + std::to_string(k));
  p.note("promotion refused while it is behind");
  ConfProposeResult r = c.node(1).propose_conf_change(set({promote(4)}));
  EXPECT_EQ(r.error, ConfError::kLearnerBehind);
  EXPECT_EQ(c.raft(1).conf().learners, V({4}));
  p.note("caught up: promoted");
  c.heal();
  c.tick(1);
  c.stabilize();
  EXPECT_EQ(c.raft(4).log().last_index(), c.raft(1).log().last_index());
  EXPECT_EQ(c.applied_data(4).back(), "w4");
  r = c.node(1).propose_conf_change(set({promote(4)}));
  ASSERT_TRUE(r.ok()) << to_string(r.error);
  c.stabilize();
  EXPECT_EQ(c.raft(4).conf().voters, V({1, 2, 3, 4}));
  EXPECT_TRUE(c.raft(4).conf().learners.empty());
  expect_golden("learner_promotion", p.text());
}

TEST(Membership, LearnerNeverVotesOrCounts) {
  TestCluster c(3);
  c.elect(1);
  add_joiner(c, 4);
  ASSERT_TRUE(c.node(1).propose_conf_change(set({learner(4)})).ok());
  c.stabilize();
  // With 2 and 3 away, the leader and the learner are no majority.
  c.isolate(2);
  c.isolate(3);
  const LogIndex before = c.raft(1).log().committed();
  c.node(1).propose("lonely");
  c.stabilize();
  EXPECT_EQ(c.raft(1).log().committed(), before);
  EXPECT_EQ(c.raft(4).log().last_index(), c.raft(1).log().last_index());  // but it has the log
  // The learner never campaigns, and refuses to vote.
  c.clear_sent();
  c.tick(4, 100);
  c.stabilize();
  EXPECT_FALSE(sent_any(c.sent(), 4, MessageType::kPreVote));
  Message v = msg(MessageType::kVote, 1, 4, c.raft(1).term().value + 1);
  v.index = c.raft(1).log().last_index();
  v.log_term = c.raft(1).log().last_term();
  c.node(4).step(v);
  c.process_ready(4);
  auto resp = of_type(c.take_queue(), MessageType::kVoteResp);
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_TRUE(resp[0].reject);
}

// ---------------------------------------------------------------------------------------------
// Witnesses.

TEST(Membership, WitnessVotesButHoldsNoPayloadAndNeverLeads) {
  TestCluster c(2);
  c.elect(1);
  add_joiner(c, 3);
  ASSERT_TRUE(c.node(1).propose_conf_change(set({witness(3)})).ok());
  c.stabilize();
  EXPECT_EQ(c.raft(3).conf().witnesses, V({3}));
  EXPECT_TRUE(c.raft(3).is_witness());
  c.propose(1, "secret");
  // The witness holds the entry's term and index, not its payload.
  EXPECT_EQ(c.raft(3).log().last_index(), c.raft(1).log().last_index());
  for (const Entry& e : c.peer(3).applied)
    if (e.type == EntryType::kNormal) {
      EXPECT_TRUE(e.data.empty()) << e.index;
    }
  EXPECT_EQ(c.applied_data(2).back(), "secret");
  // It counts toward the quorum: with 2 gone, leader + witness commit.
  c.isolate(2);
  c.propose(1, "with-witness");
  EXPECT_EQ(c.raft(1).log().committed(), c.raft(1).log().last_index());
  // Transfer to a witness is refused; a witness never campaigns.
  EXPECT_FALSE(c.node(1).transfer_leadership(N(3)));
  c.clear_sent();
  c.isolate(1);
  c.tick(3, 100);
  c.stabilize();
  EXPECT_FALSE(sent_any(c.sent(), 3, MessageType::kPreVote));
  EXPECT_NE(c.raft(3).role(), Role::kLeader);
}

TEST(Membership, WitnessGetsSnapshotWithoutImage) {
  TestCluster c(2);
  c.elect(1);
  add_joiner(c, 3);
  c.isolate(3);
  ASSERT_TRUE(c.node(1).propose_conf_change(set({witness(3)})).ok());
  c.stabilize();
  for (int k = 0; k < 5; ++k) c.propose(1, "v" + std::to_string(k));
  // Compact the leader's log past everything node 3 has.
  const LogIndex at = c.raft(1).log().applied();
  c.storage(1).create_snapshot(at, c.raft(1).conf_at(at), "state-machine-image");
  c.storage(1).compact(at);
  c.heal();
  c.tick(1);
  c.stabilize();
  c.tick(1);
  c.stabilize();
  ASSERT_FALSE(c.peer(3).snapshots.empty());
  EXPECT_TRUE(c.peer(3).snapshots.back().data.empty());
  EXPECT_EQ(c.peer(3).snapshots.back().metadata.index, at);
  EXPECT_EQ(c.raft(3).log().last_index(), c.raft(1).log().last_index());
}

// ---------------------------------------------------------------------------------------------
// In effect on append, rolled back on truncation; refusals.

TEST(Membership, ConfigurationRolledBackWhenEntryTruncated) {
  TestCluster c(3);
  c.elect(1);
  add_joiner(c, 4);
  c.isolate(1);
  ASSERT_TRUE(c.node(1).propose_conf_change(set({add(4)})).ok());
  c.stabilize();
  EXPECT_EQ(c.raft(1).conf().voters, V({1, 2, 3, 4}));  // only on node 1's log
  for (int k = 0; k < 100 && c.raft(2).role() != Role::kLeader; ++k) {
    c.tick(2);
    c.tick(3);
    c.stabilize();
  }
  ASSERT_EQ(c.raft(2).role(), Role::kLeader);
  c.propose(2, "new-term");
  c.heal();
  c.tick(2);
  c.stabilize();
  // Node 1's uncommitted configuration entry was overwritten: its configuration went with it.
  EXPECT_EQ(c.raft(1).conf().voters, V({1, 2, 3}));
  EXPECT_GE(c.node(1).stats().conf_rollbacks, 1u);
  EXPECT_EQ(c.applied_data(1).back(), "new-term");
}

TEST(Membership, RestartReplaysConfigurationsInTheLog) {
  TestCluster c(3);
  c.elect(1);
  add_joiner(c, 4);
  c.isolate(2);
  c.isolate(3);
  ASSERT_TRUE(c.node(1).propose_conf_change(set({learner(4)})).ok());
  c.stabilize();  // appended (durable) on 1 and 4 only: uncommitted
  Config cfg = test_config(N(1), ids(3));
  RawNode restarted(cfg, &c.storage(1));
  EXPECT_EQ(restarted.raft().conf().learners, V({4}));
  EXPECT_TRUE(restarted.raft().conf_pending());
}

TEST(Membership, BadInputRefusedAndNothingChanges) {
  TestCluster c(3);
  c.elect(1);
  add_joiner(c, 4);
  const ConfState before = c.raft(1).conf();
  const LogIndex last = c.raft(1).log().last_index();
  struct Case {
    const char* name;
    ConfChangeSet changes;
    ConfError want;
  };
  const Case cases[] = {
      {"remove every voter", set({remove_node(1), remove_node(2), remove_node(3)}), ConfError::kNoVoterLeft},
      {"promote a voter", set({promote(2)}), ConfError::kNotLearner},
      {"promote unknown", set({promote(9)}), ConfError::kUnknownMember},
      {"remove unknown", set({remove_node(9)}), ConfError::kUnknownMember},
      {"add existing", set({add(3)}), ConfError::kAlreadyMember},
      {"leave when not joint", set({}), ConfError::kNotJoint},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    EXPECT_EQ(c.node(1).propose_conf_change(tc.changes).error, tc.want);
    EXPECT_EQ(c.raft(1).conf(), before);
    EXPECT_EQ(c.raft(1).log().last_index(), last);
  }
  // Not the leader.
  ConfProposeResult r = c.node(2).propose_conf_change(set({add(4)}));
  EXPECT_EQ(r.error, ConfError::kNotLeader);
  EXPECT_EQ(r.leader, N(1));
  // One change in flight at a time.
  c.isolate(2);
  c.isolate(3);
  ASSERT_TRUE(c.node(1).propose_conf_change(set({learner(4)})).ok());
  c.stabilize();
  EXPECT_EQ(c.node(1).propose_conf_change(set({remove_node(3)})).error, ConfError::kChangeInFlight);
  // A configuration entry that does not decode is refused on the wire.
  Message m = msg(MessageType::kApp, 1, 2, c.raft(1).term().value);
  m.index = c.raft(2).log().last_index();
  m.log_term = c.raft(2).log().last_term();
  m.entries = {Entry{c.raft(1).term(), m.index + 1, EntryType::kConfChange, "garbage"}};
  const uint64_t invalid = c.node(2).stats().invalid;
  c.node(2).step(m);
  EXPECT_EQ(c.node(2).stats().invalid, invalid + 1);
  EXPECT_EQ(c.raft(2).log().last_index(), m.index);
}

// ---------------------------------------------------------------------------------------------
// Lease reads.

std::function<void(Config&)> lease_config(int drift = 2) {
  return [drift](Config& cfg) {
    cfg.lease_reads = true;
    cfg.lease_drift_ticks = drift;
  };
}

// With lease reads a node refuses votes for an election timeout after it starts: let the whole
// cluster run until someone leads, then hand leadership to node 1.
void elect_with_lease(TestCluster& c) {
  for (int k = 0; k < 100 && c.raft(1).leader() == kNoNode; ++k) {
    c.tick_all();
    c.stabilize();
  }
  const NodeId lead = c.raft(1).leader();
  ASSERT_NE(lead, kNoNode);
  if (lead != N(1)) {
    c.node(lead).transfer_leadership(N(1));
    c.stabilize();
  }
  ASSERT_EQ(c.raft(1).role(), Role::kLeader);
  c.stabilize();
}

TEST(LeaseRead, ServedWhileLeaseHoldsThenExpires) {
  TestCluster c(3, lease_config());
  elect_with_lease(c);
  c.tick(1);  // a heartbeat round, acknowledged by both followers
  c.stabilize();
  ASSERT_TRUE(c.raft(1).lease_valid());
  EXPECT_EQ(c.node(1).read_lease("r1"), ReadStatus::kServed);
  c.process_ready(1);
  ASSERT_FALSE(c.peer(1).read_states.empty());
  EXPECT_EQ(c.peer(1).read_states.back(), (ReadState{c.raft(1).log().committed(), "r1"}));
  // Cut off, the lease runs out election_ticks - drift ticks after the last acknowledged round.
  c.isolate(1);
  int served = 0;
  for (int k = 0; k < 20 && c.node(1).read_lease("r") == ReadStatus::kServed; ++k) {
    served++;
    c.tick(1);
    c.stabilize();
  }
  EXPECT_EQ(served, 10 - 2);
  EXPECT_EQ(c.node(1).read_lease("late"), c.raft(1).role() == Role::kLeader ? ReadStatus::kNoLease
                                                                             : ReadStatus::kNotLeader);
  EXPECT_EQ(c.node(2).read_lease("f"), ReadStatus::kNotLeader);
}

TEST(LeaseRead, NeedsCheckQuorumAndIsOffByDefault) {
  {
    TestCluster c(3);
    c.elect(1);
    c.tick(1);
    c.stabilize();
    EXPECT_EQ(c.node(1).read_lease("x"), ReadStatus::kNoLease);
  }
  {
    TestCluster c(3, [](Config& cfg) {
      cfg.lease_reads = true;
      cfg.check_quorum = false;
    });
    elect_with_lease(c);
    c.tick(1);
    c.stabilize();
    EXPECT_EQ(c.node(1).read_lease("x"), ReadStatus::kNoLease);
  }
}

TEST(LeaseRead, NewLeaderWaitsForItsFirstCommit) {
  TestCluster c(3, lease_config());
  elect_with_lease(c);
  c.tick(1);
  c.stabilize();
  c.isolate(1);
  // Node 2 wins once the followers' stickiness ran out; its no-op cannot commit without 3.
  c.cut(2, 3);
  c.cut(3, 2);
  for (int k = 0; k < 100 && c.raft(2).role() != Role::kCandidate; ++k) c.tick(2), c.tick(3), c.stabilize();
  c.heal();
  c.isolate(1);
  c.set_filter([](Message& m) { return m.type != MessageType::kAppResp; });
  c.elect(2);
  EXPECT_EQ(c.raft(2).role(), Role::kLeader);
  EXPECT_EQ(c.node(2).read_lease("early"), ReadStatus::kNoLease);
  c.set_filter({});
  c.tick(2);
  c.stabilize();
  c.tick(2);
  c.stabilize();
  EXPECT_EQ(c.node(2).read_lease("now"), ReadStatus::kServed);
}

TEST(LeaseRead, RevokedByLeadershipTransferAndConfigurationChange) {
  TestCluster c(3, lease_config());
  elect_with_lease(c);
  c.tick(1);
  c.stabilize();
  ASSERT_TRUE(c.raft(1).lease_valid());
  add_joiner(c, 4, lease_config());
  ASSERT_TRUE(c.node(1).propose_conf_change(set({learner(4)})).ok());
  EXPECT_FALSE(c.raft(1).lease_valid());  // earned under the previous configuration
  c.stabilize();
  c.tick(1);
  c.stabilize();
  ASSERT_TRUE(c.raft(1).lease_valid());
  c.cut(1, 2);  // keep the transfer from finishing at once
  ASSERT_TRUE(c.node(1).transfer_leadership(N(2)));
  EXPECT_EQ(c.node(1).read_lease("x"), ReadStatus::kNoLease);
}

}  // namespace
}  // namespace balsa::test
