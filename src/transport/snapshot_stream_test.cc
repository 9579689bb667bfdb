// The snapshot chunk protocol without a network: order, term, checksum, resume, restart.
#include "transport/snapshot_stream.h"

#include <gtest/gtest.h>

#include <random>

#include "storage/crc32c.h"
#include "storage/sim_fs.h"

namespace balsa {
namespace {

SnapshotMetadata meta(uint64_t index, uint64_t term = 2) {
  return SnapshotMetadata{LogIndex{index}, Term{term}, ConfState{{NodeId{1}, NodeId{2}, NodeId{3}}, {}, {}}};
}

std::string image(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

void write_snapshot(SnapshotStore& store, const SnapshotMetadata& md, const std::string& data) {
  auto w = store.begin(md);
  w->write(data);
  w->commit();
}

Message snap_msg(const SnapshotMetadata& md, uint64_t term = 3, NodeId from = NodeId{1}) {
  Message m;
  m.type = MessageType::kSnap;
  m.from = from;
  m.to = NodeId{2};
  m.term = Term{term};
  m.snapshot.metadata = md;
  return m;
}

struct SnapshotStream : ::testing::Test {
  SimFileSystem fs;
  SnapshotStore leader{fs, "/leader/snap"};
  SnapshotStore follower{fs, "/follower/snap"};
  SnapshotReceiver rx{follower};
  const SnapshotMetadata md = meta(100);
  const std::string data = image(50'000, 7);

  void SetUp() override { write_snapshot(leader, md, data); }
  SnapshotSendSession session(uint64_t term = 3, size_t chunk = 4096,
                              SnapshotStreamBug bug = SnapshotStreamBug::kNone) {
    return SnapshotSendSession(snap_msg(md, term), leader.open_file(md), chunk, bug);
  }
  // Sends up to `max_chunks` chunks; returns the last verdict.
  SnapshotAck pump(SnapshotSendSession& s, Message* out, size_t max_chunks = SIZE_MAX) {
    SnapshotAck ack;
    SnapshotChunk c;
    for (size_t k = 0; k < max_chunks && !s.all_sent(); ++k) {
      s.next_chunk(&c);
      ack = rx.chunk(NodeId{1}, c, out);
      if (ack.verdict != SnapshotVerdict::kOk) return ack;
    }
    return ack;
  }
  std::string installed_image() {
    EXPECT_TRUE(follower.install_received(md));
    return follower.open(md.index)->read_all();
  }
};

TEST_F(SnapshotStream, WholeTransferDeliversTheMessageAndAVerifiedFile) {
  auto s = session();
  auto ack = rx.offer(NodeId{1}, s.offer());
  ASSERT_EQ(ack.verdict, SnapshotVerdict::kOk);
  EXPECT_EQ(ack.offset, 0u);
  s.resume_at(ack.offset);
  Message delivered;
  EXPECT_EQ(pump(s, &delivered).verdict, SnapshotVerdict::kDone);
  EXPECT_EQ(delivered.type, MessageType::kSnap);
  EXPECT_EQ(delivered.snapshot.metadata, md);
  EXPECT_TRUE(delivered.snapshot.data.empty());
  EXPECT_EQ(installed_image(), data);
  EXPECT_EQ(rx.stats().completed, 1u);
  EXPECT_EQ(rx.stats().refused(), 0u);
}

TEST_F(SnapshotStream, ResumesFromTheLastAcknowledgedChunkAfterADrop) {
  auto s = session();
  s.resume_at(rx.offer(NodeId{1}, s.offer()).offset);
  Message delivered;
  ASSERT_EQ(pump(s, &delivered, 5).verdict, SnapshotVerdict::kOk);
  // The connection drops; a chunk written but never received is lost.
  SnapshotChunk lost;
  s.next_chunk(&lost);
  // Reconnect: a new session (the leader may have restarted its sender) offers again.
  auto s2 = session();
  auto ack = rx.offer(NodeId{1}, s2.offer());
  ASSERT_EQ(ack.verdict, SnapshotVerdict::kOk);
  EXPECT_EQ(ack.offset, 5u * 4096);
  s2.resume_at(ack.offset);
  EXPECT_EQ(pump(s2, &delivered).verdict, SnapshotVerdict::kDone);
  EXPECT_EQ(rx.stats().resumed, 1u);
  EXPECT_EQ(rx.stats().bytes, data.size() + 0u + (leader.open_file(md)->size() - data.size()));
  EXPECT_EQ(installed_image(), data);
}

TEST_F(SnapshotStream, ChunkOutOfOrderIsRefusedAndCountedThenResumes) {
  auto s = session();
  s.resume_at(rx.offer(NodeId{1}, s.offer()).offset);
  Message delivered;
  ASSERT_EQ(pump(s, &delivered, 2).verdict, SnapshotVerdict::kOk);
  SnapshotChunk skipped, c;
  s.next_chunk(&skipped);
  s.next_chunk(&c);
  auto ack = rx.chunk(NodeId{1}, c, &delivered);
  EXPECT_EQ(ack.verdict, SnapshotVerdict::kOutOfOrder);
  EXPECT_EQ(ack.offset, 2u * 4096);
  // A duplicate of an accepted chunk is out of order too.
  SnapshotChunk dup = skipped;
  dup.offset = 0;
  dup.crc = crc32c(dup.data);
  EXPECT_EQ(rx.chunk(NodeId{1}, dup, &delivered).verdict, SnapshotVerdict::kOutOfOrder);
  EXPECT_EQ(rx.stats().refused_out_of_order, 2u);
  s.resume_at(ack.offset);
  EXPECT_EQ(pump(s, &delivered).verdict, SnapshotVerdict::kDone);
  EXPECT_EQ(installed_image(), data);
}

TEST_F(SnapshotStream, BadChecksumIsRefusedAndCounted) {
  auto s = session();
  s.resume_at(rx.offer(NodeId{1}, s.offer()).offset);
  SnapshotChunk c;
  s.next_chunk(&c);
  c.data[10] ^= 1;
  Message delivered;
  auto ack = rx.chunk(NodeId{1}, c, &delivered);
  EXPECT_EQ(ack.verdict, SnapshotVerdict::kBadChecksum);
  EXPECT_EQ(ack.offset, 0u);
  EXPECT_EQ(rx.stats().refused_bad_checksum, 1u);
  s.resume_at(ack.offset);
  EXPECT_EQ(pump(s, &delivered).verdict, SnapshotVerdict::kDone);
  EXPECT_EQ(installed_image(), data);
}

TEST_F(SnapshotStream, OldTermOfferAndChunkAreRefused) {
  auto s = session(/*term=*/5);
  s.resume_at(rx.offer(NodeId{1}, s.offer()).offset);
  // A deposed leader's offer (term 4) is refused.
  auto old = session(/*term=*/4);
  EXPECT_EQ(rx.offer(NodeId{1}, old.offer()).verdict, SnapshotVerdict::kOldTerm);
  // And a chunk of an older term on the current transfer.
  SnapshotChunk c;
  old.next_chunk(&c);
  Message delivered;
  EXPECT_EQ(rx.chunk(NodeId{1}, c, &delivered).verdict, SnapshotVerdict::kOldTerm);
  EXPECT_EQ(rx.stats().refused_old_term, 2u);
  EXPECT_EQ(pump(s, &delivered).verdict, SnapshotVerdict::kDone);
}

TEST_F(SnapshotStream, ChunkWithoutOfferAndFromAnotherSenderAreRefused) {
  auto s = session();
  SnapshotChunk c;
  s.next_chunk(&c);
  Message delivered;
  EXPECT_EQ(rx.chunk(NodeId{1}, c, &delivered).verdict, SnapshotVerdict::kNoTransfer);
  EXPECT_EQ(rx.offer(NodeId{1}, s.offer()).verdict, SnapshotVerdict::kOk);
  EXPECT_EQ(rx.chunk(NodeId{3}, c, &delivered).verdict, SnapshotVerdict::kNoTransfer);
  // An offer whose message names another sender than the link is refused.
  EXPECT_EQ(rx.offer(NodeId{3}, s.offer()).verdict, SnapshotVerdict::kFailed);
  EXPECT_EQ(rx.stats().refused_other, 3u);
}

TEST_F(SnapshotStream, ANewerSnapshotRestartsCleanly) {
  auto s = session();
  s.resume_at(rx.offer(NodeId{1}, s.offer()).offset);
  Message delivered;
  ASSERT_EQ(pump(s, &delivered, 3).verdict, SnapshotVerdict::kOk);
  const SnapshotMetadata md2 = meta(200);
  const std::string data2 = image(20'000, 9);
  write_snapshot(leader, md2, data2);
  SnapshotSendSession s2(snap_msg(md2), leader.open_file(md2), 4096);
  auto ack = rx.offer(NodeId{1}, s2.offer());
  EXPECT_EQ(ack.offset, 0u);
  EXPECT_EQ(rx.stats().restarted, 1u);
  s2.resume_at(0);
  EXPECT_EQ(pump(s2, &delivered).verdict, SnapshotVerdict::kDone);
  EXPECT_EQ(delivered.snapshot.metadata, md2);
  // The first transfer's partial file is gone; only the finished one waits.
  for (const auto& name : fs.list("/follower/snap")) EXPECT_EQ(name.find(".part"), std::string::npos) << name;
  EXPECT_TRUE(follower.install_received(md2));
  EXPECT_EQ(follower.open(md2.index)->read_all(), data2);
}

TEST_F(SnapshotStream, AFileThatDoesNotVerifyIsDeletedAndTheTransferRestarts) {
  // A leader file damaged on disk: the chunks' own checksums are good, the image's is not.
  auto f = fs.open("/leader/snap/" + leader.file_name(md), OpenMode::kReadWrite);
  f->write_at(100, std::string("\xff\xff\xff\xff", 4));
  f.reset();
  auto s = session();
  s.resume_at(rx.offer(NodeId{1}, s.offer()).offset);
  Message delivered;
  auto ack = pump(s, &delivered);
  EXPECT_EQ(ack.verdict, SnapshotVerdict::kBadImage);
  EXPECT_EQ(ack.offset, 0u);
  EXPECT_EQ(rx.stats().refused_bad_image, 1u);
  EXPECT_FALSE(follower.install_received(md));
  EXPECT_TRUE(fs.list("/follower/snap").empty());
  // The next offer starts over at 0.
  EXPECT_EQ(rx.offer(NodeId{1}, s.offer()).offset, 0u);
}

TEST_F(SnapshotStream, PlantedResumeBugIsRefusedByTheReceiver) {
  auto s = session(3, 4096, SnapshotStreamBug::kResumeFromSent);
  s.resume_at(rx.offer(NodeId{1}, s.offer()).offset);
  Message delivered;
  ASSERT_EQ(pump(s, &delivered, 2).verdict, SnapshotVerdict::kOk);
  SnapshotChunk lost;
  s.next_chunk(&lost);  // dropped on the wire
  s.resume_at(rx.offer(NodeId{1}, s.offer()).offset);  // the bug ignores the answer
  EXPECT_EQ(pump(s, &delivered).verdict, SnapshotVerdict::kOutOfOrder);
  EXPECT_GT(rx.stats().refused_out_of_order, 0u);
}

TEST_F(SnapshotStream, LeftoverPartialFilesAreRemovedOnOpen) {
  auto s = session();
  s.resume_at(rx.offer(NodeId{1}, s.offer()).offset);
  Message delivered;
  ASSERT_EQ(pump(s, &delivered, 2).verdict, SnapshotVerdict::kOk);
  SnapshotStore reopened(fs, "/follower/snap");
  EXPECT_TRUE(fs.list("/follower/snap").empty());
}

TEST(SnapshotStreamRateLimiter, HoldsTheLongRunRate) {
  using namespace std::chrono;
  RateLimiter rl(1'000'000, 100'000);  // 1 MB/s, 100 KB burst
  auto t = RateLimiter::Clock::time_point{} + seconds(10);
  nanoseconds waited{0};
  // 3 MB in 30 chunks at a virtual clock that advances only by the waits.
  for (int k = 0; k < 30; ++k) {
    auto w = rl.reserve(100'000, t);
    t += w;
    waited += w;
  }
  // 3 MB at 1 MB/s, minus the burst allowance: 2.9 s.
  EXPECT_NEAR(duration<double>(waited).count(), 2.9, 0.01);
  RateLimiter unlimited(0, 0);
  EXPECT_EQ(unlimited.reserve(1 << 30, t).count(), 0);
}

}  // namespace
}  // namespace balsa
