// MemoryStorage: the Storage contract (ranges, errors, byte limits) and its mutators.
#include "core/memory_storage.h"

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

TEST(MemoryStorage, Empty) {
  MemoryStorage s;
  EXPECT_EQ(s.first_index(), I(1));
  EXPECT_EQ(s.last_index(), I(0));
  StorageError err{};
  EXPECT_EQ(s.term(I(0), &err), T(0));
  EXPECT_FALSE(s.term(I(1), &err).has_value());
  EXPECT_EQ(err, StorageError::kUnavailable);
  EXPECT_TRUE(s.entries(I(1), I(1), 100, &err).empty());
  EXPECT_TRUE(s.snapshot().empty());
  EXPECT_TRUE(s.initial_state().hard_state.empty());
}

TEST(MemoryStorage, EntriesRangesErrorsAndByteLimits) {
  MemoryStorage s;
  s.append(run(1, {1, 1, 2, 2, 3}, 76));  // 100 payload bytes each
  s.compact(I(1));                        // first index 2
  struct Case {
    uint64_t lo, hi, max_bytes;
    std::vector<uint64_t> want;
    std::optional<StorageError> error;
  };
  const Case cases[] = {
      {2, 6, 1000, {2, 3, 4, 5}, std::nullopt},
      {2, 6, 250, {2, 3}, std::nullopt},
      {2, 6, 200, {2, 3}, std::nullopt},   // exactly at the limit: included
      {2, 6, 199, {2}, std::nullopt},
      {2, 6, 0, {2}, std::nullopt},        // at least one entry
      {3, 4, 1000, {3}, std::nullopt},
      {1, 4, 1000, {}, StorageError::kCompacted},
      {2, 7, 1000, {}, StorageError::kUnavailable},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(testing::Message() << "[" << tc.lo << ", " << tc.hi << ") max " << tc.max_bytes);
    StorageError err = StorageError::kCompacted;
    if (!tc.error) err = static_cast<StorageError>(255);
    auto got = s.entries(I(tc.lo), I(tc.hi), tc.max_bytes, &err);
    EXPECT_EQ(indexes(got), tc.want);
    if (tc.error) {
      EXPECT_EQ(err, *tc.error);
    } else {
      EXPECT_EQ(static_cast<int>(err), 255);  // untouched on success
    }
  }
}

TEST(MemoryStorage, TermRange) {
  MemoryStorage s;
  s.append(run(1, {1, 2, 3, 4}));
  s.compact(I(2));
  StorageError err{};
  EXPECT_FALSE(s.term(I(1), &err).has_value());
  EXPECT_EQ(err, StorageError::kCompacted);
  EXPECT_EQ(s.term(I(2), &err), T(2));  // the compacted head keeps its term
  EXPECT_EQ(s.term(I(4), &err), T(4));
  EXPECT_FALSE(s.term(I(5), &err).has_value());
  EXPECT_EQ(err, StorageError::kUnavailable);
}

TEST(MemoryStorage, AppendTruncatesConflictingSuffix) {
  struct Case {
    std::string name;
    std::vector<Entry> append;
    std::vector<uint64_t> want_terms;
  };
  const Case cases[] = {
      {"extend", run(4, {3, 3}), {1, 2, 3, 3, 3}},
      {"overwrite middle", run(2, {4}), {1, 4}},
      {"overwrite tail", run(3, {5, 5}), {1, 2, 5, 5}},
      {"same entries", run(1, {1, 2, 3}), {1, 2, 3}},
      {"empty", {}, {1, 2, 3}},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(tc.name);
    MemoryStorage s;
    s.append(run(1, {1, 2, 3}));
    s.append(tc.append);
    ASSERT_EQ(s.last_index(), I(tc.want_terms.size()));
    StorageError err{};
    for (size_t k = 0; k < tc.want_terms.size(); ++k) EXPECT_EQ(s.term(I(k + 1), &err), T(tc.want_terms[k]));
  }
}

TEST(MemoryStorage, AppendSkipsEntriesCoveredBySnapshot) {
  MemoryStorage s;
  s.append(run(1, {1, 1, 1, 1}));
  s.compact(I(3));
  s.append(run(2, {1, 1, 2}));  // 2 and 3 are below the head; 4 is replaced
  EXPECT_EQ(s.first_index(), I(4));
  EXPECT_EQ(s.last_index(), I(4));
  StorageError err{};
  EXPECT_EQ(s.term(I(4), &err), T(2));
  s.append(run(1, {1, 1}));  // entirely covered: nothing changes
  EXPECT_EQ(s.last_index(), I(4));
}

TEST(MemoryStorage, CompactAndCreateSnapshot) {
  MemoryStorage s;
  s.append(run(1, {1, 1, 2, 2, 3}));
  const ConfState cs{ids(3), {N(4)}, {}};
  s.create_snapshot(I(4), cs, "state@4");
  EXPECT_EQ(s.snapshot().metadata, (SnapshotMetadata{I(4), T(2), cs}));
  EXPECT_EQ(s.snapshot().data, "state@4");
  EXPECT_EQ(s.first_index(), I(1));  // entries stay until compact()
  s.create_snapshot(I(3), cs, "older");  // an older snapshot is ignored
  EXPECT_EQ(s.snapshot().data, "state@4");
  s.compact(I(4));
  EXPECT_EQ(s.first_index(), I(5));
  EXPECT_EQ(s.last_index(), I(5));
  s.compact(I(2));  // compacting below the head is a no-op
  EXPECT_EQ(s.first_index(), I(5));
  StorageError err{};
  auto es = s.entries(I(5), I(6), 100, &err);
  ASSERT_EQ(es.size(), 1u);
  EXPECT_EQ(es[0].term, T(3));
}

TEST(MemoryStorage, ApplySnapshotReplacesEverything) {
  MemoryStorage s;
  s.append(run(1, {1, 1, 1}));
  Snapshot snap;
  snap.metadata = SnapshotMetadata{I(10), T(4), ConfState{ids(5), {}, {}}};
  snap.data = "img";
  s.apply_snapshot(snap);
  EXPECT_EQ(s.first_index(), I(11));
  EXPECT_EQ(s.last_index(), I(10));
  StorageError err{};
  EXPECT_EQ(s.term(I(10), &err), T(4));
  EXPECT_FALSE(s.term(I(3), &err).has_value());
  EXPECT_EQ(s.snapshot(), snap);
  EXPECT_EQ(s.initial_state().conf, snap.metadata.conf);
  s.append(run(11, {4, 5}));
  EXPECT_EQ(s.last_index(), I(12));
}

TEST(MemoryStorage, HardStateAndConf) {
  MemoryStorage s;
  s.set_hard_state(HardState{T(3), N(2), I(0)});
  s.set_conf_state(ConfState{ids(3), {}, {}});
  EXPECT_EQ(s.initial_state().hard_state, (HardState{T(3), N(2), I(0)}));
  EXPECT_EQ(s.initial_state().conf.voters, ids(3));
}

}  // namespace
}  // namespace balsa::test
