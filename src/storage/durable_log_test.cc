#include "storage/durable_log.h"

#include <gtest/gtest.h>

#include <thread>

#include "storage/sim_fs.h"
#include "storage/test_util.h"

namespace balsa {
namespace {

using testing::make_entries;

const std::string kDir = "/node";

DurableLogOptions small() {
  DurableLogOptions o;
  o.wal.segment_bytes = 1024;
  o.keep_snapshots = 1;
  return o;
}

TEST(DurableLog, ImplementsStorageAndRecovers) {
  SimFileSystem fs;
  const HardState hs{Term{2}, NodeId{1}, LogIndex{8}};
  {
    auto log = DurableLog::open(fs, kDir, small());
    EXPECT_EQ(log->first_index(), LogIndex{1});
    EXPECT_EQ(log->last_index(), LogIndex{0});
    log->persist(&hs, make_entries(1, 10, 2));
    log->persist(nullptr, make_entries(9, 12, 3));  // conflict: replaces 9 and 10
  }
  auto log = DurableLog::open(fs, kDir, small());
  EXPECT_EQ(log->initial_state().hard_state, hs);
  EXPECT_EQ(log->first_index(), LogIndex{1});
  EXPECT_EQ(log->last_index(), LogIndex{12});
  StorageError err{};
  EXPECT_EQ(log->term(LogIndex{8}, &err), Term{2});
  EXPECT_EQ(log->term(LogIndex{9}, &err), Term{3});
  EXPECT_EQ(log->term(LogIndex{0}, &err), Term{0});
  EXPECT_FALSE(log->term(LogIndex{13}, &err));
  EXPECT_EQ(err, StorageError::kUnavailable);
  auto ents = log->entries(LogIndex{8}, LogIndex{11}, UINT64_MAX, &err);
  ASSERT_EQ(ents.size(), 3u);
  EXPECT_EQ(ents[0], make_entries(8, 8, 2)[0]);
  EXPECT_EQ(ents[2], make_entries(10, 10, 3)[0]);
  EXPECT_TRUE(log->snapshot().empty());
}

TEST(DurableLog, LocalSnapshotAndCompaction) {
  SimFileSystem fs;
  const ConfState conf{{NodeId{1}, NodeId{2}}, {}, {}};
  {
    auto log = DurableLog::open(fs, kDir, small());
    for (uint64_t i = 1; i <= 100; i += 5) {
      const HardState hs{Term{1}, NodeId{1}, LogIndex{i + 4}};
      log->persist(&hs, make_entries(i, i + 4));
    }
    const size_t segments = log->wal().segment_count();
    log->create_snapshot(LogIndex{80}, conf, [](ByteSink& out) { out.write("state@80"); });
    log->compact(LogIndex{80});
    EXPECT_LT(log->wal().segment_count(), segments);
    EXPECT_EQ(log->first_index(), LogIndex{81});
    StorageError err{};
    EXPECT_TRUE(log->entries(LogIndex{50}, LogIndex{60}, UINT64_MAX, &err).empty());
    EXPECT_EQ(err, StorageError::kCompacted);
  }
  auto log = DurableLog::open(fs, kDir, small());
  EXPECT_EQ(log->first_index(), LogIndex{81});
  EXPECT_EQ(log->last_index(), LogIndex{100});
  const Snapshot snap = log->snapshot();
  EXPECT_EQ(snap.metadata, (SnapshotMetadata{LogIndex{80}, Term{1}, conf}));
  EXPECT_EQ(snap.data, "state@80");
  EXPECT_EQ(log->initial_state().conf, conf);
  EXPECT_EQ(log->initial_state().hard_state.commit, LogIndex{100});
}

TEST(DurableLog, SnapshotFromTheLeaderReplacesTheLog) {
  SimFileSystem fs;
  const Snapshot snap{SnapshotMetadata{LogIndex{50}, Term{4}, ConfState{{NodeId{1}}, {}, {}}},
                      "leader-state"};
  {
    auto log = DurableLog::open(fs, kDir, small());
    const HardState hs{Term{1}, NodeId{0}, LogIndex{3}};
    log->persist(&hs, make_entries(1, 10));
    log->apply_snapshot(snap);
    EXPECT_EQ(log->first_index(), LogIndex{51});
    EXPECT_EQ(log->last_index(), LogIndex{50});
    const HardState hs2{Term{4}, NodeId{0}, LogIndex{50}};
    log->persist(&hs2, make_entries(51, 52, 4));
  }
  auto log = DurableLog::open(fs, kDir, small());
  EXPECT_EQ(log->snapshot(), snap);
  EXPECT_EQ(log->first_index(), LogIndex{51});
  EXPECT_EQ(log->last_index(), LogIndex{52});
}

TEST(DurableLog, RefusesWhenTheSnapshotTheWalNamesIsGone) {
  SimFileSystem fs;
  {
    auto log = DurableLog::open(fs, kDir, small());
    log->persist(nullptr, make_entries(1, 10));
    log->create_snapshot(LogIndex{5}, {}, [](ByteSink& out) { out.write("x"); });
  }
  for (const auto& name : fs.list(kDir + "/snap")) fs.remove(kDir + "/snap/" + name);
  EXPECT_THROW(DurableLog::open(fs, kDir, small()), StorageCorruptionError);
}

TEST(DurableLog, CrashBetweenSnapshotCommitAndWalMarkerIsHarmless) {
  // keep_snapshots = 1 must not prune the snapshot the WAL still refers to.
  SimFileSystem fs;
  {
    auto log = DurableLog::open(fs, kDir, small());
    log->persist(nullptr, make_entries(1, 10));
    log->create_snapshot(LogIndex{5}, {}, [](ByteSink& out) { out.write("five"); });
    auto w = log->snapshots().begin(SnapshotMetadata{LogIndex{8}, Term{1}, {}});
    w->write("eight");
    w->commit();  // then the node dies before recording it in the WAL
  }
  auto log = DurableLog::open(fs, kDir, small());
  EXPECT_EQ(log->snapshot().data, "five");
  EXPECT_EQ(log->last_index(), LogIndex{10});
}

// The runtime writes a local snapshot's image on a background thread while its loop keeps
// persisting: begin on the owner's thread, write + commit elsewhere, finish on the owner's.
TEST(DurableLog, SnapshotInStepsWhileTheLogKeepsGrowing) {
  SimFileSystem fs;
  const ConfState conf{{NodeId{1}, NodeId{2}}, {}, {}};
  DurableLogOptions o = small();
  o.keep_snapshots = 2;
  {
    auto log = DurableLog::open(fs, kDir, o);
    const HardState hs{Term{1}, NodeId{1}, LogIndex{40}};
    log->persist(&hs, make_entries(1, 40));
    auto writer = log->begin_snapshot(LogIndex{40}, conf);
    std::thread bg([&] {
      for (int k = 0; k < 1000; ++k) writer->write("image-block;");
      writer->commit();
    });
    for (uint64_t i = 41; i <= 100; i += 5) {
      const HardState h{Term{1}, NodeId{1}, LogIndex{i + 4}};
      log->persist(&h, make_entries(i, i + 4));
    }
    bg.join();
    // Not recorded yet: the log still names no snapshot.
    EXPECT_TRUE(log->snapshot().empty());
    ASSERT_TRUE(log->finish_snapshot(writer->metadata()));
    EXPECT_EQ(log->snapshot().metadata.index, LogIndex{40});
    log->compact(LogIndex{30});
  }
  auto log = DurableLog::open(fs, kDir, o);
  const Snapshot snap = log->snapshot();
  EXPECT_EQ(snap.metadata.index, LogIndex{40});
  EXPECT_EQ(snap.metadata.conf, conf);
  EXPECT_EQ(snap.data.size(), 12u * 1000u);
  EXPECT_EQ(log->first_index(), LogIndex{41});  // recovery starts after the snapshot
  EXPECT_EQ(log->last_index(), LogIndex{100});
}

TEST(DurableLog, BackgroundSnapshotOvertakenByTheLeadersIsNotRecorded) {
  SimFileSystem fs;
  const ConfState conf{{NodeId{1}}, {}, {}};
  const Snapshot leader{SnapshotMetadata{LogIndex{60}, Term{3}, conf}, "leader-state"};
  {
    auto log = DurableLog::open(fs, kDir, small());
    const HardState hs{Term{1}, NodeId{0}, LogIndex{20}};
    log->persist(&hs, make_entries(1, 20));
    auto writer = log->begin_snapshot(LogIndex{20}, conf);
    writer->write("local@20");
    log->apply_snapshot(leader);  // arrives while the local image is being written
    writer->commit();
    EXPECT_FALSE(log->finish_snapshot(writer->metadata()));
    EXPECT_EQ(log->snapshot(), leader);
    EXPECT_EQ(log->first_index(), LogIndex{61});
  }
  auto log = DurableLog::open(fs, kDir, small());
  EXPECT_EQ(log->snapshot(), leader);
  EXPECT_EQ(log->first_index(), LogIndex{61});
}

}  // namespace
}  // namespace balsa
