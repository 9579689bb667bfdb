// balsa-log on a real node directory (DurableLog on the POSIX file system: several WAL
// segments, snapshots, a compacted prefix), run as a separate process the way an operator runs
// it: exit codes and output of verify and dump --from/--to, and refusals naming file and offset.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <regex>
#include <set>
#include <string>

#include "storage/durable_log.h"
#include "storage/test_util.h"

namespace balsa {
namespace {

struct ToolRun {
  int status = -1;
  std::string out;
};

ToolRun run(const std::string& args) {
  ToolRun r;
  const std::string cmd = std::string(BALSA_LOG_PATH) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// A node directory: entries 1..300 (a conflicting suffix rewritten along the way), snapshots at
// 100 and 200 (keep 2), the log compacted to 150, hard state commit 290.
void build_node(const std::string& dir) {
  PosixFileSystem fs;
  DurableLogOptions o;
  o.wal.segment_bytes = 1024;
  o.wal.preallocate = true;
  o.keep_snapshots = 2;
  auto log = DurableLog::open(fs, dir, o);
  for (uint64_t i = 1; i <= 300; i += 10) {
    auto ents = testing::make_entries(i, i + 9, i <= 200 ? 1 : 2);
    const HardState hs{Term{i <= 200 ? 1u : 2u}, NodeId{1}, LogIndex{std::min<uint64_t>(i + 9, 290)}};
    if (i == 201) {  // a conflicting suffix first: term-1 entries 201..205, then replaced
      log->persist(nullptr, testing::make_entries(201, 205, 1));
    }
    log->persist(&hs, ents);
    if (i + 9 == 100 || i + 9 == 200) {
      log->create_snapshot(LogIndex{i + 9}, ConfState{{NodeId{1}, NodeId{2}, NodeId{3}}, {}, {}},
                           [&](ByteSink& out) { out.write("image up to " + std::to_string(i + 9)); });
    }
  }
  log->compact(LogIndex{150});
}

TEST(BalsaLog, VerifyAndDumpARealNodeDirectory) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/node1";
  build_node(dir);
  PosixFileSystem fs;
  ASSERT_GT(fs.list(dir + "/wal").size(), 3u);

  ToolRun v = run("verify " + dir);
  EXPECT_EQ(v.status, 0) << v.out;
  EXPECT_NE(v.out.find("wal ok: "), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("entries 201..300"), std::string::npos) << v.out;  // after marker 200
  EXPECT_NE(v.out.find("hard state term=2 vote=1 commit=290"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("snapshot marker 200"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("snapshot ok: index 100 term 1"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("snapshot ok: index 200 term 1"), std::string::npos) << v.out;
  EXPECT_EQ(v.out.find("torn"), std::string::npos) << v.out;

  ToolRun d = run("dump " + dir + " --from 250 --to 252 --data-bytes 12");
  EXPECT_EQ(d.status, 0) << d.out;
  std::set<uint64_t> printed;
  const std::regex entry_re(R"(entry index=(\d+) term=(\d+))");
  for (auto it = std::sregex_iterator(d.out.begin(), d.out.end(), entry_re);
       it != std::sregex_iterator(); ++it) {
    printed.insert(std::stoull((*it)[1]));
    EXPECT_EQ((*it)[2], "2") << (*it)[0];
  }
  EXPECT_EQ(printed, (std::set<uint64_t>{250, 251, 252})) << d.out;
  EXPECT_NE(d.out.find("data=\"payload-250"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("hard state term="), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("snapshot marker index=200 term=1 voters=[1,2,3]"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("seal (segment closed"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("truncate from index 201"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("snapshot 00000000000000c8-0000000000000001.snap index=200"),
            std::string::npos) << d.out;

  // Read-only: nothing was modified, and the node still opens to the same state.
  PosixFileSystem pfs;
  auto log = DurableLog::open(pfs, dir, DurableLogOptions{});
  EXPECT_EQ(log->last_index(), LogIndex{300});
  EXPECT_EQ(log->first_index(), LogIndex{201});
}

TEST(BalsaLog, VerifyNamesTheFileAndOffsetOfDamage) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/node1";
  build_node(dir);
  PosixFileSystem fs;
  const auto pos = testing::record_positions(fs, dir + "/wal");
  // An entry record in the middle of the first remaining (closed) segment.
  const testing::RecordPos* victim = nullptr;
  for (const auto& p : pos) {
    if (p.file == pos.front().file && p.type == WalRecordType::kEntry) victim = &p;
    if (victim && p.file != pos.front().file) break;
  }
  ASSERT_NE(victim, nullptr);
  {
    auto f = fs.open(victim->file, OpenMode::kReadWrite);
    char c;
    ASSERT_EQ(f->read_at(victim->offset + 20, &c, 1), 1u);
    c ^= 0x01;
    f->write_at(victim->offset + 20, std::string_view(&c, 1));
  }
  ToolRun v = run("verify " + dir);
  EXPECT_EQ(v.status, 1) << v.out;
  EXPECT_NE(v.out.find("corrupt: " + victim->file + " at offset " + std::to_string(victim->offset) +
                       ": record checksum mismatch"),
            std::string::npos)
      << v.out;
  ToolRun d = run("dump " + dir);
  EXPECT_EQ(d.status, 1) << d.out;
  EXPECT_NE(d.out.find(victim->file), std::string::npos) << d.out;
}

TEST(BalsaLog, VerifyRefusesAMissingSnapshotTheWalNames) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/node1";
  build_node(dir);
  PosixFileSystem fs;
  fs.remove(dir + "/snap/00000000000000c8-0000000000000001.snap");
  ToolRun v = run("verify " + dir);
  EXPECT_EQ(v.status, 1) << v.out;
  EXPECT_NE(v.out.find("the WAL refers to snapshot 200, which is missing"), std::string::npos)
      << v.out;
}

// Flips one byte inside an entry record of the first closed segment of `wal`; returns the
// record's file and offset.
testing::RecordPos flip_entry_byte(const std::string& wal) {
  PosixFileSystem fs;
  const auto pos = testing::record_positions(fs, wal);
  const testing::RecordPos* victim = nullptr;
  for (const auto& p : pos) {
    if (p.file == pos.front().file && p.type == WalRecordType::kEntry) victim = &p;
    if (victim && p.file != pos.front().file) break;
  }
  EXPECT_NE(victim, nullptr);
  if (victim == nullptr) return {};
  auto f = fs.open(victim->file, OpenMode::kReadWrite);
  char c;
  EXPECT_EQ(f->read_at(victim->offset + 20, &c, 1), 1u);
  c ^= 0x40;
  f->write_at(victim->offset + 20, std::string_view(&c, 1));
  return *victim;
}

// The directory an operator has at hand is balsad's --data-dir: the log is under member/raft.
// verify must read it there (it once printed "wal ok: 0 segments" and passed a damaged one).
TEST(BalsaLog, VerifyFindsTheLogInABalsadDataDir) {
  testing::TempDir tmp;
  const std::string data_dir = tmp.path() + "/m1.etcd";
  build_node(data_dir + "/member/raft");
  {
    auto f = PosixFileSystem().open(data_dir + "/member/balsad-id", OpenMode::kCreate);
    f->write_at(0, "member_id=1\n");
  }
  ToolRun v = run("verify " + data_dir);
  EXPECT_EQ(v.status, 0) << v.out;
  EXPECT_NE(v.out.find("wal ok: " + data_dir + "/member/raft/wal: "), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("entries 201..300"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("snapshot ok: index 200 term 1"), std::string::npos) << v.out;
  EXPECT_EQ(v.out.find(" 0 segments"), std::string::npos) << v.out;

  ToolRun d = run("dump " + data_dir + " --from 300 --to 300");
  EXPECT_EQ(d.status, 0) << d.out;
  EXPECT_NE(d.out.find("entry index=300 term=2"), std::string::npos) << d.out;

  const testing::RecordPos victim = flip_entry_byte(data_dir + "/member/raft/wal");
  v = run("verify " + data_dir);
  EXPECT_EQ(v.status, 1) << v.out;
  EXPECT_NE(v.out.find("corrupt: " + victim.file + " at offset " + std::to_string(victim.offset)),
            std::string::npos)
      << v.out;
}

TEST(BalsaLog, VerifyAcceptsABareWalDirectory) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/node1";
  build_node(dir);
  ToolRun v = run("verify " + dir + "/wal");
  EXPECT_EQ(v.status, 0) << v.out;
  EXPECT_NE(v.out.find("wal ok: " + dir + "/wal: "), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("entries 201..300"), std::string::npos) << v.out;
  flip_entry_byte(dir + "/wal");
  v = run("verify " + dir + "/wal");
  EXPECT_EQ(v.status, 1) << v.out;
  EXPECT_NE(v.out.find("record checksum mismatch"), std::string::npos) << v.out;
}

// A directory without a log (empty, unrelated files, a wal/ without segments, missing) is
// refused with exit 2 and says where it looked; it is never reported "ok".
TEST(BalsaLog, VerifyRefusesADirectoryWithoutALog) {
  testing::TempDir tmp;
  PosixFileSystem fs;
  const std::string empty = tmp.path() + "/empty";
  const std::string other = tmp.path() + "/other";
  std::filesystem::create_directories(empty);
  std::filesystem::create_directories(other + "/member/raft/wal");
  fs.open(other + "/notes.txt", OpenMode::kCreate)->write_at(0, "hello");
  fs.open(other + "/member/raft/wal/x.wal", OpenMode::kCreate)->write_at(0, "not a segment");
  for (const std::string& dir : {empty, other}) {
    for (const char* cmd : {"verify ", "dump "}) {
      ToolRun v = run(std::string(cmd) + dir);
      EXPECT_EQ(v.status, 2) << cmd << dir << ": " << v.out;
      EXPECT_NE(v.out.find("error: " + dir + ": no Balsa log here (looked for WAL segments in " + dir +
                           "/member/raft/wal"),
                std::string::npos)
          << v.out;
      EXPECT_EQ(v.out.find("wal ok"), std::string::npos) << v.out;
    }
  }
  ToolRun v = run("verify " + tmp.path() + "/missing");
  EXPECT_EQ(v.status, 2) << v.out;
  EXPECT_NE(v.out.find("no such directory"), std::string::npos) << v.out;
}

}  // namespace
}  // namespace balsa
