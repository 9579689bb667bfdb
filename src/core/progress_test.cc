// Table tests for the in-flight window and the per-follower progress state machine.
#include "core/progress.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace balsa {
namespace {

LogIndex I(uint64_t v) { return LogIndex{v}; }

// ---- Inflights

struct InflightOp {
  enum Kind { kAdd, kFreeLe, kFreeFirst, kReset } kind;
  uint64_t index = 0;  // kAdd: last index carried; kFreeLe: acked index
  uint64_t bytes = 0;  // kAdd
  // Expected state after the op.
  size_t count;
  uint64_t total_bytes;
  bool full;
};

struct InflightCase {
  std::string name;
  size_t max_count;
  uint64_t max_bytes;
  std::vector<InflightOp> ops;
};

TEST(Inflights, Table) {
  using K = InflightOp;
  const InflightCase cases[] = {
      {"count bound",
       3,
       0,
       {
           {K::kAdd, 1, 10, 1, 10, false},
           {K::kAdd, 2, 10, 2, 20, false},
           {K::kAdd, 3, 10, 3, 30, true},
           {K::kFreeLe, 0, 0, 3, 30, true},  // acks nothing
           {K::kFreeLe, 2, 0, 1, 10, false},
           {K::kAdd, 4, 10, 2, 20, false},
           {K::kFreeLe, 9, 0, 0, 0, false},
       }},
      {"byte bound",
       10,
       100,
       {
           {K::kAdd, 1, 60, 1, 60, false},
           {K::kAdd, 2, 39, 2, 99, false},
           {K::kAdd, 3, 1, 3, 100, true},  // reaching the byte bound fills the window
           {K::kFreeLe, 1, 0, 2, 40, false},
       }},
      {"one oversized message is allowed, then full",
       10,
       100,
       {
           {K::kAdd, 5, 1000, 1, 1000, true},
           {K::kFreeFirst, 0, 0, 0, 0, false},
       }},
      {"free_le frees by last index, not by slot count",
       10,
       0,
       {
           {K::kAdd, 3, 30, 1, 30, false},
           {K::kAdd, 6, 30, 2, 60, false},
           {K::kAdd, 9, 30, 3, 90, false},
           {K::kFreeLe, 5, 0, 2, 60, false},  // index 5 is inside the second message: not freed
           {K::kFreeLe, 6, 0, 1, 30, false},
           {K::kFreeLe, 8, 0, 1, 30, false},
           {K::kFreeLe, 9, 0, 0, 0, false},
       }},
      {"free_first_one frees the oldest (assumed lost) slot",
       2,
       0,
       {
           {K::kAdd, 1, 5, 1, 5, false},
           {K::kAdd, 2, 7, 2, 12, true},
           {K::kFreeFirst, 0, 0, 1, 7, false},
           {K::kFreeFirst, 0, 0, 0, 0, false},
           {K::kFreeFirst, 0, 0, 0, 0, false},  // on an empty window: no-op
       }},
      {"reset",
       2,
       50,
       {
           {K::kAdd, 1, 25, 1, 25, false},
           {K::kAdd, 2, 25, 2, 50, true},
           {K::kReset, 0, 0, 0, 0, false},
           {K::kAdd, 3, 1, 1, 1, false},
       }},
  };
  for (const InflightCase& tc : cases) {
    SCOPED_TRACE(tc.name);
    Inflights in(tc.max_count, tc.max_bytes);
    EXPECT_FALSE(in.full());
    for (size_t k = 0; k < tc.ops.size(); ++k) {
      SCOPED_TRACE(k);
      const InflightOp& op = tc.ops[k];
      switch (op.kind) {
        case K::kAdd: in.add(I(op.index), op.bytes); break;
        case K::kFreeLe: in.free_le(I(op.index)); break;
        case K::kFreeFirst: in.free_first_one(); break;
        case K::kReset: in.reset(); break;
      }
      EXPECT_EQ(in.count(), op.count);
      EXPECT_EQ(in.bytes(), op.total_bytes);
      EXPECT_EQ(in.full(), op.full);
    }
  }
}

// ---- Progress

Progress make(ProgressState state, uint64_t match, uint64_t next) {
  Progress p(I(next), 4, 0);
  p.match = I(match);
  switch (state) {
    case ProgressState::kProbe: break;
    case ProgressState::kReplicate:
      p.become_replicate();
      p.next = I(next);
      break;
    case ProgressState::kSnapshot: p.become_snapshot(I(next)); break;
  }
  return p;
}

TEST(Progress, MaybeUpdate) {
  struct Case {
    uint64_t match, next, ack;
    bool updated;
    uint64_t want_match, want_next;
  };
  const Case cases[] = {
      {0, 5, 3, true, 3, 5},   // match advances; next already beyond
      {3, 5, 7, true, 7, 8},   // next follows match
      {7, 8, 6, false, 7, 8},  // an old ack changes nothing
      {7, 8, 7, false, 7, 8},  // a duplicate ack too
      {0, 1, 0, false, 0, 1},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(testing::Message() << tc.match << "/" << tc.next << " ack " << tc.ack);
    Progress p = make(ProgressState::kProbe, tc.match, tc.next);
    p.probe_sent = true;
    EXPECT_EQ(p.maybe_update(I(tc.ack)), tc.updated);
    EXPECT_EQ(p.match, I(tc.want_match));
    EXPECT_EQ(p.next, I(tc.want_next));
    EXPECT_EQ(p.probe_sent, !tc.updated);  // an ack that moves match unblocks the probe
  }
}

TEST(Progress, MaybeDecreaseTo) {
  struct Case {
    std::string name;
    ProgressState state;
    uint64_t match, next;
    uint64_t rejected, retry;
    bool accepted;
    uint64_t want_next;
    ProgressState want_state;
  };
  using S = ProgressState;
  const Case cases[] = {
      {"replicate: stale rejection at match", S::kReplicate, 5, 10, 5, 2, false, 10, S::kReplicate},
      {"replicate: stale rejection below match", S::kReplicate, 5, 10, 4, 2, false, 10, S::kReplicate},
      {"replicate: real rejection drops to probe at the hint", S::kReplicate, 5, 10, 9, 7, true, 7, S::kProbe},
      {"replicate: hint below match is clamped to match+1", S::kReplicate, 5, 10, 9, 2, true, 6, S::kProbe},
      {"replicate: hint above rejected is clamped to rejected", S::kReplicate, 5, 10, 8, 20, true, 8, S::kProbe},
      {"probe: rejection of an older probe is ignored", S::kProbe, 0, 10, 8, 3, false, 10, S::kProbe},
      {"probe: rejection of the outstanding probe", S::kProbe, 0, 10, 9, 3, true, 3, S::kProbe},
      {"probe: hint 0 never yields next 0", S::kProbe, 0, 10, 9, 0, true, 1, S::kProbe},
      {"probe: hint above rejected is clamped", S::kProbe, 2, 10, 9, 50, true, 9, S::kProbe},
      {"snapshot: rejections are ignored", S::kSnapshot, 2, 10, 9, 3, false, 3, S::kSnapshot},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    Progress p = make(tc.state, tc.match, tc.next);
    const LogIndex next_before = p.next;
    p.probe_sent = tc.state == S::kProbe;
    EXPECT_EQ(p.maybe_decrease_to(I(tc.rejected), I(tc.retry)), tc.accepted);
    EXPECT_EQ(p.state, tc.want_state);
    EXPECT_EQ(p.match, I(tc.match));
    if (tc.state == S::kSnapshot) {
      EXPECT_EQ(p.next, next_before);
    } else {
      EXPECT_EQ(p.next, I(tc.want_next));
    }
    if (tc.accepted) {
      EXPECT_FALSE(p.probe_sent);
    }
  }
}

TEST(Progress, StateTransitions) {
  {  // probe -> replicate: next = match + 1, window empty.
    Progress p(I(10), 4, 0);
    p.match = I(6);
    p.probe_sent = true;
    p.become_replicate();
    EXPECT_EQ(p.state, ProgressState::kReplicate);
    EXPECT_EQ(p.next, I(7));
    EXPECT_FALSE(p.probe_sent);
    EXPECT_EQ(p.inflights.count(), 0u);
  }
  {  // replicate -> probe: restart right after match, window cleared.
    Progress p = make(ProgressState::kReplicate, 3, 4);
    p.sent_entries(I(5), 10, 2);
    p.sent_entries(I(8), 10, 3);
    EXPECT_EQ(p.next, I(9));
    EXPECT_EQ(p.inflights.count(), 2u);
    p.become_probe();
    EXPECT_EQ(p.state, ProgressState::kProbe);
    EXPECT_EQ(p.next, I(4));
    EXPECT_EQ(p.inflights.count(), 0u);
  }
  {  // snapshot -> probe: resume after the snapshot if the follower got that far.
    Progress p = make(ProgressState::kProbe, 3, 4);
    p.become_snapshot(I(20));
    EXPECT_EQ(p.state, ProgressState::kSnapshot);
    EXPECT_EQ(p.pending_snapshot, I(20));
    EXPECT_TRUE(p.is_paused());
    p.become_probe();
    EXPECT_EQ(p.next, I(21));
    EXPECT_EQ(p.pending_snapshot, I(0));
  }
  {  // snapshot -> probe after a failed send (pending cleared): restart after match.
    Progress p = make(ProgressState::kProbe, 3, 4);
    p.become_snapshot(I(20));
    p.pending_snapshot = I(0);
    p.become_probe();
    EXPECT_EQ(p.next, I(4));
  }
}

TEST(Progress, SentEntriesAndPause) {
  struct Case {
    std::string name;
    ProgressState state;
    size_t window;
    int sends;          // appends of one entry each, starting at next
    bool paused_after;
    uint64_t want_next;
  };
  using S = ProgressState;
  const Case cases[] = {
      {"probe pauses after one send", S::kProbe, 4, 1, true, 5},
      {"replicate streams until the window is full", S::kReplicate, 4, 3, false, 8},
      {"replicate: full window pauses", S::kReplicate, 4, 4, true, 9},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    Progress p(I(5), tc.window, 0);
    p.match = I(4);
    if (tc.state == S::kReplicate) p.become_replicate();
    EXPECT_FALSE(p.is_paused());
    for (int k = 0; k < tc.sends; ++k) p.sent_entries(p.next, 10, 1);
    EXPECT_EQ(p.is_paused(), tc.paused_after);
    EXPECT_EQ(p.next, I(tc.want_next));
  }
  {  // An ack frees the window in replicate.
    Progress p(I(5), 2, 0);
    p.match = I(4);
    p.become_replicate();
    p.sent_entries(I(5), 10, 1);
    p.sent_entries(I(6), 10, 1);
    ASSERT_TRUE(p.is_paused());
    ASSERT_TRUE(p.maybe_update(I(5)));
    p.inflights.free_le(I(5));
    EXPECT_FALSE(p.is_paused());
    EXPECT_EQ(p.next, I(7));
  }
  {  // An empty probe (heartbeat-like) still counts as the outstanding probe.
    Progress p(I(5), 4, 0);
    p.sent_entries(I(4), 0, 0);
    EXPECT_TRUE(p.is_paused());
    EXPECT_EQ(p.next, I(5));
  }
}

TEST(Progress, ToString) {
  EXPECT_STREQ(to_string(ProgressState::kProbe), "probe");
  EXPECT_STREQ(to_string(ProgressState::kReplicate), "replicate");
  EXPECT_STREQ(to_string(ProgressState::kSnapshot), "snapshot");
}

}  // namespace
}  // namespace balsa
