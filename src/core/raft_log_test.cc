// RaftLog: the durable prefix in Storage plus the unstable suffix, and the §5.3 append rules.
#include "core/raft_log.h"

#include <gtest/gtest.h>

#include "core/test_cluster.h"

namespace balsa::test {
namespace {

std::vector<Entry> run(uint64_t first, std::vector<uint64_t> terms, size_t data_bytes = 0) {
  std::vector<Entry> v;
  for (size_t k = 0; k < terms.size(); ++k)
    v.push_back(ent(terms[k], first + k, std::string(data_bytes, 'x')));
  return v;
}

std::vector<uint64_t> indexes(const std::vector<Entry>& es) {
  std::vector<uint64_t> v;
  for (const Entry& e : es) v.push_back(e.index.value);
  return v;
}

std::vector<uint64_t> terms_of(const RaftLog& log) {
  std::vector<uint64_t> v;
  for (LogIndex i = log.first_index(); i <= log.last_index(); ++i) v.push_back(log.term_or_zero(i).value);
  return v;
}

// What the runtime does after persisting: write the unstable entries and tell the log.
void persist(MemoryStorage& s, RaftLog& log) {
  const auto es = log.unstable_entries();
  if (es.empty()) return;
  s.append(es);
  log.stable_to(es.back().index, es.back().term);
}

TEST(RaftLog, Empty) {
  MemoryStorage s;
  RaftLog log(&s, 1 << 20);
  EXPECT_EQ(log.first_index(), I(1));
  EXPECT_EQ(log.last_index(), I(0));
  EXPECT_EQ(log.last_term(), T(0));
  EXPECT_EQ(log.term(I(0)), T(0));
  EXPECT_FALSE(log.term(I(1)).has_value());
  EXPECT_EQ(log.committed(), I(0));
  EXPECT_EQ(log.applied(), I(0));
  EXPECT_FALSE(log.has_next_committed());
  log.check_invariants();
}

TEST(RaftLog, StartsAfterStorageSnapshot) {
  MemoryStorage s;
  Snapshot snap;
  snap.metadata = SnapshotMetadata{I(5), T(2), ConfState{ids(3), {}, {}}};
  s.apply_snapshot(snap);
  s.append(run(6, {2, 3}));
  RaftLog log(&s, 1 << 20);
  EXPECT_EQ(log.first_index(), I(6));
  EXPECT_EQ(log.last_index(), I(7));
  EXPECT_EQ(log.committed(), I(5));  // everything in the snapshot is committed and applied
  EXPECT_EQ(log.applied(), I(5));
  EXPECT_EQ(log.term(I(5)), T(2));
  EXPECT_FALSE(log.term(I(4)).has_value());
}

TEST(RaftLog, AppendAndStableTo) {
  MemoryStorage s;
  RaftLog log(&s, 1 << 20);
  log.append(run(1, {1, 1, 2}));
  EXPECT_EQ(log.last_index(), I(3));
  EXPECT_EQ(log.last_term(), T(2));
  EXPECT_EQ(log.unstable_entries().size(), 3u);
  EXPECT_EQ(log.stable_last_index(), I(0));
  // stable_to with a term that no longer matches (entry replaced since) is ignored.
  log.stable_to(I(3), T(1));
  EXPECT_EQ(log.unstable_entries().size(), 3u);
  log.stable_to(I(9), T(2));  // beyond the log: ignored
  EXPECT_EQ(log.unstable_entries().size(), 3u);
  s.append({log.unstable_entries()[0], log.unstable_entries()[1]});
  log.stable_to(I(2), T(1));  // a partial persist
  EXPECT_EQ(indexes(log.unstable_entries()), (std::vector<uint64_t>{3}));
  EXPECT_EQ(log.stable_last_index(), I(2));
  persist(s, log);
  EXPECT_TRUE(log.unstable_entries().empty());
  EXPECT_EQ(log.stable_last_index(), I(3));
  EXPECT_EQ(log.term(I(3)), T(2));  // now served by storage
  log.check_invariants();
}

TEST(RaftLog, AppendTruncatesUnstableAndStableSuffixes) {
  {  // Within the unstable suffix.
    MemoryStorage s;
    RaftLog log(&s, 1 << 20);
    log.append(run(1, {1, 1, 1, 1, 1}));
    log.append(run(3, {2}));
    EXPECT_EQ(terms_of(log), (std::vector<uint64_t>{1, 1, 2}));
  }
  {  // Reaching into the stable log: the old durable suffix is shadowed, then overwritten.
    MemoryStorage s;
    RaftLog log(&s, 1 << 20);
    log.append(run(1, {1, 1, 1, 1, 1}));
    persist(s, log);
    log.append(run(3, {2}));
    EXPECT_EQ(terms_of(log), (std::vector<uint64_t>{1, 1, 2}));
    EXPECT_EQ(log.stable_last_index(), I(2));
    EXPECT_EQ(indexes(log.unstable_entries()), (std::vector<uint64_t>{3}));
    persist(s, log);
    EXPECT_EQ(s.last_index(), I(3));
    EXPECT_EQ(terms_of(log), (std::vector<uint64_t>{1, 1, 2}));
  }
}

// The §5.3 receiver rules (etcd's TestLogMaybeAppend, re-derived).
TEST(RaftLog, MaybeAppend) {
  struct Case {
    std::string name;
    uint64_t prev_index, prev_term, commit;
    std::vector<Entry> entries;
    std::optional<uint64_t> last_new;
    uint64_t want_commit;
    std::vector<uint64_t> want_terms;
  };
  // Starting log: terms 1 2 3, committed 1.
  const Case cases[] = {
      {"prev term mismatch", 3, 2, 3, {}, std::nullopt, 1, {1, 2, 3}},
      {"prev beyond log", 4, 3, 3, run(5, {3}), std::nullopt, 1, {1, 2, 3}},
      {"heartbeat-like, commit to last new", 3, 3, 3, {}, 3, 3, {1, 2, 3}},
      {"commit bounded by last new", 3, 3, 9, {}, 3, 3, {1, 2, 3}},
      {"commit bounded by last new (mid log)", 2, 2, 9, {}, 2, 2, {1, 2, 3}},
      {"commit never goes back", 3, 3, 0, {}, 3, 1, {1, 2, 3}},
      {"append one", 3, 3, 4, run(4, {4}), 4, 4, {1, 2, 3, 4}},
      {"append two, commit between", 3, 3, 4, run(4, {4, 4}), 5, 4, {1, 2, 3, 4, 4}},
      {"conflict truncates", 2, 2, 3, run(3, {4}), 3, 3, {1, 2, 4}},
      {"conflict in the middle of entries", 1, 1, 2, run(2, {2, 4, 4}), 4, 2, {1, 2, 4, 4}},
      {"matching prefix does not truncate", 1, 1, 2, run(2, {2}), 2, 2, {1, 2, 3}},
      {"from the start", 0, 0, 0, run(1, {1, 2, 3, 3}), 4, 1, {1, 2, 3, 3}},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    MemoryStorage s;
    s.append(run(1, {1, 2, 3}));
    RaftLog log(&s, 1 << 20);
    log.commit_to(I(1));
    auto got = log.maybe_append(I(tc.prev_index), T(tc.prev_term), I(tc.commit), tc.entries);
    ASSERT_EQ(got.has_value(), tc.last_new.has_value());
    if (got) {
      EXPECT_EQ(*got, I(*tc.last_new));
    }
    EXPECT_EQ(log.committed(), I(tc.want_commit));
    EXPECT_EQ(terms_of(log), tc.want_terms);
    log.check_invariants();
  }
}

TEST(RaftLog, MaybeAppendConflictAtCommittedIndexStopsTheProcess) {
  // Log Matching broken below the commit index: continuing would corrupt data, so it must stop.
  MemoryStorage s;
  s.append(run(1, {1, 2, 3}));
  RaftLog log(&s, 1 << 20);
  log.commit_to(I(2));
  EXPECT_DEATH(log.maybe_append(I(1), T(1), I(3), run(2, {5})), "conflict at 2");
}

TEST(RaftLog, IsUpToDate) {
  MemoryStorage s;
  s.append(run(1, {1, 1, 2}));
  RaftLog log(&s, 1 << 20);
  struct Case {
    uint64_t index, term;
    bool want;
  };
  const Case cases[] = {{3, 2, true}, {4, 2, true}, {2, 2, false}, {1, 3, true},
                        {9, 1, false}, {0, 0, false}, {0, 3, true}};
  for (const Case& tc : cases)
    EXPECT_EQ(log.is_up_to_date(I(tc.index), T(tc.term)), tc.want) << tc.index << "/" << tc.term;
}

TEST(RaftLog, CommitAndApply) {
  MemoryStorage s;
  s.append(run(1, {1, 1, 2, 2}));
  RaftLog log(&s, 1 << 20);
  EXPECT_FALSE(log.maybe_commit(I(2), T(2)));  // entry 2 is term 1, not 2
  EXPECT_EQ(log.committed(), I(0));
  EXPECT_TRUE(log.maybe_commit(I(3), T(2)));
  EXPECT_EQ(log.committed(), I(3));
  EXPECT_FALSE(log.maybe_commit(I(2), T(1)));  // never backwards
  log.commit_to(I(1));
  EXPECT_EQ(log.committed(), I(3));
  EXPECT_TRUE(log.has_next_committed());
  EXPECT_EQ(indexes(log.next_committed()), (std::vector<uint64_t>{1, 2, 3}));
  log.applied_to(I(2));
  EXPECT_EQ(indexes(log.next_committed()), (std::vector<uint64_t>{3}));
  log.applied_to(I(1));  // never backwards
  EXPECT_EQ(log.applied(), I(2));
  log.applied_to(I(3));
  EXPECT_FALSE(log.has_next_committed());
  EXPECT_TRUE(log.next_committed().empty());
}

TEST(RaftLog, NextCommittedRespectsMaxApplyBytes) {
  struct Case {
    uint64_t max_bytes;
    std::vector<uint64_t> want;
  };
  const Case cases[] = {
      {1000, {1, 2, 3, 4, 5}},
      {300, {1, 2, 3}},  // 100 bytes each
      {299, {1, 2}},
      {0, {1}},  // always makes progress
  };
  for (const Case& tc : cases) {
    MemoryStorage s;
    s.append(run(1, {1, 1, 1}, 76));
    RaftLog log(&s, tc.max_bytes);
    log.append(run(4, {1, 1}, 76));  // 4-5 unstable: committed entries may be applied before durable
    log.commit_to(I(5));
    EXPECT_EQ(indexes(log.next_committed()), tc.want) << "max " << tc.max_bytes;
  }
}

// Slicing across the stable/unstable boundary: storage 1..3 (stable), 4..6 unstable,
// 100 payload bytes per entry.
TEST(RaftLog, SliceAcrossStableUnstableBoundary) {
  struct Case {
    uint64_t lo, hi, max_bytes;
    std::vector<uint64_t> want;
    bool compacted;
  };
  const Case cases[] = {
      {2, 7, 10000, {2, 3, 4, 5, 6}, false},
      {2, 7, 300, {2, 3, 4}, false},
      {2, 7, 250, {2, 3}, false},
      {2, 7, 200, {2, 3}, false},
      {2, 7, 150, {2}, false},  // storage stopped early for size: the unstable part is not touched
      {2, 7, 0, {2}, false},
      {4, 7, 150, {4}, false},
      {5, 7, 10000, {5, 6}, false},
      {3, 5, 10000, {3, 4}, false},
      {2, 2, 10000, {}, false},
      {1, 3, 10000, {}, true},  // below the first index (compacted to 1)
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(testing::Message() << "[" << tc.lo << ", " << tc.hi << ") max " << tc.max_bytes);
    MemoryStorage s;
    s.append(run(1, {1, 1, 1}, 76));
    s.compact(I(1));
    RaftLog log(&s, 1 << 20);
    log.append(run(4, {2, 2, 2}, 76));
    ASSERT_EQ(log.stable_last_index(), I(3));
    bool compacted = !tc.compacted;
    auto got = log.slice(I(tc.lo), I(tc.hi), tc.max_bytes, &compacted);
    EXPECT_EQ(indexes(got), tc.want);
    EXPECT_EQ(compacted, tc.compacted);
  }
}

TEST(RaftLog, RestoreSnapshot) {
  MemoryStorage s;
  s.append(run(1, {1, 1, 1}));
  RaftLog log(&s, 1 << 20);
  log.append(run(4, {2}));
  log.commit_to(I(2));
  Snapshot snap;
  snap.metadata = SnapshotMetadata{I(10), T(3), ConfState{ids(3), {}, {}}};
  log.restore(snap);
  EXPECT_EQ(log.committed(), I(10));
  EXPECT_EQ(log.first_index(), I(11));
  EXPECT_EQ(log.last_index(), I(10));
  EXPECT_EQ(log.last_term(), T(3));
  EXPECT_FALSE(log.term(I(3)).has_value());
  EXPECT_TRUE(log.unstable_entries().empty());
  ASSERT_NE(log.pending_snapshot(), nullptr);
  EXPECT_FALSE(log.has_next_committed());  // the snapshot is applied first
  // Entries may follow the unstable snapshot.
  ASSERT_TRUE(log.maybe_append(I(10), T(3), I(11), run(11, {3})).has_value());
  EXPECT_EQ(log.last_index(), I(11));
  // Persisting the snapshot makes it the applied base.
  s.apply_snapshot(*log.pending_snapshot());
  log.stable_snapshot_to(I(10));
  EXPECT_EQ(log.pending_snapshot(), nullptr);
  EXPECT_EQ(log.applied(), I(10));
  persist(s, log);
  EXPECT_EQ(log.first_index(), I(11));
  EXPECT_EQ(indexes(log.next_committed()), (std::vector<uint64_t>{11}));
  log.check_invariants();
}

TEST(RaftLog, FirstIndexOfTermAndFindConflictByTerm) {
  MemoryStorage s;
  s.append(run(1, {1, 1, 1, 4, 4, 5, 5, 6, 6, 6}));
  RaftLog log(&s, 1 << 20);
  struct FirstCase {
    uint64_t i, floor, want;
  };
  for (const FirstCase& tc : {FirstCase{10, 0, 8}, FirstCase{8, 0, 8}, FirstCase{7, 0, 6},
                              FirstCase{3, 0, 1}, FirstCase{3, 1, 2}, FirstCase{10, 9, 10},
                              FirstCase{12, 0, 12}})
    EXPECT_EQ(log.first_index_of_term(I(tc.i), I(tc.floor)), I(tc.want)) << tc.i << " floor " << tc.floor;
  struct ConflictCase {
    uint64_t i, t, want;
  };
  for (const ConflictCase& tc : {ConflictCase{10, 6, 10}, ConflictCase{10, 5, 7}, ConflictCase{10, 3, 3},
                                 ConflictCase{6, 4, 5}, ConflictCase{10, 0, 0}, ConflictCase{20, 9, 10}})
    EXPECT_EQ(log.find_conflict_by_term(I(tc.i), T(tc.t)), I(tc.want)) << tc.i << " term " << tc.t;
}

}  // namespace
}  // namespace balsa::test
