#include "storage/wal.h"

#include <gtest/gtest.h>

#include <map>

#include "storage/sim_fs.h"
#include "storage/test_util.h"

namespace balsa {
namespace {

using testing::encode_record;
using testing::make_entries;
using testing::make_entry;
using testing::record_positions;

const std::string kDir = "/data/wal";

WalOptions small(uint64_t segment_bytes = 1024) {
  WalOptions o;
  o.segment_bytes = segment_bytes;
  return o;
}

std::vector<std::string> segment_names(FileSystem& fs) { return fs.list(kDir); }

// Expects open() to refuse with an error naming `file` (a suffix match) at `offset`.
void expect_corrupt(SimFileSystem& fs, const std::string& file, uint64_t offset,
                    const std::string& why_substr, WalOptions o = small()) {
  try {
    Wal::open(fs, kDir, o);
    FAIL() << "open succeeded; expected corruption in " << file << " at " << offset;
  } catch (const StorageCorruptionError& e) {
    EXPECT_NE(e.file().find(file), std::string::npos) << e.what();
    EXPECT_EQ(e.offset(), offset) << e.what();
    EXPECT_NE(std::string(e.what()).find(why_substr), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
}

TEST(Wal, EmptyDirectoryGetsAPreallocatedFirstSegment) {
  SimFileSystem fs;
  auto w = Wal::open(fs, kDir, small(4096));
  ASSERT_TRUE(w.wal);
  EXPECT_TRUE(w.recovered.entries.empty());
  EXPECT_FALSE(w.recovered.torn_tail);
  ASSERT_EQ(segment_names(fs), std::vector<std::string>{"0000000000000001-0000000000000001.wal"});
  const std::string data = fs.contents(kDir + "/0000000000000001-0000000000000001.wal");
  EXPECT_EQ(data.size(), 4096u);
  EXPECT_EQ(data.substr(0, 8), "BALSAWAL");
}

TEST(Wal, RecordsFollowTheDocumentedFormat) {
  SimFileSystem fs;
  auto w = Wal::open(fs, kDir, small(4096));
  const Entry e = make_entry(1, 3, "hello");
  const HardState hs{Term{3}, NodeId{2}, LogIndex{1}};
  w.wal->save(&hs, std::span(&e, 1), true);
  const std::string data = fs.contents(kDir + "/0000000000000001-0000000000000001.wal");
  std::string expected = encode_record(WalRecordType::kEntry, codec::encode(e)) +
                         encode_record(WalRecordType::kHardState, codec::encode(hs));
  EXPECT_EQ(data.substr(40, expected.size()), expected);
  EXPECT_EQ(expected.size() % 8, 0u);
  // The rest of the preallocated segment is zero.
  EXPECT_EQ(data.find_first_not_of('\0', 40 + expected.size()), std::string::npos);
}

TEST(Wal, SaveAndRecover) {
  SimFileSystem fs;
  const HardState hs{Term{2}, NodeId{1}, LogIndex{7}};
  {
    auto w = Wal::open(fs, kDir, small(1 << 20));
    auto ents = make_entries(1, 10);
    w.wal->save(&hs, ents, true);
    EXPECT_EQ(w.wal->last_index(), LogIndex{10});
  }
  auto w = Wal::open(fs, kDir, small(1 << 20));
  EXPECT_EQ(w.recovered.entries, make_entries(1, 10));
  EXPECT_EQ(w.recovered.hard_state, hs);
  EXPECT_FALSE(w.recovered.snapshot);
  EXPECT_FALSE(w.recovered.torn_tail);
  // Appends continue after recovery.
  auto more = make_entries(11, 12);
  w.wal->save(nullptr, more, true);
  auto again = Wal::open(fs, kDir, small(1 << 20));
  EXPECT_EQ(again.recovered.entries, make_entries(1, 12));
}

TEST(Wal, RotatesAtTheSizeLimitAndClosesSegmentsAtTheirLastRecord) {
  SimFileSystem fs;
  {
    auto w = Wal::open(fs, kDir, small(512));
    for (uint64_t i = 1; i <= 100; ++i) {
      const Entry e = make_entry(i);
      const HardState hs{Term{1}, NodeId{1}, LogIndex{i - 1}};
      w.wal->save(&hs, std::span(&e, 1), true);
    }
    EXPECT_GT(w.wal->segment_count(), 5u);
  }
  const auto names = segment_names(fs);
  ASSERT_GT(names.size(), 5u);
  for (size_t k = 0; k < names.size(); ++k) {
    uint64_t seq;
    LogIndex first;
    ASSERT_TRUE(parse_wal_segment_name(names[k], &seq, &first)) << names[k];
    EXPECT_EQ(seq, k + 1);
    const std::string data = fs.contents(kDir + "/" + names[k]);
    if (k + 1 < names.size()) {
      EXPECT_LE(data.size(), 512u + 64);
      EXPECT_EQ(data.size() % 8, 0u);
      EXPECT_NE(data.substr(data.size() - 8), std::string(8, '\0'))
          << "closed segment not cut at its last record";
    }
  }
  auto w = Wal::open(fs, kDir, small(512));
  EXPECT_EQ(w.recovered.entries, make_entries(1, 100));
  EXPECT_EQ(w.recovered.hard_state.commit, LogIndex{99});
}

TEST(Wal, ConflictingSuffixIsTruncatedAndReplayedAsSuch) {
  SimFileSystem fs;
  {
    auto w = Wal::open(fs, kDir, small(300));
    auto a = make_entries(1, 10, 1);
    w.wal->save(nullptr, a, true);
    auto b = make_entries(6, 8, 2);
    w.wal->save(nullptr, b, true);
    EXPECT_EQ(w.wal->last_index(), LogIndex{8});
    auto c = make_entries(8, 12, 3);
    w.wal->save(nullptr, c, true);
  }
  auto w = Wal::open(fs, kDir, small(300));
  auto expect = make_entries(1, 5, 1);
  for (auto& e : make_entries(6, 7, 2)) expect.push_back(e);
  for (auto& e : make_entries(8, 12, 3)) expect.push_back(e);
  EXPECT_EQ(w.recovered.entries, expect);
}

TEST(Wal, RejectsGapsAndOverwritingCommittedEntries) {
  SimFileSystem fs;
  auto w = Wal::open(fs, kDir, small());
  auto a = make_entries(1, 5);
  const HardState hs{Term{1}, NodeId{1}, LogIndex{4}};
  w.wal->save(&hs, a, true);
  auto gap = make_entries(7, 8);
  EXPECT_THROW(w.wal->save(nullptr, gap, true), std::invalid_argument);
  auto over = make_entries(4, 6, 2);
  EXPECT_THROW(w.wal->save(nullptr, over, true), std::invalid_argument);
  auto ok = make_entries(5, 6, 2);
  w.wal->save(nullptr, ok, true);  // still usable
  EXPECT_EQ(w.wal->last_index(), LogIndex{6});
}

TEST(Wal, ReleaseAfterSnapshotKeepsHardStateAndMarker) {
  SimFileSystem fs;
  const HardState hs{Term{4}, NodeId{3}, LogIndex{50}};
  const SnapshotMetadata md{LogIndex{60}, Term{1}, ConfState{{NodeId{1}, NodeId{2}}, {}, {}}};
  size_t before = 0, after = 0;
  {
    auto w = Wal::open(fs, kDir, small(400));
    auto a = make_entries(1, 10);
    w.wal->save(&hs, a, true);  // the only hard state record
    for (uint64_t i = 11; i <= 100; ++i) {
      const Entry e = make_entry(i);
      w.wal->save(nullptr, std::span(&e, 1), true);
    }
    EXPECT_THROW(w.wal->release_to(LogIndex{60}), std::invalid_argument);  // no snapshot yet
    w.wal->save_snapshot(md);
    before = w.wal->segment_count();
    w.wal->release_to(LogIndex{60});
    after = w.wal->segment_count();
    EXPECT_LT(after, before);
    EXPECT_EQ(after, segment_names(fs).size());
  }
  uint64_t seq;
  LogIndex first;
  ASSERT_TRUE(parse_wal_segment_name(segment_names(fs).front(), &seq, &first));
  EXPECT_GT(seq, 1u);
  EXPECT_LE(first, LogIndex{61});
  auto w = Wal::open(fs, kDir, small(400));
  EXPECT_EQ(w.recovered.hard_state, hs);
  ASSERT_TRUE(w.recovered.snapshot);
  EXPECT_EQ(*w.recovered.snapshot, md);
  EXPECT_EQ(w.recovered.entries, make_entries(61, 100));
}

TEST(Wal, SnapshotBeyondTheLogRestartsItThere) {
  SimFileSystem fs;
  const SnapshotMetadata md{LogIndex{20}, Term{5}, {}};
  {
    auto w = Wal::open(fs, kDir, small());
    auto a = make_entries(1, 8);
    w.wal->save(nullptr, a, true);
    w.wal->save_snapshot(md, /*discard_after=*/true);
    EXPECT_EQ(w.wal->last_index(), LogIndex{20});
    auto b = make_entries(21, 23, 5);
    w.wal->save(nullptr, b, true);
  }
  auto w = Wal::open(fs, kDir, small());
  EXPECT_EQ(*w.recovered.snapshot, md);
  EXPECT_EQ(w.recovered.entries, make_entries(21, 23, 5));
}

TEST(Wal, SnapshotFromLeaderDiscardsEntriesAfterIt) {
  SimFileSystem fs;
  const SnapshotMetadata md{LogIndex{5}, Term{2}, {}};
  {
    auto w = Wal::open(fs, kDir, small());
    auto a = make_entries(1, 10);
    w.wal->save(nullptr, a, true);
    w.wal->save_snapshot(md, /*discard_after=*/true);
    EXPECT_EQ(w.wal->last_index(), LogIndex{5});
  }
  auto w = Wal::open(fs, kDir, small());
  EXPECT_TRUE(w.recovered.entries.empty());
  EXPECT_EQ(w.wal->last_index(), LogIndex{5});
}

// ---- torn tails ----

TEST(Wal, TornTailIsTruncatedReportedAndRepaired) {
  SimFileSystem fs;
  {
    auto w = Wal::open(fs, kDir, small(4096));
    auto a = make_entries(1, 10);
    w.wal->save(nullptr, a, true);
  }
  auto pos = record_positions(fs, kDir);
  ASSERT_EQ(pos.size(), 10u);
  const std::string file = pos.back().file;
  std::string data = fs.contents(file);
  // Tear the last record: keep its first 5 bytes, zero the rest.
  std::fill(data.begin() + static_cast<std::ptrdiff_t>(pos.back().offset + 5), data.end(), '\0');
  fs.set_contents(file, data);

  WalOptions ro = small(4096);
  ro.read_only = true;
  auto r = Wal::open(fs, kDir, ro);
  ASSERT_TRUE(r.recovered.torn_tail);
  EXPECT_EQ(r.recovered.torn_tail->offset, pos.back().offset);
  EXPECT_EQ(r.recovered.torn_tail->file, file);
  EXPECT_EQ(fs.contents(file), data) << "read-only open modified the file";

  auto w = Wal::open(fs, kDir, small(4096));
  ASSERT_TRUE(w.recovered.torn_tail);
  EXPECT_EQ(w.recovered.torn_tail->offset, pos.back().offset);
  EXPECT_EQ(w.recovered.torn_tail->bytes_dropped, 5u);
  EXPECT_EQ(w.recovered.entries, make_entries(1, 9));
  auto b = make_entries(10, 11, 2);
  w.wal->save(nullptr, b, true);
  auto again = Wal::open(fs, kDir, small(4096));
  EXPECT_FALSE(again.recovered.torn_tail);
  auto expect = make_entries(1, 9);
  for (auto& e : b) expect.push_back(e);
  EXPECT_EQ(again.recovered.entries, expect);
}

TEST(Wal, TornTailThatWouldDropCommittedEntriesRefuses) {
  SimFileSystem fs;
  {
    auto w = Wal::open(fs, kDir, small(4096));
    auto a = make_entries(1, 10);
    const HardState hs{Term{1}, NodeId{1}, LogIndex{10}};
    w.wal->save(nullptr, a, true);
    w.wal->save(&hs, {}, true);
  }
  auto pos = record_positions(fs, kDir);
  // Corrupt the last entry (index 10) but not the hard state after it: not a torn tail.
  const auto& rec = pos[9];
  ASSERT_EQ(rec.index, 10u);
  std::string data = fs.contents(rec.file);
  data[rec.offset + 12] ^= 0x40;
  fs.set_contents(rec.file, data);
  expect_corrupt(fs, rec.file, rec.offset, "checksum", small(4096));
}

// ---- non-tail damage: refuse, naming file and offset ----

struct Built {
  std::vector<testing::RecordPos> pos;
  std::vector<std::string> names;
};

Built build_log(SimFileSystem& fs, uint64_t segment_bytes = 512, uint64_t n = 40) {
  auto w = Wal::open(fs, kDir, small(segment_bytes));
  for (uint64_t i = 1; i <= n; ++i) {
    const Entry e = make_entry(i);
    w.wal->save(nullptr, std::span(&e, 1), true);
  }
  return {record_positions(fs, kDir), segment_names(fs)};
}

void flip(SimFileSystem& fs, const std::string& file, uint64_t offset, char mask = 0x10) {
  std::string data = fs.contents(file);
  data[offset] ^= mask;
  fs.set_contents(file, data);
}

TEST(WalDamage, ChecksumMismatchInTheMiddleOfTheLastSegment) {
  SimFileSystem fs;
  auto b = build_log(fs, 1 << 20, 10);
  flip(fs, b.pos[3].file, b.pos[3].offset + 12);
  expect_corrupt(fs, b.pos[3].file, b.pos[3].offset, "checksum", small(1 << 20));
}

TEST(WalDamage, ChecksumMismatchAtTheEndOfAClosedSegment) {
  SimFileSystem fs;
  auto b = build_log(fs);
  ASSERT_GT(b.names.size(), 2u);
  // The last record of the first segment.
  const testing::RecordPos* last_of_first = nullptr;
  for (const auto& p : b.pos)
    if (p.file == kDir + "/" + b.names[0]) last_of_first = &p;
  ASSERT_NE(last_of_first, nullptr);
  flip(fs, last_of_first->file, last_of_first->offset + 10);
  expect_corrupt(fs, b.names[0], last_of_first->offset, "checksum");
}

TEST(WalDamage, BadLength) {
  SimFileSystem fs;
  auto b = build_log(fs, 1 << 20, 10);
  flip(fs, b.pos[2].file, b.pos[2].offset + 3, 0x7f);  // huge length
  expect_corrupt(fs, b.pos[2].file, b.pos[2].offset, "length", small(1 << 20));
  SimFileSystem fs2;
  auto b2 = build_log(fs2, 1 << 20, 10);
  flip(fs2, b2.pos[2].file, b2.pos[2].offset, 0x08);  // plausible but wrong length
  expect_corrupt(fs2, b2.pos[2].file, b2.pos[2].offset, "", small(1 << 20));
}

TEST(WalDamage, IndexGapInsideASegment) {
  SimFileSystem fs;
  auto b = build_log(fs, 1 << 20, 3);
  const std::string file = b.pos[0].file;
  std::string data = fs.contents(file);
  // Append a well-formed entry record for index 5 after index 3.
  const std::string rec = encode_record(WalRecordType::kEntry, codec::encode(make_entry(5)));
  const uint64_t at = b.pos.back().offset +
                      encode_record(WalRecordType::kEntry, codec::encode(make_entry(3))).size();
  data.replace(at, rec.size(), rec);
  fs.set_contents(file, data);
  expect_corrupt(fs, file, at, "does not follow", small(1 << 20));
}

TEST(WalDamage, SegmentNameDisagreesWithItsHeader) {
  SimFileSystem fs;
  auto b = build_log(fs);
  // Rename segment 2 to claim a different first index.
  uint64_t seq;
  LogIndex first;
  ASSERT_TRUE(parse_wal_segment_name(b.names[1], &seq, &first));
  const std::string bad = wal_segment_name(seq, first + 1);
  fs.rename(kDir + "/" + b.names[1], kDir + "/" + bad);
  expect_corrupt(fs, bad, 24, "first index");
}

TEST(WalDamage, MissingMiddleSegment) {
  SimFileSystem fs;
  auto b = build_log(fs, 512, 100);
  ASSERT_GT(b.names.size(), 3u);
  fs.remove(kDir + "/" + b.names[1]);
  expect_corrupt(fs, b.names[2], 0, "missing segment");
}

TEST(WalDamage, MissingFirstSegmentWithoutSnapshot) {
  SimFileSystem fs;
  auto b = build_log(fs);
  fs.remove(kDir + "/" + b.names[0]);
  expect_corrupt(fs, b.names[1], 0, "no snapshot covers");
}

TEST(WalDamage, BadSegmentHeader) {
  SimFileSystem fs;
  auto b = build_log(fs);
  flip(fs, kDir + "/" + b.names[1], 2);
  expect_corrupt(fs, b.names[1], 0, "magic");
  SimFileSystem fs2;
  auto b2 = build_log(fs2);
  flip(fs2, kDir + "/" + b2.names.back(), 20);  // the last segment too: headers are synced
  expect_corrupt(fs2, b2.names.back(), 32, "header checksum");
}

TEST(WalDamage, CommitBeyondTheLog) {
  SimFileSystem fs;
  auto b = build_log(fs, 1 << 20, 3);
  const std::string file = b.pos[0].file;
  std::string data = fs.contents(file);
  const HardState hs{Term{1}, NodeId{1}, LogIndex{9}};
  const std::string rec = encode_record(WalRecordType::kHardState, codec::encode(hs));
  const uint64_t at = b.pos.back().offset +
                      encode_record(WalRecordType::kEntry, codec::encode(make_entry(3))).size();
  data.replace(at, rec.size(), rec);
  fs.set_contents(file, data);
  expect_corrupt(fs, file, at + rec.size(), "committed entries are missing", small(1 << 20));
}

TEST(WalDamage, ValidRecordAfterGarbageInTheLastSegmentIsNotATornTail) {
  SimFileSystem fs;
  auto b = build_log(fs, 1 << 20, 10);
  // Zero a whole middle record: looks like the end of the log, but records follow.
  const std::string file = b.pos[4].file;
  std::string data = fs.contents(file);
  std::fill(data.begin() + static_cast<std::ptrdiff_t>(b.pos[4].offset),
            data.begin() + static_cast<std::ptrdiff_t>(b.pos[5].offset), '\0');
  fs.set_contents(file, data);
  expect_corrupt(fs, file, b.pos[4].offset, "zeroed", small(1 << 20));
}

// ---- regressions ----

// Found by the simulator (seed 1451, five nodes, preallocation chosen at random per start): a
// node without preallocation crashed while an unsynced save was in flight; the power cut kept
// that write up to inside the zero padding of its last record, so the file ended off the
// 8-byte grid. Recovery accepted the record and appended after it at the unaligned offset; the
// next recovery looked for records at 8-byte boundaries only, found garbage, and cut every
// later, synced record off as a "torn tail" (snapshot markers and committed entries with it).
// Now a record whose padding is incomplete is itself the torn tail, and appends stay aligned.
TEST(WalRegression, WriteTornInsideTheLastRecordsPaddingLosesNothingLater) {
  for (int variant = 0; variant < 4; ++variant) {
    SCOPED_TRACE("variant " + std::to_string(variant));
    SimFileSystem fs;
    WalOptions o = small(16 << 10);
    o.preallocate = false;
    const std::string file = kDir + "/0000000000000001-0000000000000001.wal";
    const HardState hs1{Term{1}, NodeId{1}, LogIndex{5}};
    // An entry whose record has 7 bytes of padding, so the tear can land inside it.
    Entry torn = make_entry(6, 1, "x");
    while (encode_record(WalRecordType::kEntry, codec::encode(torn)).size() -
               (9 + codec::encode(torn).size()) != 7)
      torn.data.push_back('x');
    {
      auto w = Wal::open(fs, kDir, o);
      auto a = make_entries(1, 5);
      w.wal->save(&hs1, a, true);
      // The in-flight write at the moment of the crash: issued, never synced.
      w.wal->save(nullptr, std::span(&torn, 1), /*sync=*/false);
    }
    const uint64_t in_flight = encode_record(WalRecordType::kEntry, codec::encode(torn)).size();
    fs.crash_keeping(file, in_flight - 3);  // the record and 4 of its 7 padding bytes
    ASSERT_NE(fs.contents(file).size() % 8, 0u) << "the crash must leave the file off-grid";

    const SnapshotMetadata md{LogIndex{7}, Term{2}, ConfState{{NodeId{1}}, {}, {}}};
    const HardState hs2{Term{2}, NodeId{1}, LogIndex{9}};
    {
      o.preallocate = variant & 1;  // the simulator toggled this between starts
      auto w = Wal::open(fs, kDir, o);
      ASSERT_TRUE(w.recovered.torn_tail);
      EXPECT_NE(w.recovered.torn_tail->reason.find("padding"), std::string::npos)
          << w.recovered.torn_tail->reason;
      EXPECT_EQ(w.recovered.entries, make_entries(1, 5));
      auto b = make_entries(6, 9, 2);
      w.wal->save(nullptr, b, true);
      w.wal->save_snapshot(md);
      w.wal->save(&hs2, {}, true);
    }
    fs.crash_keeping(file, 0);  // everything above was synced
    o.preallocate = variant & 2;
    auto w = Wal::open(fs, kDir, o);
    EXPECT_FALSE(w.recovered.torn_tail) << w.recovered.torn_tail->offset << ": "
                                        << w.recovered.torn_tail->reason;
    EXPECT_EQ(w.recovered.entries, make_entries(8, 9, 2));
    ASSERT_TRUE(w.recovered.snapshot);
    EXPECT_EQ(*w.recovered.snapshot, md);
    EXPECT_EQ(w.recovered.hard_state, hs2);
  }
}

// A closed segment whose last records are missing (zeros, or the file ends) must be refused at
// the first missing byte, even when no entry is missing: its hard state or snapshot marker may
// have been the newest. Before seals, such a segment passed as complete.
TEST(WalRegression, ClosedSegmentWithoutItsSealIsRefused) {
  for (bool cut_file : {false, true}) {
    SimFileSystem fs;
    uint64_t hs_offset = 0;
    std::string first;
    {
      auto w = Wal::open(fs, kDir, small(512));
      for (uint64_t i = 1; w.wal->segment_count() == 1; ++i) {
        const Entry e = make_entry(i);
        const HardState hs{Term{1}, NodeId{1}, LogIndex{i}};
        w.wal->save(&hs, std::span(&e, 1), true);  // [entry i][hard state commit=i]
      }
    }
    first = kDir + "/" + segment_names(fs)[0];
    // The records of the first segment end [..., hard state, seal].
    std::vector<testing::RecordPos> recs;
    for (const auto& p : record_positions(fs, kDir))
      if (p.file == first) recs.push_back(p);
    ASSERT_GE(recs.size(), 3u);
    ASSERT_EQ(recs.back().type, WalRecordType::kSeal);
    ASSERT_EQ(recs[recs.size() - 2].type, WalRecordType::kHardState);
    hs_offset = recs[recs.size() - 2].offset;
    // Lose the segment's last hard state and its seal, as a non-durable close would.
    std::string data = fs.contents(first);
    if (cut_file) {
      data.resize(hs_offset);
    } else {
      std::fill(data.begin() + static_cast<std::ptrdiff_t>(hs_offset), data.end(), '\0');
    }
    fs.set_contents(first, data);
    expect_corrupt(fs, segment_names(fs)[0], hs_offset, "without its seal", small(512));
    WalOptions ro = small(512);
    ro.read_only = true;
    EXPECT_THROW(Wal::open(fs, kDir, ro), StorageCorruptionError);
  }
}

TEST(WalRegression, EveryClosedSegmentEndsWithItsSeal) {
  SimFileSystem fs;
  build_log(fs, 512, 100);
  const auto names = segment_names(fs);
  ASSERT_GT(names.size(), 3u);
  std::map<std::string, WalRecordType> last_type;
  for (const auto& p : record_positions(fs, kDir)) last_type[p.file] = p.type;
  for (size_t k = 0; k < names.size(); ++k) {
    const auto t = last_type[kDir + "/" + names[k]];
    if (k + 1 < names.size()) {
      EXPECT_EQ(t, WalRecordType::kSeal) << names[k];
    } else {
      EXPECT_NE(t, WalRecordType::kSeal) << names[k];
    }
  }
}

TEST(WalRegression, DataAfterASealIsRefused) {
  SimFileSystem fs;
  auto b = build_log(fs, 512, 40);
  const std::string first = kDir + "/" + b.names[0];
  std::string data = fs.contents(first);
  const uint64_t at = data.size();
  data += encode_record(WalRecordType::kHardState,
                        codec::encode(HardState{Term{1}, NodeId{1}, LogIndex{1}}));
  fs.set_contents(first, data);
  expect_corrupt(fs, b.names[0], at, "after the segment's seal");
}

// The power fails after a segment was sealed but before its successor was durably created
// (the successor's sync or the directory fsync fails, then the crash). Recovery finds a sealed
// last segment, creates the successor, and appends continue.
TEST(WalRegression, SealedLastSegmentWithoutSuccessorGetsOne) {
  for (int failing_sync : {2, 3}) {
    SCOPED_TRACE("failing sync " + std::to_string(failing_sync));
    SimFileSystem fs;
    {
      auto w = Wal::open(fs, kDir, small(256));
      auto a = make_entries(1, 3);
      const HardState hs{Term{1}, NodeId{1}, LogIndex{3}};
      w.wal->save(&hs, a, true);
      fs.fail_sync_in(failing_sync);  // 1: the seal, 2: the new segment, 3: the directory
      auto b = make_entries(4, 20);
      EXPECT_THROW(w.wal->save(nullptr, b, true), StorageFatalError);
    }
    fs.clear_faults();
    fs.crash(7);
    ASSERT_EQ(segment_names(fs).size(), 1u);
    {
      auto w = Wal::open(fs, kDir, small(256));
      EXPECT_FALSE(w.recovered.torn_tail);
      EXPECT_EQ(w.recovered.entries, make_entries(1, 3));
      EXPECT_EQ(w.recovered.hard_state.commit, LogIndex{3});
      EXPECT_EQ(w.wal->segment_count(), 2u);
      auto b = make_entries(4, 6);
      w.wal->save(nullptr, b, true);
    }
    auto w = Wal::open(fs, kDir, small(256));
    EXPECT_EQ(w.recovered.entries, make_entries(1, 6));
    EXPECT_EQ(w.recovered.hard_state.commit, LogIndex{3});
  }
}

// ---- fail-stop ----

TEST(WalFailStop, FailedSyncStopsTheWalForGood) {
  SimFileSystem fs;
  auto w = Wal::open(fs, kDir, small());
  auto a = make_entries(1, 3);
  w.wal->save(nullptr, a, true);
  fs.fail_next_sync();
  auto b = make_entries(4, 5);
  try {
    w.wal->save(nullptr, b, true);
    FAIL() << "save succeeded after a failed fsync";
  } catch (const StorageFatalError& e) {
    EXPECT_NE(std::string(e.what()).find("fdatasync"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(kDir), std::string::npos) << e.what();
  }
  const uint64_t syncs = fs.sync_count();
  auto c = make_entries(6, 6);
  EXPECT_THROW(w.wal->save(nullptr, c, true), StorageFatalError);
  EXPECT_THROW(w.wal->sync(), StorageFatalError);
  EXPECT_THROW(w.wal->save_snapshot(SnapshotMetadata{LogIndex{1}, Term{1}, {}}), StorageFatalError);
  EXPECT_EQ(fs.sync_count(), syncs) << "an fsync was retried after failing";
}

TEST(WalFailStop, FailedWriteStopsTheWal) {
  SimFileSystem fs;
  auto w = Wal::open(fs, kDir, small());
  fs.fail_next_write();
  auto a = make_entries(1, 3);
  EXPECT_THROW(w.wal->save(nullptr, a, true), StorageFatalError);
  EXPECT_THROW(w.wal->save(nullptr, a, true), StorageFatalError);
}

TEST(WalFailStop, FailedSegmentCreationStopsTheWal) {
  SimFileSystem fs;
  auto w = Wal::open(fs, kDir, small(256));
  auto a = make_entries(1, 3);
  w.wal->save(nullptr, a, true);
  fs.fail_next_sync();  // the sync that closes the full segment
  auto b = make_entries(4, 20);
  EXPECT_THROW(w.wal->save(nullptr, b, true), StorageFatalError);
  EXPECT_THROW(w.wal->save(nullptr, b, true), StorageFatalError);
}

// ---- the real file system ----

TEST(WalPosix, RoundTripWithRotationAndRelease) {
  testing::TempDir tmp;
  PosixFileSystem fs;
  const std::string dir = tmp.path() + "/wal";
  {
    auto w = Wal::open(fs, dir, small(2048));
    for (uint64_t i = 1; i <= 200; i += 10) {
      auto a = make_entries(i, i + 9);
      const HardState hs{Term{1}, NodeId{1}, LogIndex{i + 9}};
      w.wal->save(&hs, a, true);
    }
    EXPECT_GT(w.wal->segment_count(), 2u);
    w.wal->save_snapshot(SnapshotMetadata{LogIndex{150}, Term{1}, {}});
    w.wal->release_to(LogIndex{150});
  }
  auto w = Wal::open(fs, dir, small(2048));
  EXPECT_EQ(w.recovered.entries, make_entries(151, 200));
  EXPECT_EQ(w.recovered.hard_state.commit, LogIndex{200});
  EXPECT_FALSE(w.recovered.torn_tail);
}

// A node's own recovery maps segments; balsa-log's read-only one reads them. Same result, torn
// tail included, and the mapping is gone before the torn tail is cut.
TEST(WalPosix, MappedAndReadRecoveryAgree) {
  testing::TempDir tmp;
  PosixFileSystem fs;
  const std::string dir = tmp.path() + "/wal";
  {
    auto w = Wal::open(fs, dir, small(1024));
    for (uint64_t i = 1; i <= 120; i += 4) {
      auto a = make_entries(i, i + 3);
      const HardState hs{Term{1}, NodeId{1}, LogIndex{i}};
      w.wal->save(&hs, a, true);
    }
    EXPECT_GT(w.wal->segment_count(), 3u);
  }
  auto pos = record_positions(fs, dir);
  const auto last = pos.back();
  ASSERT_EQ(last.type, WalRecordType::kHardState);
  {  // tear the last record (the hard state with commit 117): its checksum no longer matches
    auto f = fs.open(last.file, OpenMode::kReadWrite);
    f->write_at(last.offset + 10, "XX");
    f->sync();
  }
  WalOptions ro = small(1024);
  ro.read_only = true;
  auto r = Wal::open(fs, dir, ro);
  auto w = Wal::open(fs, dir, small(1024));
  ASSERT_TRUE(r.recovered.torn_tail);
  ASSERT_TRUE(w.recovered.torn_tail);
  EXPECT_EQ(r.recovered.torn_tail->offset, last.offset);
  EXPECT_EQ(w.recovered.torn_tail->offset, last.offset);
  EXPECT_EQ(r.recovered.entries, make_entries(1, 120));
  EXPECT_EQ(r.recovered.hard_state.commit, LogIndex{113});
  EXPECT_EQ(w.recovered.entries, r.recovered.entries);
  EXPECT_EQ(w.recovered.hard_state, r.recovered.hard_state);
  auto more = make_entries(120, 121, 2);
  w.wal->save(nullptr, more, true);
  w.wal.reset();
  auto again = Wal::open(fs, dir, small(1024));
  EXPECT_FALSE(again.recovered.torn_tail);
  EXPECT_EQ(again.recovered.entries.back(), make_entry(121, 2));
}

}  // namespace
}  // namespace balsa
