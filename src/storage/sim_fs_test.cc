#include "storage/sim_fs.h"

#include <gtest/gtest.h>

namespace balsa {
namespace {

TEST(SimFileSystem, SyncedDataAndNamesSurviveACrash) {
  SimFileSystem fs;
  fs.create_dirs("/d");
  auto f = fs.open("/d/a", OpenMode::kCreate);
  f->write_at(0, "hello");
  f->sync();
  fs.sync_dir("/d");
  fs.crash(1);
  EXPECT_EQ(fs.contents("/d/a"), "hello");
}

TEST(SimFileSystem, UnsyncedNameIsLost) {
  SimFileSystem fs;
  fs.create_dirs("/d");
  auto f = fs.open("/d/a", OpenMode::kCreate);
  f->write_at(0, "hello");
  f->sync();  // data synced, the directory entry is not
  fs.crash(1);
  EXPECT_FALSE(fs.exists("/d/a"));
}

TEST(SimFileSystem, UnsyncedRenameAndRemoveAreUndone) {
  SimFileSystem fs;
  fs.create_dirs("/d");
  fs.open("/d/a", OpenMode::kCreate)->sync();
  fs.open("/d/b", OpenMode::kCreate)->sync();
  fs.sync_dir("/d");
  fs.rename("/d/a", "/d/c");
  fs.remove("/d/b");
  EXPECT_EQ(fs.list("/d"), std::vector<std::string>{"c"});
  fs.crash(3);
  EXPECT_EQ(fs.list("/d"), (std::vector<std::string>{"a", "b"}));
}

TEST(SimFileSystem, CrashKeepsSyncedBytesAndAPrefixOfUnsyncedWrites) {
  bool saw_nothing = false, saw_torn = false, saw_all = false;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    SimFileSystem fs;
    fs.create_dirs("/d");
    auto f = fs.open("/d/a", OpenMode::kCreate);
    f->write_at(0, "synced|");
    f->sync();
    fs.sync_dir("/d");
    f->write_at(7, "first|");
    f->write_at(13, "second");
    fs.crash(seed);
    const std::string got = fs.contents("/d/a");
    const std::string all = "synced|first|second";
    ASSERT_EQ(all.compare(0, got.size(), got), 0) << "not a prefix: " << got;
    ASSERT_GE(got.size(), 7u);
    saw_nothing |= got.size() == 7;
    saw_all |= got == all;
    saw_torn |= got.size() > 7 && got.size() < all.size() && got.size() != 13;
  }
  EXPECT_TRUE(saw_nothing);
  EXPECT_TRUE(saw_torn);
  EXPECT_TRUE(saw_all);
}

TEST(SimFileSystem, SameSeedSameOutcome) {
  auto run = [](uint64_t seed) {
    SimFileSystem fs;
    fs.create_dirs("/d");
    auto f = fs.open("/d/a", OpenMode::kCreate);
    fs.sync_dir("/d");
    for (int i = 0; i < 20; ++i) f->write_at(static_cast<uint64_t>(i) * 10, std::string(10, 'x'));
    fs.crash(seed);
    return fs.contents("/d/a");
  };
  for (uint64_t s = 0; s < 20; ++s) EXPECT_EQ(run(s), run(s));
}

TEST(SimFileSystem, InjectedFaults) {
  SimFileSystem fs;
  fs.create_dirs("/d");
  auto f = fs.open("/d/a", OpenMode::kCreate);
  fs.fail_next_write();
  EXPECT_THROW(f->write_at(0, "x"), IoError);
  f->write_at(0, "x");
  fs.fail_sync_in(2);
  f->sync();
  EXPECT_THROW(fs.sync_dir("/d"), IoError);
  f->sync();
  fs.fail_next_sync();
  fs.clear_faults();
  f->sync();
}

}  // namespace
}  // namespace balsa
