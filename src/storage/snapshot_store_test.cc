#include "storage/snapshot_store.h"

#include <gtest/gtest.h>

#include <random>

#include "storage/sim_fs.h"
#include "storage/test_util.h"

namespace balsa {
namespace {

const std::string kDir = "/node/snap";

SnapshotMetadata meta(uint64_t index, uint64_t term = 1) {
  return SnapshotMetadata{LogIndex{index}, Term{term},
                          ConfState{{NodeId{1}, NodeId{2}, NodeId{3}}, {NodeId{4}}, {}}};
}

std::string image(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

void write_snapshot(SnapshotStore& store, const SnapshotMetadata& md, const std::string& data,
                    size_t chunk = 1000) {
  auto w = store.begin(md);
  for (size_t off = 0; off < data.size(); off += chunk)
    w->write(std::string_view(data).substr(off, chunk));
  w->commit();
}

TEST(SnapshotStore, StreamsInAndOut) {
  SimFileSystem fs;
  SnapshotStore store(fs, kDir, 3);
  EXPECT_FALSE(store.latest());
  const std::string data = image(3 << 20, 1);  // larger than the writer's 1 MiB buffer
  write_snapshot(store, meta(10, 2), data, 4096);
  ASSERT_TRUE(store.latest());
  EXPECT_EQ(*store.latest(), meta(10, 2));
  auto r = store.open(LogIndex{10});
  EXPECT_EQ(r->metadata(), meta(10, 2));
  EXPECT_EQ(r->data_bytes(), data.size());
  std::string got;
  char buf[7777];
  while (size_t n = r->read(buf, sizeof buf)) got.append(buf, n);
  EXPECT_EQ(got, data);
}

TEST(SnapshotStore, EmptyImage) {
  SimFileSystem fs;
  SnapshotStore store(fs, kDir);
  write_snapshot(store, meta(1), "");
  EXPECT_EQ(store.open(LogIndex{1})->read_all(), "");
}

TEST(SnapshotStore, KeepsTheNewestNAfterPrune) {
  SimFileSystem fs;
  SnapshotStore store(fs, kDir, 2);
  for (uint64_t i = 1; i <= 5; ++i) {
    write_snapshot(store, meta(i * 10), image(100, i));
    store.prune();
  }
  const auto all = store.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].index, LogIndex{40});
  EXPECT_EQ(all[1].index, LogIndex{50});
  EXPECT_EQ(store.open(LogIndex{40})->read_all(), image(100, 4));
}

TEST(SnapshotStore, UncommittedWriterLeavesNothingBehind) {
  SimFileSystem fs;
  SnapshotStore store(fs, kDir);
  {
    auto w = store.begin(meta(5));
    w->write("partial");
  }
  EXPECT_TRUE(fs.list(kDir).empty());
  EXPECT_FALSE(store.latest());
}

TEST(SnapshotStore, CrashBeforeCommitLosesOnlyTheNewSnapshot) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SimFileSystem fs;
    {
      SnapshotStore store(fs, kDir);
      write_snapshot(store, meta(5), image(5000, 5));
      auto w = store.begin(meta(9));
      w->write(image(5000, 9));
      fs.crash(seed);  // the writer never committed
    }
    SnapshotStore store(fs, kDir);  // removes the leftover .tmp
    ASSERT_EQ(store.list().size(), 1u);
    EXPECT_EQ(store.open(LogIndex{5})->read_all(), image(5000, 5));
    for (const auto& name : fs.list(kDir)) EXPECT_EQ(name.find(".tmp"), std::string::npos);
  }
}

TEST(SnapshotStore, CommittedSnapshotSurvivesACrash) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SimFileSystem fs;
    {
      SnapshotStore store(fs, kDir);
      write_snapshot(store, meta(7), image(10000, 7));
    }
    fs.crash(seed);
    SnapshotStore store(fs, kDir);
    EXPECT_EQ(store.open(LogIndex{7})->read_all(), image(10000, 7));
  }
}

TEST(SnapshotStore, ChecksumMismatchIsCaughtBeforeAnyByteIsReturned) {
  SimFileSystem fs;
  SnapshotStore store(fs, kDir);
  write_snapshot(store, meta(3), image(2000, 3));
  const std::string path = kDir + "/" + store.file_name(meta(3));
  std::string data = fs.contents(path);
  data[data.size() / 2] ^= 1;
  fs.set_contents(path, data);
  try {
    store.open(LogIndex{3});
    FAIL() << "opened a corrupt snapshot";
  } catch (const StorageCorruptionError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos);
  }
}

TEST(SnapshotStore, FailedSyncIsFatal) {
  SimFileSystem fs;
  SnapshotStore store(fs, kDir);
  auto w = store.begin(meta(3));
  w->write("abc");
  fs.fail_next_sync();
  EXPECT_THROW(w->commit(), StorageFatalError);
  // The store is stopped: nothing more is written or synced, and the error says why.
  const uint64_t syncs = fs.sync_count();
  EXPECT_THROW(w->commit(), StorageFatalError);
  try {
    store.begin(meta(4));
    FAIL() << "begin() after a failed fsync";
  } catch (const StorageFatalError& e) {
    EXPECT_NE(std::string(e.what()).find("fdatasync"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(kDir), std::string::npos) << e.what();
  }
  EXPECT_THROW(store.prune(), StorageFatalError);
  EXPECT_EQ(fs.sync_count(), syncs) << "an fsync was attempted after one failed";
  EXPECT_FALSE(fs.exists(kDir + "/" + store.file_name(meta(3))));
}

TEST(SnapshotStore, FailedDirectorySyncOnPruneIsFatal) {
  SimFileSystem fs;
  SnapshotStore store(fs, kDir, /*keep=*/1);
  write_snapshot(store, meta(1), "one");
  write_snapshot(store, meta(2), "two");
  fs.fail_next_sync();  // the directory fsync after removing snapshot 1
  EXPECT_THROW(store.prune(), StorageFatalError);
  EXPECT_THROW(store.begin(meta(3)), StorageFatalError);
}

TEST(SnapshotStore, PosixRoundTrip) {
  testing::TempDir tmp;
  PosixFileSystem fs;
  SnapshotStore store(fs, tmp.path() + "/snap", 1);
  write_snapshot(store, meta(4), image(123456, 4));
  write_snapshot(store, meta(8), image(654321, 8));
  store.prune();
  ASSERT_EQ(store.list().size(), 1u);
  EXPECT_EQ(store.open(LogIndex{8})->read_all(), image(654321, 8));
}

}  // namespace
}  // namespace balsa
