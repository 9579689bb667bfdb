// Flip bytes of a small WAL and a small snapshot, every position in turn (a random sample of
// bits for bigger ones). Every flip must be detected: refused with StorageCorruptionError, or,
// only at the tail of the last WAL segment, cut off and reported. Wrong data is never returned.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "storage/sim_fs.h"
#include "storage/snapshot_store.h"
#include "storage/test_util.h"
#include "storage/wal.h"

namespace balsa {
namespace {

using testing::make_entries;

const std::string kWal = "/node/wal";

struct WalFixture {
  SimFileSystem fs;
  std::vector<Entry> entries;
  std::set<uint64_t> commits_written;  // every hard state commit ever saved
  std::vector<std::string> files;
  std::map<std::string, std::string> pristine;

  WalFixture(uint64_t segment_bytes, uint64_t n, size_t payload) {
    WalOptions o;
    o.segment_bytes = segment_bytes;
    auto w = Wal::open(fs, kWal, o);
    std::mt19937_64 rng(n);
    for (uint64_t i = 1; i <= n; ++i) {
      std::string data(payload, '\0');
      for (char& c : data) c = static_cast<char>(rng());
      entries.push_back(Entry{Term{1 + i / 10}, LogIndex{i}, EntryType::kNormal, data});
      const HardState hs{Term{1 + i / 10}, NodeId{1}, LogIndex{i > 2 ? i - 2 : 0}};
      commits_written.insert(hs.commit.value);
      w.wal->save(&hs, std::span(&entries.back(), 1), true);
    }
    for (const auto& name : fs.list(kWal)) {
      files.push_back(kWal + "/" + name);
      pristine[files.back()] = fs.contents(files.back());
    }
  }

  // Opens the WAL with one byte changed and checks the outcome. Returns "refused", "torn".
  std::string check(const std::string& file, uint64_t offset, char mask) {
    std::string data = pristine[file];
    data[offset] ^= mask;
    fs.set_contents(file, data);
    WalOptions ro;
    ro.read_only = true;
    std::string outcome;
    try {
      auto r = Wal::open(fs, kWal, ro);
      const WalRecovery& rec = r.recovered;
      EXPECT_TRUE(rec.torn_tail) << "flip not detected: " << file << " @" << offset;
      if (rec.torn_tail) {
        EXPECT_EQ(file, files.back()) << "tail truncation outside the last segment";
        EXPECT_EQ(rec.torn_tail->file, file);
        EXPECT_LE(rec.torn_tail->offset, offset);
      }
      // Whatever was recovered is exactly a prefix of what was written.
      EXPECT_LE(rec.entries.size(), entries.size());
      for (size_t i = 0; i < rec.entries.size() && i < entries.size(); ++i)
        EXPECT_EQ(rec.entries[i], entries[i]) << file << " @" << offset;
      EXPECT_TRUE(commits_written.count(rec.hard_state.commit.value) != 0 ||
                  rec.hard_state.empty());
      outcome = "torn";
    } catch (const StorageCorruptionError& e) {
      EXPECT_FALSE(e.file().empty());
      outcome = "refused";
    }
    fs.set_contents(file, pristine[file]);
    return outcome;
  }
};

TEST(Corruption, EveryByteOfASmallWal) {
  WalFixture f(/*segment_bytes=*/384, /*n=*/24, /*payload=*/40);
  ASSERT_GE(f.files.size(), 3u);
  int refused = 0, torn = 0;
  for (const std::string& file : f.files) {
    const uint64_t size = f.pristine[file].size();
    for (uint64_t off = 0; off < size; ++off) {
      for (char mask : {char(0x01), char(0xff)}) {
        const std::string o = f.check(file, off, mask);
        (o == "refused" ? refused : torn)++;
        if (::testing::Test::HasFailure()) return;
      }
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(torn, 0);
  std::printf("refused %d, torn tail %d\n", refused, torn);
}

TEST(Corruption, BitSampleOfABiggerWal) {
  WalFixture f(/*segment_bytes=*/64 << 10, /*n=*/600, /*payload=*/300);
  ASSERT_GE(f.files.size(), 2u);
  std::mt19937_64 rng(42);
  for (int k = 0; k < 1500; ++k) {
    const std::string& file = f.files[rng() % f.files.size()];
    const uint64_t off = rng() % f.pristine[file].size();
    f.check(file, off, static_cast<char>(1 << (rng() % 8)));
    if (HasFailure()) return;
  }
}

void check_snapshot_flips(size_t image_bytes, bool every_byte, int samples) {
  SimFileSystem fs;
  SnapshotStore store(fs, "/node/snap");
  const SnapshotMetadata md{LogIndex{77}, Term{3}, ConfState{{NodeId{1}, NodeId{2}}, {}, {}}};
  std::string img(image_bytes, '\0');
  std::mt19937_64 rng(image_bytes);
  for (char& c : img) c = static_cast<char>(rng());
  {
    auto w = store.begin(md);
    w->write(img);
    w->commit();
  }
  const std::string path = "/node/snap/" + store.file_name(md);
  const std::string pristine = fs.contents(path);
  auto check = [&](uint64_t off, char mask) {
    std::string data = pristine;
    data[off] ^= mask;
    fs.set_contents(path, data);
    try {
      auto r = store.open(md.index);
      std::string got = r->read_all();
      ADD_FAILURE() << "flip at " << off << " not detected";
    } catch (const StorageCorruptionError& e) {
      EXPECT_EQ(e.file(), path);
    }
  };
  if (every_byte) {
    for (uint64_t off = 0; off < pristine.size(); ++off) {
      check(off, 0x01);
      check(off, static_cast<char>(0xff));
      if (::testing::Test::HasFailure()) return;
    }
  } else {
    for (int k = 0; k < samples; ++k) check(rng() % pristine.size(), static_cast<char>(1 << (rng() % 8)));
  }
  fs.set_contents(path, pristine);
  EXPECT_EQ(store.open(md.index)->read_all(), img);
}

TEST(Corruption, EveryByteOfASmallSnapshot) { check_snapshot_flips(300, true, 0); }
TEST(Corruption, BitSampleOfABiggerSnapshot) { check_snapshot_flips(1 << 20, false, 200); }

}  // namespace
}  // namespace balsa
