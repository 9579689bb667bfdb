// One test per rule of Figure 2 of the Raft paper (and the §5.x / thesis rules the core
// implements), each named after its rule with the rule's sentence quoted above it.
#include <gtest/gtest.h>

#include <set>

#include "core/test_cluster.h"

namespace balsa::test {
namespace {

constexpr int kElection = 10;  // test_config's election_ticks

Config cfg3(uint64_t id, const std::function<void(Config&)>& tweak = {}) {
  Config c = test_config(N(id), ids(3));
  if (tweak) tweak(c);
  return c;
}
void no_pre_vote(Config& c) { c.pre_vote = false; }

// Makes a Solo a follower of `leader` in `term` by a heartbeat, and drains the reply.
void follow(Solo& s, uint64_t leader, uint64_t term) {
  Message hb = msg(MessageType::kHeartbeat, leader, s.raft().id().value, term);
  s.node->step(hb);
  s.drain();
  ASSERT_EQ(s.raft().role(), Role::kFollower);
  ASSERT_EQ(s.raft().leader(), N(leader));
}

// Ticks until the node's role is `role` (at most 3 election timeouts).
void tick_until(Solo& s, Role role) {
  for (int k = 0; k < 3 * kElection && s.raft().role() != role; ++k) s.node->tick();
  ASSERT_EQ(s.raft().role(), role);
}

Message app(uint64_t from, uint64_t to, uint64_t term, uint64_t prev_index, uint64_t prev_term,
            std::vector<Entry> entries, uint64_t commit = 0) {
  Message m = msg(MessageType::kApp, from, to, term);
  m.index = I(prev_index);
  m.log_term = T(prev_term);
  m.entries = std::move(entries);
  m.commit = I(commit);
  return m;
}

Message vote(uint64_t from, uint64_t to, uint64_t term, uint64_t last_index, uint64_t last_term,
             MessageType type = MessageType::kVote) {
  Message m = msg(type, from, to, term);
  m.index = I(last_index);
  m.log_term = T(last_term);
  return m;
}

std::vector<Term> log_terms(const Raft& r) {
  std::vector<Term> v;
  for (LogIndex i = r.log().first_index(); i <= r.log().last_index(); ++i)
    v.push_back(r.log().term_or_zero(i));
  return v;
}

std::vector<Term> terms(std::initializer_list<uint64_t> ts) {
  std::vector<Term> v;
  for (uint64_t t : ts) v.push_back(T(t));
  return v;
}

// ============================================================================================
// Rules for all servers

// "If RPC request or response contains term T > currentTerm: set currentTerm = T, convert to
// follower (§5.1)"
TEST(RaftPaper, AllServers_IfRpcTermGreaterThanCurrentTerm_ConvertToFollower) {
  struct Case {
    Role from_role;
    MessageType type;
    bool reject;
  };
  const Case cases[] = {
      {Role::kFollower, MessageType::kApp, false},
      {Role::kFollower, MessageType::kHeartbeat, false},
      {Role::kFollower, MessageType::kVote, false},
      {Role::kCandidate, MessageType::kApp, false},
      {Role::kCandidate, MessageType::kHeartbeat, false},
      {Role::kCandidate, MessageType::kVoteResp, true},
      {Role::kCandidate, MessageType::kVote, false},
      {Role::kLeader, MessageType::kAppResp, false},
      {Role::kLeader, MessageType::kHeartbeatResp, false},
      {Role::kLeader, MessageType::kHeartbeat, false},
      {Role::kLeader, MessageType::kVoteResp, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(to_string(c.from_role)) + " <- " + to_string(c.type));
    // check_quorum off so that leader stickiness does not (rightly) ignore the vote request.
    Solo s(cfg3(1, [](Config& cf) {
      cf.pre_vote = false;
      cf.check_quorum = false;
    }));
    if (c.from_role != Role::kFollower) {
      tick_until(s, Role::kCandidate);
      s.drain();
    }
    if (c.from_role == Role::kLeader) {
      Message granted = msg(MessageType::kVoteResp, 2, 1, s.raft().term().value);
      s.node->step(granted);
      s.drain();
    }
    ASSERT_EQ(s.raft().role(), c.from_role);
    const Term higher = s.raft().term() + 5;
    Message m = msg(c.type, 2, 1, higher.value);
    m.reject = c.reject;
    s.node->step(m);
    EXPECT_EQ(s.raft().role(), Role::kFollower);
    EXPECT_EQ(s.raft().term(), higher);
    const bool from_leader = c.type == MessageType::kApp || c.type == MessageType::kHeartbeat;
    EXPECT_EQ(s.raft().leader(), from_leader ? N(2) : kNoNode);
  }
}

// "If commitIndex > lastApplied: increment lastApplied, apply log[lastApplied] to state
// machine (§5.3)"
TEST(RaftPaper, AllServers_IfCommitIndexGreaterThanLastApplied_ApplyInOrder) {
  TestCluster c(3);
  c.elect(1);
  for (int k = 0; k < 5; ++k) c.propose(1, "cmd" + std::to_string(k));
  c.tick(1);  // a heartbeat carries the final commit index to the followers
  c.stabilize();
  const std::vector<std::string> want = {"cmd0", "cmd1", "cmd2", "cmd3", "cmd4"};
  for (uint64_t id = 1; id <= 3; ++id) {
    SCOPED_TRACE(id);
    EXPECT_EQ(c.applied_data(id), want);
    const auto& applied = c.peer(id).applied;
    for (size_t k = 0; k < applied.size(); ++k) EXPECT_EQ(applied[k].index, I(k + 1));
    EXPECT_EQ(c.raft(id).log().applied(), c.raft(id).log().committed());
    EXPECT_EQ(c.raft(id).log().committed(), I(6));  // the no-op and five commands
  }
}

// ============================================================================================
// Followers

// "Respond to RPCs from candidates and leaders"
TEST(RaftPaper, Followers_RespondToRpcsFromCandidatesAndLeaders) {
  Solo s(cfg3(1));
  s.node->step(vote(3, 1, 1, 0, 0));
  auto out = s.drain_msgs();
  ASSERT_EQ(of_type(out, MessageType::kVoteResp).size(), 1u);
  EXPECT_EQ(of_type(out, MessageType::kVoteResp)[0].to, N(3));

  s.node->step(app(2, 1, 2, 0, 0, {ent(2, 1)}));
  out = s.drain_msgs();
  ASSERT_EQ(of_type(out, MessageType::kAppResp).size(), 1u);
  EXPECT_EQ(of_type(out, MessageType::kAppResp)[0].to, N(2));
  EXPECT_FALSE(of_type(out, MessageType::kAppResp)[0].reject);

  s.node->step(msg(MessageType::kHeartbeat, 2, 1, 2));
  out = s.drain_msgs();
  ASSERT_EQ(of_type(out, MessageType::kHeartbeatResp).size(), 1u);
  EXPECT_EQ(of_type(out, MessageType::kHeartbeatResp)[0].to, N(2));
}

// "If election timeout elapses without receiving AppendEntries RPC from current leader or
// granting vote to candidate: convert to candidate"
TEST(RaftPaper, Followers_ElectionTimeoutWithoutLeader_BecomeCandidate) {
  {  // Silence: the follower campaigns within 2T.
    Solo s(cfg3(1, no_pre_vote));
    for (int k = 0; k < 2 * kElection; ++k) s.node->tick();
    EXPECT_EQ(s.raft().role(), Role::kCandidate);
    EXPECT_EQ(s.raft().term(), T(1));
  }
  {  // Heartbeats from the leader every T-1 ticks keep it a follower indefinitely.
    Solo s(cfg3(1, no_pre_vote));
    follow(s, 2, 1);
    for (int round = 0; round < 20; ++round) {
      for (int k = 0; k < kElection - 1; ++k) s.node->tick();
      s.node->step(msg(MessageType::kHeartbeat, 2, 1, 1));
      s.drain();
    }
    EXPECT_EQ(s.raft().role(), Role::kFollower);
    EXPECT_EQ(s.raft().term(), T(1));
  }
  {  // Granting a vote also resets the timer.
    Solo s(cfg3(1, no_pre_vote));
    for (int round = 0; round < 20; ++round) {
      for (int k = 0; k < kElection - 1; ++k) s.node->tick();
      const uint64_t t = s.raft().term().value + 1;
      s.node->step(vote(3, 1, t, 0, 0));
      auto resp = of_type(s.drain_msgs(), MessageType::kVoteResp);
      ASSERT_EQ(resp.size(), 1u);
      ASSERT_FALSE(resp[0].reject);
    }
    EXPECT_EQ(s.raft().role(), Role::kFollower);
    EXPECT_EQ(s.raft().vote(), N(3));
  }
}

// ============================================================================================
// Candidates

// "On conversion to candidate, start election: increment currentTerm; vote for self; reset
// election timer; send RequestVote RPCs to all other servers"
TEST(RaftPaper, Candidates_OnConversion_IncrementTermVoteForSelfResetTimerSendRequestVote) {
  Solo s(cfg3(1, no_pre_vote), with_log({1, 1, 2}, 2));
  ASSERT_EQ(s.raft().term(), T(2));
  tick_until(s, Role::kCandidate);
  EXPECT_EQ(s.raft().term(), T(3));
  EXPECT_EQ(s.raft().vote(), N(1));
  Ready rd = s.drain();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->term, T(3));
  EXPECT_EQ(rd.hard_state->vote, N(1));
  // The requests promise our own vote: they leave only after it is durable.
  EXPECT_TRUE(of_type(rd.messages, MessageType::kVote).empty());
  auto votes = of_type(rd.persisted_messages, MessageType::kVote);
  ASSERT_EQ(votes.size(), 2u);
  std::set<NodeId> to;
  for (const Message& m : votes) {
    to.insert(m.to);
    EXPECT_EQ(m.term, T(3));
    EXPECT_EQ(m.index, I(3));
    EXPECT_EQ(m.log_term, T(2));
  }
  EXPECT_EQ(to, (std::set<NodeId>{N(2), N(3)}));
  // The timer was reset: another election needs at least a full timeout.
  for (int k = 0; k < kElection - 1; ++k) s.node->tick();
  EXPECT_EQ(s.raft().term(), T(3));
}

// "If votes received from majority of servers: become leader"
TEST(RaftPaper, Candidates_VotesFromMajority_BecomeLeader) {
  struct Case {
    size_t size;
    std::vector<std::pair<uint64_t, bool>> votes;  // (voter, granted)
    Role want;
  };
  const Case cases[] = {
      {1, {}, Role::kLeader},
      {3, {{2, true}}, Role::kLeader},
      {3, {{2, true}, {3, true}}, Role::kLeader},
      {3, {{2, false}}, Role::kCandidate},
      {3, {{2, false}, {3, false}}, Role::kFollower},
      {5, {{2, true}}, Role::kCandidate},
      {5, {{2, true}, {3, true}}, Role::kLeader},
      {5, {{2, false}, {3, false}}, Role::kCandidate},
      {5, {{2, false}, {3, false}, {4, false}}, Role::kFollower},
      {5, {{2, true}, {3, false}, {4, false}, {5, true}}, Role::kLeader},
      {5, {{2, true}, {2, true}}, Role::kCandidate},  // a duplicate vote counts once
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "size " << c.size << " votes " << c.votes.size());
    Config cf = test_config(N(1), ids(c.size));
    cf.pre_vote = false;
    Solo s(cf);
    for (int k = 0; k < 2 * kElection && s.raft().role() == Role::kFollower; ++k) s.node->tick();
    for (auto [voter, granted] : c.votes) {
      Message m = msg(MessageType::kVoteResp, voter, 1, s.raft().term().value);
      m.reject = !granted;
      s.node->step(m);
    }
    EXPECT_EQ(s.raft().role(), c.want);
    EXPECT_EQ(s.raft().term(), T(1));
  }
}

// "If AppendEntries RPC received from new leader: convert to follower"
TEST(RaftPaper, Candidates_AppendEntriesFromNewLeader_BecomeFollower) {
  for (uint64_t term_delta : {0, 1}) {
    SCOPED_TRACE(term_delta);
    Solo s(cfg3(1, no_pre_vote));
    tick_until(s, Role::kCandidate);
    s.drain();
    const uint64_t t = s.raft().term().value + term_delta;
    s.node->step(app(2, 1, t, 0, 0, {ent(t, 1, "x")}));
    EXPECT_EQ(s.raft().role(), Role::kFollower);
    EXPECT_EQ(s.raft().leader(), N(2));
    EXPECT_EQ(s.raft().term(), T(t));
    auto resp = of_type(s.drain().persisted_messages, MessageType::kAppResp);
    ASSERT_EQ(resp.size(), 1u);
    EXPECT_FALSE(resp[0].reject);
    EXPECT_EQ(resp[0].index, I(1));
  }
}

// "If election timeout elapses: start new election"
TEST(RaftPaper, Candidates_ElectionTimeoutElapses_StartNewElection) {
  Solo s(cfg3(1, no_pre_vote));
  tick_until(s, Role::kCandidate);
  ASSERT_EQ(s.raft().term(), T(1));
  s.drain();
  for (int k = 0; k < 2 * kElection; ++k) s.node->tick();
  EXPECT_EQ(s.raft().role(), Role::kCandidate);
  EXPECT_EQ(s.raft().term(), T(2));
  EXPECT_EQ(of_type(s.drain().persisted_messages, MessageType::kVote).size(), 2u);
}

// ============================================================================================
// Leaders

// "Upon election: send initial empty AppendEntries RPCs (heartbeat) to each server; repeat
// during idle periods to prevent election timeouts (§5.2)"
TEST(RaftPaper, Leaders_UponElection_SendHeartbeats) {
  Solo s(cfg3(1, no_pre_vote));
  tick_until(s, Role::kCandidate);
  s.drain();
  s.node->step(msg(MessageType::kVoteResp, 2, 1, 1));
  ASSERT_EQ(s.raft().role(), Role::kLeader);
  Ready rd = s.drain();
  auto apps = of_type(rd.messages, MessageType::kApp);
  ASSERT_EQ(apps.size(), 2u);  // one to each follower at once (carrying the no-op)
  std::set<NodeId> to;
  for (const Message& m : apps) to.insert(m.to);
  EXPECT_EQ(to, (std::set<NodeId>{N(2), N(3)}));

  // Idle periods: one heartbeat to every follower each heartbeat interval.
  s.node->tick();
  auto hbs = of_type(s.drain().messages, MessageType::kHeartbeat);
  EXPECT_EQ(hbs.size(), 2u);

  // And in a live cluster the heartbeats keep everyone a follower for a long time.
  TestCluster c(3);
  c.elect(1);
  const Term term = c.raft(1).term();
  for (int k = 0; k < 20 * kElection; ++k) {
    c.tick_all();
    c.stabilize();
  }
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  EXPECT_EQ(c.raft(1).term(), term);
  EXPECT_EQ(c.raft(2).leader(), N(1));
  EXPECT_EQ(c.raft(3).leader(), N(1));
}

// "If command received from client: append entry to local log, respond after entry applied to
// state machine (§5.3)"
TEST(RaftPaper, Leaders_CommandFromClient_AppendEntryToLocalLog) {
  TestCluster c(3);
  c.elect(1);
  const LogIndex last = c.raft(1).log().last_index();
  c.isolate(2);
  c.isolate(3);
  auto r = c.node(1).propose("set x");
  EXPECT_EQ(r.status, ProposeStatus::kAppended);
  EXPECT_EQ(r.first_index, last + 1);
  EXPECT_EQ(r.term, c.raft(1).term());
  EXPECT_EQ(c.raft(1).log().last_index(), last + 1);
  EXPECT_EQ(c.raft(1).log().term_or_zero(last + 1), c.raft(1).term());
  c.stabilize();
  // In the local (durable) log, but not applied: no majority holds it yet.
  EXPECT_EQ(c.storage(1).last_index(), last + 1);
  EXPECT_TRUE(c.applied_data(1).empty());
  c.heal();
  c.tick(1);
  c.stabilize();
  EXPECT_EQ(c.applied_data(1), std::vector<std::string>{"set x"});
}

// "If last log index >= nextIndex for a follower: send AppendEntries RPC with log entries
// starting at nextIndex"
TEST(RaftPaper, Leaders_LastLogIndexAtLeastNextIndex_SendAppendEntries) {
  TestCluster c(3);
  c.elect(1);
  const LogIndex last = c.raft(1).log().last_index();
  const Term term = c.raft(1).term();
  for (const auto& p : c.node(1).status().progress) EXPECT_EQ(p.next, last + 1);
  c.node(1).propose("a");
  c.process_ready(1);
  auto apps = of_type(c.take_queue(), MessageType::kApp);
  ASSERT_EQ(apps.size(), 2u);
  for (const Message& m : apps) {
    EXPECT_EQ(m.index, last);  // prev = nextIndex - 1
    EXPECT_EQ(m.log_term, term);
    ASSERT_EQ(m.entries.size(), 1u);
    EXPECT_EQ(m.entries[0].index, last + 1);
    EXPECT_EQ(m.entries[0].data, "a");
  }
  // Nothing to send when last log index < nextIndex: a tick sends heartbeats, not appends.
  c.stabilize();
  c.tick(1);
  c.process_ready(1);
  auto out = c.take_queue();
  EXPECT_TRUE(of_type(out, MessageType::kApp).empty());
  EXPECT_EQ(of_type(out, MessageType::kHeartbeat).size(), 2u);
}

// "If successful: update nextIndex and matchIndex for follower (§5.3)"
TEST(RaftPaper, Leaders_SuccessfulAppend_UpdateNextIndexAndMatchIndex) {
  Solo s(cfg3(1, no_pre_vote));
  tick_until(s, Role::kCandidate);
  s.drain();
  s.node->step(msg(MessageType::kVoteResp, 2, 1, 1));
  s.drain();  // persists the no-op at index 1
  auto peer2 = [&] { return s.node->status().progress.at(1); };
  ASSERT_EQ(peer2().id, N(2));
  EXPECT_EQ(peer2().match, I(0));
  EXPECT_EQ(peer2().state, ProgressState::kProbe);

  Message ack = msg(MessageType::kAppResp, 2, 1, 1);
  ack.index = I(1);
  s.node->step(ack);
  EXPECT_EQ(peer2().match, I(1));
  EXPECT_EQ(peer2().next, I(2));
  EXPECT_EQ(peer2().state, ProgressState::kReplicate);

  s.node->propose(std::vector<std::string>{"a", "b"});
  s.drain();
  EXPECT_EQ(peer2().next, I(4));  // optimistic in replicate: both entries are in flight
  ack.index = I(3);
  s.node->step(ack);
  EXPECT_EQ(peer2().match, I(3));
  EXPECT_EQ(peer2().next, I(4));
  ack.index = I(2);  // a reordered, older ack changes nothing
  s.node->step(ack);
  EXPECT_EQ(peer2().match, I(3));
  EXPECT_EQ(peer2().next, I(4));
}

// "If AppendEntries fails because of log inconsistency: decrement nextIndex and retry (§5.3)"
// Balsa backs up a whole term per round trip: the follower replies with the conflicting term
// and the first index it holds of that term (or its last index + 1 if its log is too short).
TEST(RaftPaper, Leaders_AppendFailsBecauseOfInconsistency_DecrementNextIndexAndRetry) {
  struct Case {
    std::string name;
    std::vector<uint64_t> follower;
    // Expected rejections: (rejected prev index, conflict term, hint).
    std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> rejects;
    // Prev indexes of the leader's appends, in order; the last one only carries the new commit.
    std::vector<uint64_t> probes;
  };
  // Leader log of Figure 7: terms 1 1 1 4 4 5 5 6 6 6, then its no-op in term 8.
  const std::vector<uint64_t> leader = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  const Case cases[] = {
      // Figure 7 (f): extra entries of terms 2 and 3 the leader never had.
      {"f", {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}, {{10, 3, 7}, {6, 2, 4}}, {10, 6, 3, 11}},
      // Figure 7 (e)-like: too short, then a term (4) the leader also has.
      {"e", {1, 1, 1, 4, 4, 4, 4}, {{10, 0, 8}, {7, 4, 4}}, {10, 7, 5, 11}},
      // Figure 7 (a)-like: simply missing the tail.
      {"a", {1, 1, 1, 4, 4, 5, 5, 6, 6}, {{10, 0, 10}}, {10, 9, 11}},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    TestCluster c(0);
    for (uint64_t id : {1, 2}) {
      Config cf = test_config(N(id), ids(2));
      cf.pre_vote = false;
      c.add(cf, with_log(id == 1 ? leader : tc.follower, 7));
    }
    c.elect(1);
    c.stabilize();
    std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> rejects;
    std::vector<uint64_t> probes;
    for (const Message& m : c.sent()) {
      if (m.type == MessageType::kAppResp && m.reject)
        rejects.emplace_back(m.index.value, m.log_term.value, m.reject_hint.value);
      if (m.type == MessageType::kApp && m.to == N(2)) probes.push_back(m.index.value);
    }
    EXPECT_EQ(rejects, tc.rejects);
    EXPECT_EQ(probes, tc.probes);
    EXPECT_EQ(log_terms(c.raft(2)), log_terms(c.raft(1)));
    EXPECT_EQ(c.raft(2).log().last_index(), I(11));
    EXPECT_EQ(c.raft(1).log().committed(), I(11));
  }
}

// "If there exists an N such that N > commitIndex, a majority of matchIndex[i] >= N, and
// log[N].term == currentTerm: set commitIndex = N (§5.3, §5.4)"
// Figure 8: a leader of term 3 must not commit an entry of term 2 just because a majority
// holds it; only once an entry of its own term is on a majority.
TEST(RaftPaper, Leaders_CommitIndexOnlyForCurrentTermEntriesByCounting) {
  for (bool planted : {false, true}) {
    SCOPED_TRACE(planted ? "planted bug (negative control)" : "correct");
    Solo s(cfg3(1, [&](Config& c) {
             c.pre_vote = false;
             if (planted) c.planted_bug = PlantedBug::kCommitPreviousTerm;
           }),
           with_log({1, 2}, 2));
    tick_until(s, Role::kCandidate);
    s.drain();
    s.node->step(msg(MessageType::kVoteResp, 2, 1, 3));
    ASSERT_EQ(s.raft().role(), Role::kLeader);
    s.drain();  // persists the no-op at index 3 (term 3)
    ASSERT_EQ(s.raft().log().last_index(), I(3));

    Message ack = msg(MessageType::kAppResp, 2, 1, 3);
    ack.index = I(2);  // node 2 holds the term-2 entry: a majority (1 and 2) has index 2
    s.node->step(ack);
    EXPECT_EQ(s.raft().log().committed(), planted ? I(2) : I(0));

    ack.index = I(3);  // now the current term's entry is on a majority
    s.node->step(ack);
    EXPECT_EQ(s.raft().log().committed(), I(3));
  }
}

// ============================================================================================
// RequestVote RPC, receiver implementation

// "1. Reply false if term < currentTerm (§5.1)"
// Balsa drops a stale vote request (counted in stale_term) instead of answering: the candidate
// learns the newer term from anyone else. A stale pre-vote gets an explicit rejection, which
// a pre-candidate needs because its term does not move.
TEST(RaftPaper, RequestVote_ReplyFalseIfTermLessThanCurrentTerm) {
  Solo s(cfg3(1), with_log({}, 5));
  ASSERT_EQ(s.raft().term(), T(5));
  s.node->step(vote(2, 1, 3, 10, 3));
  auto out = s.drain_msgs();
  for (const Message& m : of_type(out, MessageType::kVoteResp)) EXPECT_TRUE(m.reject);
  EXPECT_EQ(s.raft().vote(), kNoNode);
  EXPECT_EQ(s.raft().term(), T(5));
  EXPECT_EQ(s.node->stats().stale_term, 1u);

  s.node->step(vote(2, 1, 4, 10, 3, MessageType::kPreVote));
  auto pre = of_type(s.drain_msgs(), MessageType::kPreVoteResp);
  ASSERT_EQ(pre.size(), 1u);
  EXPECT_TRUE(pre[0].reject);
  EXPECT_EQ(pre[0].term, T(5));
  EXPECT_EQ(s.raft().vote(), kNoNode);
}

// "2. If votedFor is null or candidateId, and candidate's log is at least as up-to-date as
// receiver's log, grant vote (§5.2, §5.4)"
TEST(RaftPaper, RequestVote_GrantIfVotedForIsNullOrCandidateAndLogUpToDate) {
  struct Case {
    uint64_t index, term;
    bool grant;
  };
  // The voter's log: terms 1 1 2 (last index 3, last term 2).
  const Case cases[] = {
      {3, 2, true},   // same last entry
      {4, 2, true},   // same term, longer
      {2, 2, false},  // same term, shorter
      {1, 3, true},   // higher last term wins regardless of length
      {5, 1, false},  // lower last term loses regardless of length
      {3, 1, false},
      {0, 0, false},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(testing::Message() << "candidate last (" << tc.index << ", " << tc.term << ")");
    Solo s(cfg3(1), with_log({1, 1, 2}, 2));
    s.node->step(vote(2, 1, 3, tc.index, tc.term));
    auto resp = of_type(s.drain_msgs(), MessageType::kVoteResp);
    ASSERT_EQ(resp.size(), 1u);
    EXPECT_EQ(resp[0].reject, !tc.grant);
    EXPECT_EQ(s.raft().vote(), tc.grant ? N(2) : kNoNode);
    EXPECT_EQ(s.raft().term(), T(3));  // the term is adopted either way
  }
}

// "Each server will vote for at most one candidate in a given term, on a first-come-first-served
// basis (§5.2)"
TEST(RaftPaper, RequestVote_OneVotePerTerm) {
  Solo s(cfg3(1));
  auto ask = [&](uint64_t from, uint64_t term) {
    s.node->step(vote(from, 1, term, 0, 0));
    auto resp = of_type(s.drain_msgs(), MessageType::kVoteResp);
    EXPECT_EQ(resp.size(), 1u);
    return !resp.empty() && !resp[0].reject;
  };
  EXPECT_TRUE(ask(2, 1));
  EXPECT_FALSE(ask(3, 1));  // already voted for 2 in term 1
  EXPECT_TRUE(ask(2, 1));   // a retransmitted request from the same candidate is granted again
  EXPECT_EQ(s.raft().vote(), N(2));
  EXPECT_TRUE(ask(3, 2));   // a new term, a new vote
  EXPECT_EQ(s.raft().vote(), N(3));
  EXPECT_FALSE(ask(2, 2));
}

// ============================================================================================
// AppendEntries RPC, receiver implementation

// "1. Reply false if term < currentTerm (§5.1)"
// The reply carries the receiver's newer term, so the stale leader steps down.
TEST(RaftPaper, AppendEntries_ReplyFalseIfTermLessThanCurrentTerm) {
  Solo s(cfg3(1));
  follow(s, 2, 5);
  s.node->step(app(3, 1, 3, 0, 0, {ent(3, 1, "stale")}));
  Ready rd = s.drain();
  EXPECT_TRUE(rd.entries.empty());
  EXPECT_EQ(s.raft().log().last_index(), I(0));
  EXPECT_EQ(s.raft().term(), T(5));
  EXPECT_EQ(s.raft().leader(), N(2));
  std::vector<Message> out = rd.messages;
  out.insert(out.end(), rd.persisted_messages.begin(), rd.persisted_messages.end());
  auto resp = of_type(out, MessageType::kAppResp);
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_EQ(resp[0].to, N(3));
  EXPECT_EQ(resp[0].term, T(5));
  EXPECT_EQ(resp[0].index, I(0));  // acknowledges nothing

  // That reply makes a stale leader step down.
  TestCluster c(3);
  c.elect(1);
  const Term old = c.raft(1).term();
  Message newer = msg(MessageType::kAppResp, 2, 1, old.value + 1);
  c.node(1).step(newer);
  EXPECT_EQ(c.raft(1).role(), Role::kFollower);
  EXPECT_EQ(c.raft(1).term(), old + 1);
}

// "2. Reply false if log doesn't contain an entry at prevLogIndex whose term matches
// prevLogTerm (§5.3)"
TEST(RaftPaper, AppendEntries_ReplyFalseIfLogDoesntContainPrevEntry) {
  struct Case {
    uint64_t prev_index, prev_term;
    bool reject;
    uint64_t conflict_term, hint;
  };
  // Follower log: terms 1 1 2.
  const Case cases[] = {
      {3, 3, true, 2, 3},  // entry 3 exists with another term: conflict term 2 starts at 3
      {2, 2, true, 1, 1},  // entry 2 has term 1, which starts at 1
      {5, 2, true, 0, 4},  // no entry 5: hint is last index + 1
      {3, 2, false, 0, 0},
      {0, 0, false, 0, 0},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(testing::Message() << "prev (" << tc.prev_index << ", " << tc.prev_term << ")");
    Solo s(cfg3(1), with_log({1, 1, 2}, 2));
    s.node->step(app(2, 1, 3, tc.prev_index, tc.prev_term, {ent(3, tc.prev_index + 1, "n")}));
    Ready rd = s.drain();
    auto resp = of_type(rd.persisted_messages, MessageType::kAppResp);
    ASSERT_EQ(resp.size(), 1u);
    EXPECT_EQ(resp[0].reject, tc.reject);
    if (tc.reject) {
      EXPECT_EQ(resp[0].index, I(tc.prev_index));
      EXPECT_EQ(resp[0].log_term, T(tc.conflict_term));
      EXPECT_EQ(resp[0].reject_hint, I(tc.hint));
      EXPECT_TRUE(rd.entries.empty());
      EXPECT_EQ(log_terms(s.raft()), terms({1, 1, 2}));
    } else {
      EXPECT_EQ(resp[0].index, I(tc.prev_index + 1));
    }
  }
}

// "3. If an existing entry conflicts with a new one (same index but different terms), delete
// the existing entry and all that follow it (§5.3)"
TEST(RaftPaper, AppendEntries_ConflictingEntryDeletesItAndAllThatFollow) {
  struct Case {
    std::vector<uint64_t> follower;
    uint64_t prev_index, prev_term;
    std::vector<Entry> entries;
    std::vector<Term> want;
  };
  const Case cases[] = {
      {{1, 2, 2}, 1, 1, {ent(3, 2)}, terms({1, 3})},
      {{1, 1, 1}, 0, 0, {ent(1, 1), ent(3, 2)}, terms({1, 3})},
      {{1, 1, 2, 2, 2}, 2, 1, {ent(2, 3), ent(3, 4)}, terms({1, 1, 2, 3})},
  };
  for (const Case& tc : cases) {
    Solo s(cfg3(1), with_log(tc.follower, 2));
    s.node->step(app(2, 1, 3, tc.prev_index, tc.prev_term, tc.entries));
    Ready rd = s.drain();
    EXPECT_EQ(log_terms(s.raft()), tc.want);
    // The durable log was truncated too (the harness wrote rd.entries over the old suffix).
    EXPECT_EQ(s.storage->last_index(), I(tc.want.size()));
    ASSERT_FALSE(rd.entries.empty());
    EXPECT_EQ(rd.entries.back().term, tc.want.back());
  }
}

// "4. Append any new entries not already in the log"
TEST(RaftPaper, AppendEntries_AppendNewEntriesNotAlreadyInLog) {
  {
    Solo s(cfg3(1), with_log({1, 1}, 1));
    s.node->step(app(2, 1, 1, 0, 0, {ent(1, 1, "e1"), ent(1, 2, "e2"), ent(1, 3, "new")}));
    Ready rd = s.drain();
    ASSERT_EQ(rd.entries.size(), 1u);  // only the entry that was not there
    EXPECT_EQ(rd.entries[0].index, I(3));
    EXPECT_EQ(rd.entries[0].data, "new");
    auto resp = of_type(rd.persisted_messages, MessageType::kAppResp);
    ASSERT_EQ(resp.size(), 1u);
    EXPECT_EQ(resp[0].index, I(3));
  }
  {  // An old, shorter append must not truncate entries it does not conflict with.
    Solo s(cfg3(1), with_log({1, 1, 1}, 1));
    s.node->step(app(2, 1, 1, 0, 0, {ent(1, 1, "e1")}));
    Ready rd = s.drain();
    EXPECT_TRUE(rd.entries.empty());
    EXPECT_EQ(s.raft().log().last_index(), I(3));
    auto resp = of_type(rd.persisted_messages, MessageType::kAppResp);
    ASSERT_EQ(resp.size(), 1u);
    EXPECT_EQ(resp[0].index, I(1));  // acknowledges what this message covered
  }
}

// "5. If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last new
// entry)"
TEST(RaftPaper, AppendEntries_SetCommitIndexToMinLeaderCommitAndLastNewEntry) {
  struct Case {
    uint64_t prev_index;
    std::vector<Entry> entries;
    uint64_t leader_commit, want;
  };
  // Follower log: terms 1 1 1 1.
  const Case cases[] = {
      {1, {ent(1, 2)}, 4, 2},  // last new entry bounds it: entries 3-4 are not vouched for
      {1, {ent(1, 2)}, 1, 1},
      {1, {ent(1, 2)}, 2, 2},
      {3, {}, 4, 3},
      {0, {ent(1, 1), ent(1, 2), ent(1, 3), ent(1, 4)}, 4, 4},
      {2, {}, 0, 0},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(testing::Message() << "prev " << tc.prev_index << " commit " << tc.leader_commit);
    Solo s(cfg3(1), with_log({1, 1, 1, 1}, 1));
    s.node->step(app(2, 1, 1, tc.prev_index, tc.prev_index ? 1 : 0, tc.entries, tc.leader_commit));
    EXPECT_EQ(s.raft().log().committed(), I(tc.want));
    Ready rd = s.drain();
    EXPECT_EQ(rd.committed_entries.size(), tc.want);
  }
}

// ============================================================================================
// Persistent state

// "Persistent state on all servers: (Updated on stable storage before responding to RPCs)
// currentTerm, votedFor, log[]"
TEST(RaftPaper, PersistentState_TermAndVoteDurableBeforeResponding) {
  {  // A vote response waits for the vote to be durable.
    Solo s(cfg3(1));
    s.node->step(vote(2, 1, 1, 0, 0));
    Ready rd = s.node->ready();
    EXPECT_TRUE(of_type(rd.messages, MessageType::kVoteResp).empty());
    ASSERT_EQ(of_type(rd.persisted_messages, MessageType::kVoteResp).size(), 1u);
    ASSERT_TRUE(rd.hard_state.has_value());
    EXPECT_EQ(rd.hard_state->term, T(1));
    EXPECT_EQ(rd.hard_state->vote, N(2));
    EXPECT_TRUE(rd.must_sync);
    s.node->advance(rd);
  }
  {  // An append ack waits for the entries.
    Solo s(cfg3(1));
    s.node->step(app(2, 1, 1, 0, 0, {ent(1, 1, "x")}));
    Ready rd = s.node->ready();
    EXPECT_TRUE(of_type(rd.messages, MessageType::kAppResp).empty());
    ASSERT_EQ(of_type(rd.persisted_messages, MessageType::kAppResp).size(), 1u);
    EXPECT_EQ(rd.entries.size(), 1u);
    EXPECT_TRUE(rd.must_sync);
    s.node->advance(rd);
  }
  {  // Across a whole cluster run: every grant and ack is backed by the sender's storage.
    TestCluster c(3);
    int checked = 0;
    c.set_filter([&](Message& m) {
      MemoryStorage& st = c.storage(m.from.value);
      const HardState hs = st.initial_state().hard_state;
      if (m.type == MessageType::kVoteResp && !m.reject) {
        EXPECT_EQ(hs.term, m.term);
        EXPECT_EQ(hs.vote, m.to);
        ++checked;
      }
      if (m.type == MessageType::kAppResp && !m.reject && m.index.value > 0) {
        EXPECT_GE(st.last_index(), m.index);
        EXPECT_GE(hs.term, m.term);
        ++checked;
      }
      return true;
    });
    c.elect(1);
    for (int k = 0; k < 3; ++k) c.propose(1, "w" + std::to_string(k));
    c.isolate(1);
    for (int k = 0; k < 3 * kElection; ++k) {
      c.tick(2);
      c.tick(3);
      c.stabilize();
    }
    const uint64_t leader = c.raft(2).role() == Role::kLeader ? 2 : 3;
    ASSERT_EQ(c.raft(leader).role(), Role::kLeader);
    c.propose(leader, "after");
    EXPECT_GE(checked, 10);
  }
}

// ============================================================================================
// Pre-vote (thesis §9.6)

// "a candidate first asks whether its log is up-to-date enough to get votes; only if a majority
// would vote does it increment its term" -- so a partitioned node cannot inflate its term.
TEST(RaftPaper, PreVote_PartitionedNodeDoesNotInflateTerm) {
  for (bool pre_vote : {true, false}) {
    SCOPED_TRACE(pre_vote ? "pre-vote" : "no pre-vote (control)");
    TestCluster c(3, [&](Config& cf) { cf.pre_vote = pre_vote; });
    c.elect(1);
    const Term term = c.raft(1).term();
    c.isolate(3);
    for (int k = 0; k < 10 * kElection; ++k) {
      c.tick(3);
      c.stabilize();
    }
    if (!pre_vote) {
      EXPECT_GT(c.raft(3).term(), term);
      continue;
    }
    EXPECT_EQ(c.raft(3).term(), term);
    EXPECT_EQ(c.raft(3).role(), Role::kPreCandidate);
    c.heal();
    for (int k = 0; k < 3 * kElection; ++k) {
      c.tick_all();
      c.stabilize();
    }
    EXPECT_EQ(c.raft(1).role(), Role::kLeader);
    EXPECT_EQ(c.raft(1).term(), term);
    EXPECT_EQ(c.raft(3).role(), Role::kFollower);
    EXPECT_EQ(c.raft(3).leader(), N(1));
  }
}

TEST(RaftPaper, PreVote_DoesNotChangeTermOrVote) {
  {  // The pre-candidate asks for term + 1 without moving to it.
    Solo s(cfg3(1), with_log({1}, 1));
    tick_until(s, Role::kPreCandidate);
    EXPECT_EQ(s.raft().term(), T(1));
    EXPECT_EQ(s.raft().vote(), kNoNode);
    Ready rd = s.drain();
    EXPECT_FALSE(rd.hard_state.has_value());
    auto pre = of_type(rd.messages, MessageType::kPreVote);  // stateless: sent at once
    ASSERT_EQ(pre.size(), 2u);
    for (const Message& m : pre) {
      EXPECT_EQ(m.term, T(2));
      EXPECT_EQ(m.index, I(1));
      EXPECT_EQ(m.log_term, T(1));
    }
    // Winning the pre-vote starts the real election.
    s.node->step(msg(MessageType::kPreVoteResp, 2, 1, 2));
    EXPECT_EQ(s.raft().role(), Role::kCandidate);
    EXPECT_EQ(s.raft().term(), T(2));
    EXPECT_EQ(s.raft().vote(), N(1));
  }
  {  // The voter grants a pre-vote without adopting the term or recording a vote.
    Solo s(cfg3(1), with_log({1}, 1));
    s.node->step(vote(3, 1, 2, 1, 1, MessageType::kPreVote));
    Ready rd = s.drain();
    EXPECT_FALSE(rd.hard_state.has_value());
    auto resp = of_type(rd.messages, MessageType::kPreVoteResp);
    ASSERT_EQ(resp.size(), 1u);
    EXPECT_FALSE(resp[0].reject);
    EXPECT_EQ(resp[0].term, T(2));
    EXPECT_EQ(s.raft().term(), T(1));
    EXPECT_EQ(s.raft().vote(), kNoNode);
    // And it still grants a real vote to someone else afterwards.
    s.node->step(vote(2, 1, 2, 1, 1));
    auto v = of_type(s.drain_msgs(), MessageType::kVoteResp);
    ASSERT_EQ(v.size(), 1u);
    EXPECT_FALSE(v[0].reject);
  }
}

// ============================================================================================
// Check-quorum and leader stickiness (thesis §6.2, §4.2.3)

// "a leader steps down if an election timeout elapses without a successful round of heartbeats
// to a majority of its cluster"
TEST(RaftPaper, CheckQuorum_LeaderStepsDownWhenItHearsFromNoQuorum) {
  for (bool check_quorum : {true, false}) {
    SCOPED_TRACE(check_quorum ? "check-quorum" : "off (control)");
    TestCluster c(3, [&](Config& cf) { cf.check_quorum = check_quorum; });
    c.elect(1);
    c.isolate(1);
    for (int k = 0; k < 2 * kElection; ++k) {
      c.tick(1);
      c.stabilize();
    }
    EXPECT_EQ(c.raft(1).role(), check_quorum ? Role::kFollower : Role::kLeader);
  }
  {  // One follower suffices for a quorum of 3.
    TestCluster c(3);
    c.elect(1);
    c.cut(1, 3);
    c.cut(3, 1);
    for (int k = 0; k < 5 * kElection; ++k) {
      c.tick(1);
      c.stabilize();
    }
    EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  }
}

// "if a server receives a RequestVote request within the minimum election timeout of hearing
// from a current leader, it does not update its term or grant its vote"
TEST(RaftPaper, LeaderStickiness_IgnoreVoteRequestsWhileLeaderIsLive) {
  TestCluster c(3);
  c.elect(1);
  const Term term = c.raft(1).term();
  const LogIndex last = c.raft(3).log().last_index();
  const Term last_term = c.raft(3).log().last_term();
  const NodeId voted = c.raft(3).vote();
  for (MessageType t : {MessageType::kPreVote, MessageType::kVote}) {
    c.node(3).step(vote(2, 3, term.value + 1, last.value, last_term.value, t));
    c.process_ready(3);
    EXPECT_TRUE(c.take_queue().empty());
    EXPECT_EQ(c.raft(3).term(), term);
    EXPECT_EQ(c.raft(3).vote(), voted);
    EXPECT_EQ(c.raft(3).leader(), N(1));
  }
  EXPECT_EQ(c.node(3).stats().stale_term, 2u);
  // Once an election timeout passes without the leader, the same request is granted.
  c.isolate(1);
  for (int k = 0; k < kElection; ++k) c.tick(3);
  c.stabilize();
  c.heal();
  c.node(3).step(vote(2, 3, term.value + 1, last.value, last_term.value));
  c.process_ready(3);
  auto resp = of_type(c.take_queue(), MessageType::kVoteResp);
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_FALSE(resp[0].reject);
  EXPECT_EQ(c.raft(3).term(), term + 1);
}

// "Raft uses randomized election timeouts ... chosen randomly from a fixed interval"
// Balsa: uniformly in [election_ticks, 2 * election_ticks), from the seeded Rng.
TEST(RaftPaper, ElectionTimeout_RandomizedInRange) {
  std::set<int> seen;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    Solo s(cfg3(1, [&](Config& c) {
      c.pre_vote = false;
      c.seed = seed;
    }));
    int n = 0;
    while (s.raft().role() == Role::kFollower && n < 3 * kElection) {
      s.node->tick();
      ++n;
    }
    EXPECT_GE(n, kElection);
    EXPECT_LT(n, 2 * kElection);
    seen.insert(n);
    // The next timeout (as a candidate) is redrawn from the same range.
    int m = 0;
    while (s.raft().term() == T(1) && m < 3 * kElection) {
      s.node->tick();
      ++m;
    }
    EXPECT_GE(m, kElection);
    EXPECT_LT(m, 2 * kElection);
    seen.insert(m);
  }
  EXPECT_GE(seen.size(), 6u) << "timeouts are not randomized";
  // Same seed, same run.
  auto first_timeout = [](uint64_t seed) {
    Solo s(cfg3(1, [&](Config& c) { c.seed = seed; }));
    int n = 0;
    while (s.raft().role() == Role::kFollower) {
      s.node->tick();
      ++n;
    }
    return n;
  };
  EXPECT_EQ(first_timeout(7), first_timeout(7));
}

// §5.4.2 / thesis §6.4: "each leader commits a blank no-op entry into the log at the start of
// its term", which also commits every earlier entry.
TEST(RaftPaper, Leader_AppendsNoOpEntryOnElection) {
  TestCluster c(0);
  for (uint64_t id = 1; id <= 3; ++id) c.add(test_config(N(id), ids(3)), with_log({1, 1}, 1));
  c.elect(1);
  c.stabilize();
  const Raft& r = c.raft(1);
  ASSERT_EQ(r.term(), T(2));
  ASSERT_EQ(r.log().last_index(), I(3));
  bool compacted = false;
  auto tail = r.log().slice(I(3), I(4), 1 << 20, &compacted);
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0].term, T(2));
  EXPECT_EQ(tail[0].type, EntryType::kNormal);
  EXPECT_TRUE(tail[0].data.empty());
  // The no-op's commit carries the previous term's entries with it.
  EXPECT_EQ(r.log().committed(), I(3));
  c.tick(1);
  c.stabilize();
  for (uint64_t id = 1; id <= 3; ++id) {
    EXPECT_EQ(c.applied_data(id), (std::vector<std::string>{"e1", "e2"}));
    EXPECT_EQ(c.peer(id).applied.size(), 3u);
  }
}

// ============================================================================================
// Client interaction

TEST(RaftPaper, Followers_ForwardProposalsToLeader) {
  TestCluster c(3);
  c.elect(1);
  auto r = c.node(2).propose("via follower");
  EXPECT_EQ(r.status, ProposeStatus::kForwarded);
  EXPECT_EQ(r.leader, N(1));
  c.stabilize();
  c.tick(1);
  c.stabilize();
  for (uint64_t id = 1; id <= 3; ++id)
    EXPECT_EQ(c.applied_data(id), std::vector<std::string>{"via follower"});
}

TEST(RaftPaper, Followers_RefuseProposalsWithLeaderHintWhenNotForwarding) {
  TestCluster c(3, [](Config& cf) { cf.forward_proposals = false; });
  c.elect(1);
  const LogIndex last = c.raft(2).log().last_index();
  auto r = c.node(2).propose("x");
  EXPECT_EQ(r.status, ProposeStatus::kNotLeader);
  EXPECT_EQ(r.leader, N(1));
  EXPECT_EQ(c.node(2).stats().dropped_proposals, 1u);
  c.stabilize();
  EXPECT_TRUE(of_type(c.sent(), MessageType::kProp).empty());
  EXPECT_EQ(c.raft(1).log().last_index(), last);
  // No leader known at all: refused with no hint.
  Solo s(cfg3(1));
  auto r2 = s.node->propose("y");
  EXPECT_EQ(r2.status, ProposeStatus::kNotLeader);
  EXPECT_EQ(r2.leader, kNoNode);
}

// Thesis §3.10: "the leader stops accepting client requests" during a leadership transfer.
TEST(RaftPaper, Leader_ProposalDuringTransferDropped) {
  TestCluster c(3);
  c.elect(1);
  c.isolate(3);
  c.propose(1, "a");  // node 3 falls behind, so the transfer cannot finish at once
  c.node(1).transfer_leadership(N(3));
  EXPECT_EQ(c.node(1).status().transferee, N(3));
  auto r = c.node(1).propose("b");
  EXPECT_EQ(r.status, ProposeStatus::kDropped);
  EXPECT_EQ(c.node(1).stats().dropped_proposals, 1u);
  c.node(2).propose("c");  // forwarded proposals are dropped too
  c.stabilize();
  EXPECT_EQ(c.node(1).stats().dropped_proposals, 2u);
  // An unfinished transfer expires after an election timeout; proposals flow again.
  for (int k = 0; k < kElection; ++k) {
    c.tick(1);
    c.stabilize();
  }
  EXPECT_EQ(c.node(1).status().transferee, kNoNode);
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  EXPECT_EQ(c.node(1).propose("d").status, ProposeStatus::kAppended);
  c.stabilize();
  c.tick(1);
  c.stabilize();
  EXPECT_EQ(c.applied_data(2), (std::vector<std::string>{"a", "d"}));
}

// ============================================================================================
// ReadIndex (thesis §6.4)

TEST(RaftPaper, ReadIndex_SingleNode) {
  TestCluster c(1);
  for (int k = 0; k < 3 * kElection && c.raft(1).role() != Role::kLeader; ++k) c.tick(1);
  ASSERT_EQ(c.raft(1).role(), Role::kLeader);
  // The no-op is not yet durable, so not committed: the read must wait for it.
  ASSERT_EQ(c.raft(1).log().committed(), I(0));
  ASSERT_TRUE(c.node(1).read_index("early"));
  c.stabilize();
  ASSERT_EQ(c.peer(1).read_states.size(), 1u);
  EXPECT_EQ(c.peer(1).read_states[0], (ReadState{I(1), "early"}));
  c.propose(1, "x");
  ASSERT_TRUE(c.node(1).read_index("late"));
  c.stabilize();
  ASSERT_EQ(c.peer(1).read_states.size(), 2u);
  EXPECT_EQ(c.peer(1).read_states[1], (ReadState{I(2), "late"}));
}

// "the leader ... records its current commit index in a local variable readIndex ... sends a new
// round of heartbeats, and waits for their acknowledgments from a majority of the cluster"
TEST(RaftPaper, ReadIndex_ThreeNodes_ReleasedOnlyAfterHeartbeatQuorum) {
  TestCluster c(3);
  c.elect(1);
  c.propose(1, "x");
  const LogIndex commit = c.raft(1).log().committed();
  ASSERT_EQ(commit, I(2));
  c.isolate(2);
  c.isolate(3);
  ASSERT_TRUE(c.node(1).read_index("r1"));
  for (int k = 0; k < 3; ++k) {
    c.tick(1);
    c.stabilize();
  }
  EXPECT_TRUE(c.peer(1).read_states.empty()) << "released without a quorum";
  c.heal();
  c.isolate(3);  // node 2 alone makes a quorum with the leader
  c.tick(1);
  c.process_ready(1);
  auto hbs = of_type(c.take_queue(), MessageType::kHeartbeat);
  ASSERT_EQ(hbs.size(), 1u);
  EXPECT_EQ(hbs[0].context, "r1");
  c.node(2).step(hbs[0]);
  c.stabilize();
  ASSERT_EQ(c.peer(1).read_states.size(), 1u);
  EXPECT_EQ(c.peer(1).read_states[0], (ReadState{commit, "r1"}));
  // A follower's read goes through the leader and comes back as a read state.
  c.heal();
  ASSERT_TRUE(c.node(2).read_index("f"));
  c.stabilize();
  ASSERT_EQ(c.peer(2).read_states.size(), 1u);
  EXPECT_EQ(c.peer(2).read_states[0], (ReadState{commit, "f"}));
}

// "when a leader first starts up ... it needs to commit a blank no-op entry ... before it can
// serve read-only requests"
TEST(RaftPaper, ReadIndex_WaitsForLeaderToCommitEntryOfItsTerm) {
  TestCluster c(3);
  c.set_filter([](Message& m) { return m.type != MessageType::kApp; });
  c.elect(1);
  ASSERT_TRUE(c.node(1).read_index("r"));
  for (int k = 0; k < 3; ++k) {
    c.tick(1);
    c.stabilize();
  }
  EXPECT_EQ(c.raft(1).log().committed(), I(0));
  EXPECT_TRUE(c.peer(1).read_states.empty()) << "served before the no-op committed";
  c.set_filter({});
  c.tick(1);
  c.stabilize();
  ASSERT_EQ(c.raft(1).log().committed(), I(1));
  ASSERT_EQ(c.peer(1).read_states.size(), 1u);
  EXPECT_EQ(c.peer(1).read_states[0], (ReadState{I(1), "r"}));
}

// ============================================================================================
// Leadership transfer (thesis §3.10)

// "the prior leader ... sends it a TimeoutNow request once the target's log is up to date"
TEST(RaftPaper, LeadershipTransfer_TimeoutNowAfterCatchUp) {
  TestCluster c(3);
  c.elect(1);
  const Term term = c.raft(1).term();
  c.isolate(3);
  c.propose(1, "a");
  c.propose(1, "b");
  c.node(1).transfer_leadership(N(3));
  c.stabilize();
  EXPECT_TRUE(of_type(c.sent(), MessageType::kTimeoutNow).empty()) << "target is not caught up";
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
  c.heal();
  c.tick(1);
  c.stabilize();
  auto tn = of_type(c.sent(), MessageType::kTimeoutNow);
  ASSERT_EQ(tn.size(), 1u);
  EXPECT_EQ(tn[0].to, N(3));
  EXPECT_EQ(c.raft(3).role(), Role::kLeader);
  EXPECT_EQ(c.raft(3).term(), term + 1);
  EXPECT_EQ(c.raft(1).role(), Role::kFollower);
  EXPECT_EQ(c.raft(1).leader(), N(3));
  c.propose(3, "c");
  c.tick(3);
  c.stabilize();
  for (uint64_t id = 1; id <= 3; ++id)
    EXPECT_EQ(c.applied_data(id), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(RaftPaper, LeadershipTransfer_ToUpToDateFollowerIsImmediate) {
  TestCluster c(3);
  c.elect(1);
  c.node(1).transfer_leadership(N(2));
  c.process_ready(1);
  auto tn = of_type(c.take_queue(), MessageType::kTimeoutNow);
  ASSERT_EQ(tn.size(), 1u);
  c.node(2).step(tn[0]);
  c.stabilize();
  EXPECT_EQ(c.raft(2).role(), Role::kLeader);
}

// ============================================================================================
// Snapshots (§7)

// "the leader must occasionally send snapshots to followers that lag behind ... when the leader
// has already discarded the next log entry that it needs to send to a follower"
TEST(RaftPaper, Snapshot_SentWhenLogCompacted) {
  TestCluster c(3);
  c.elect(1);
  c.isolate(3);
  for (int k = 0; k < 5; ++k) c.propose(1, "c" + std::to_string(k));
  c.tick(1);
  c.stabilize();
  ASSERT_EQ(c.raft(1).log().applied(), I(6));
  c.storage(1).create_snapshot(I(6), ConfState{ids(3), {}, {}}, "image@6");
  c.storage(1).compact(I(6));
  ASSERT_EQ(c.raft(1).log().first_index(), I(7));
  c.heal();
  c.tick(1);
  c.stabilize();
  auto snaps = of_type(c.sent(), MessageType::kSnap);
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0].to, N(3));
  ASSERT_EQ(c.peer(3).snapshots.size(), 1u);
  EXPECT_EQ(c.peer(3).snapshots[0].metadata.index, I(6));
  EXPECT_EQ(c.peer(3).snapshots[0].data, "image@6");
  EXPECT_EQ(c.raft(3).log().first_index(), I(7));
  EXPECT_EQ(c.raft(3).log().committed(), I(6));
  // Replication resumes after the snapshot.
  c.propose(1, "after");
  c.tick(1);
  c.stabilize();
  EXPECT_EQ(c.applied_data(3), std::vector<std::string>{"after"});
  EXPECT_EQ(c.raft(3).log().committed(), I(7));
  const auto st = c.node(1).status();
  EXPECT_EQ(st.progress.at(2).match, I(7));
  EXPECT_EQ(st.progress.at(2).state, ProgressState::kReplicate);
}

TEST(RaftPaper, Snapshot_FollowerRestores) {
  auto snap_msg = [](uint64_t index, uint64_t term) {
    Message m = msg(MessageType::kSnap, 2, 1, 2);
    m.snapshot.metadata = SnapshotMetadata{I(index), T(term), ConfState{ids(3), {}, {}}};
    m.snapshot.data = "img";
    return m;
  };
  {  // "If existing log entry has same index and term as snapshot's last included entry, retain
     // log entries following it" -- otherwise "discard the entire log".
    Solo s(cfg3(1), with_log({1, 1}, 1));
    s.node->step(snap_msg(5, 2));
    Ready rd = s.drain();
    ASSERT_TRUE(rd.snapshot.has_value());
    EXPECT_EQ(rd.snapshot->metadata.index, I(5));
    ASSERT_TRUE(rd.hard_state.has_value());
    EXPECT_EQ(rd.hard_state->commit, I(5));
    auto ack = of_type(rd.persisted_messages, MessageType::kAppResp);
    ASSERT_EQ(ack.size(), 1u);
    EXPECT_EQ(ack[0].index, I(5));
    EXPECT_TRUE(rd.committed_entries.empty());  // the snapshot replaces them
    EXPECT_EQ(s.raft().log().first_index(), I(6));
    EXPECT_EQ(s.raft().log().last_index(), I(5));
    EXPECT_EQ(s.raft().log().applied(), I(5));
    EXPECT_EQ(s.raft().log().term_or_zero(I(5)), T(2));
    EXPECT_EQ(s.storage->snapshot().data, "img");
    // The log continues from the snapshot.
    s.node->step(app(2, 1, 2, 5, 2, {ent(2, 6, "next")}, 6));
    rd = s.drain();
    ASSERT_EQ(rd.committed_entries.size(), 1u);
    EXPECT_EQ(rd.committed_entries[0].data, "next");
  }
  {  // The follower already holds the snapshot's last entry: keep the log, advance the commit.
    Solo s(cfg3(1), with_log({1, 2, 2, 2}, 2));
    s.node->step(snap_msg(3, 2));
    Ready rd = s.drain();
    EXPECT_FALSE(rd.snapshot.has_value());
    EXPECT_EQ(s.raft().log().last_index(), I(4));
    EXPECT_EQ(s.raft().log().committed(), I(3));
    EXPECT_EQ(rd.committed_entries.size(), 3u);
  }
  {  // A snapshot older than the commit index is answered with the commit index, not applied.
    Solo s(cfg3(1), with_log({1, 2, 2, 2}, 2, 4));
    s.node->step(snap_msg(3, 2));
    Ready rd = s.drain();
    EXPECT_FALSE(rd.snapshot.has_value());
    auto ack = of_type(rd.persisted_messages, MessageType::kAppResp);
    ASSERT_EQ(ack.size(), 1u);
    EXPECT_EQ(ack[0].index, I(4));
  }
}

}  // namespace
}  // namespace balsa::test
