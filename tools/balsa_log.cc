// balsa-log: inspect a node's durable state without modifying it.
//
//   balsa-log verify DIR     exit 0 if every WAL record and snapshot verifies (a torn tail, which
//                            the next start would cut off, is printed but still exits 0);
//                            otherwise print the first problem with file and offset, exit 1.
//   balsa-log dump DIR [--from I] [--to J]
//                            print records (entries in [I, J]), hard states, truncations,
//                            snapshot markers and the snapshots on disk.
// DIR is any of: balsad's --data-dir (the log is in member/raft/wal and member/raft/snap), a
// node's storage directory (holding wal/ and snap/), or a WAL directory itself (segment files).
// A DIR that holds none of these is refused with exit 2 and the places looked at: a verifier
// must never pass what it did not read.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <limits>

#include "storage/snapshot_store.h"
#include "storage/wal.h"

namespace balsa {
namespace {

struct Layout {
  std::string wal;
  std::string snap;  // empty if none
};

constexpr int kExitDamaged = 1;
constexpr int kExitNoLog = 2;

// The WAL segment files in `dir` (empty if `dir` is not a readable directory).
size_t segment_count(FileSystem& fs, const std::string& dir) {
  std::vector<std::string> names;
  try {
    names = fs.list(dir);
  } catch (const std::exception&) {
    return 0;
  }
  size_t n = 0;
  for (const std::string& name : names) {
    uint64_t seq;
    LogIndex first;
    n += parse_wal_segment_name(name, &seq, &first) ? 1 : 0;
  }
  return n;
}

struct NoLog : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Finds the log under `dir` (see the top of this file); throws NoLog naming where it looked.
Layout layout(FileSystem& fs, const std::string& dir) {
  if (!fs.exists(dir)) throw NoLog(fmt::format("{}: no such directory", dir));
  for (const std::string& node : {path_join(path_join(dir, "member"), "raft"), dir}) {
    const std::string wal = path_join(node, "wal");
    if (segment_count(fs, wal) > 0)
      return {wal, fs.exists(path_join(node, "snap")) ? path_join(node, "snap") : ""};
  }
  if (segment_count(fs, dir) > 0) return {dir, ""};
  throw NoLog(fmt::format(
      "{}: no Balsa log here (looked for WAL segments in {}, {} and {} itself); give balsad's "
      "--data-dir, a node storage directory or a WAL directory",
      dir, path_join(dir, "member/raft/wal"), path_join(dir, "wal"), dir));
}

std::string printable(const std::string& s, size_t max) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') out.push_back(static_cast<char>(c));
    else out += fmt::format("\\x{:02x}", c);
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string ids(const std::vector<NodeId>& v) {
  std::string s;
  for (NodeId n : v) s += (s.empty() ? "" : ",") + std::to_string(n.value);
  return "[" + s + "]";
}

std::string conf(const ConfState& c) {
  return fmt::format("voters={} learners={} outgoing={}", ids(c.voters), ids(c.learners),
                     ids(c.voters_outgoing));
}

std::string hard_state(const HardState& hs) {
  return fmt::format("term={} vote={} commit={}", hs.term.value, hs.vote.value, hs.commit.value);
}

int verify(const std::string& dir) {
  PosixFileSystem fs;
  Layout l;
  try {
    l = layout(fs, dir);
  } catch (const NoLog& e) {
    std::printf("error: %s\n", e.what());
    return kExitNoLog;
  }
  WalOptions ro;
  ro.read_only = true;
  size_t records = 0;
  try {
    auto r = Wal::open(fs, l.wal, ro, [&](const WalRecordView&) { ++records; });
    const WalRecovery& rec = r.recovered;
    if (rec.torn_tail) {
      std::printf("torn tail: %s at offset %llu: %s (%llu bytes; cut off on the next start)\n",
                  rec.torn_tail->file.c_str(),
                  static_cast<unsigned long long>(rec.torn_tail->offset),
                  rec.torn_tail->reason.c_str(),
                  static_cast<unsigned long long>(rec.torn_tail->bytes_dropped));
    }
    const uint64_t first = rec.snapshot ? rec.snapshot->index.value + 1 : 1;
    std::printf("wal ok: %s: %zu segments, %zu records, entries %llu..%llu, hard state %s, "
                "snapshot marker %s\n",
                l.wal.c_str(), segment_count(fs, l.wal), records, static_cast<unsigned long long>(first),
                static_cast<unsigned long long>(first + rec.entries.size() - 1),
                hard_state(rec.hard_state).c_str(),
                rec.snapshot ? std::to_string(rec.snapshot->index.value).c_str() : "none");
    if (!l.snap.empty()) {
      SnapshotStore store(fs, l.snap, 1, /*read_only=*/true);
      const auto all = store.list();
      for (const SnapshotMetadata& md : all) {
        auto reader = store.open(md.index);  // verifies the whole image
        std::printf("snapshot ok: index %llu term %llu, %llu bytes\n",
                    static_cast<unsigned long long>(md.index.value),
                    static_cast<unsigned long long>(md.term.value),
                    static_cast<unsigned long long>(reader->data_bytes()));
      }
      if (rec.snapshot) {
        bool found = false;
        for (const auto& md : all) found |= md == *rec.snapshot;
        if (!found) {
          std::printf("%s: the WAL refers to snapshot %llu, which is missing\n", l.snap.c_str(),
                      static_cast<unsigned long long>(rec.snapshot->index.value));
          return kExitDamaged;
        }
      }
    }
    return 0;
  } catch (const StorageCorruptionError& e) {
    std::printf("corrupt: %s\n", e.what());
    return kExitDamaged;
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return kExitDamaged;
  }
}

int dump(const std::string& dir, uint64_t from, uint64_t to, size_t data_bytes) {
  PosixFileSystem fs;
  Layout l;
  try {
    l = layout(fs, dir);
  } catch (const NoLog& e) {
    std::printf("error: %s\n", e.what());
    return kExitNoLog;
  }
  WalOptions ro;
  ro.read_only = true;
  int rc = 0;
  try {
    std::string file;
    auto r = Wal::open(fs, l.wal, ro, [&](const WalRecordView& v) {
      if (v.file != file) {
        file = v.file;
        std::printf("== %s\n", file.c_str());
      }
      switch (v.type) {
        case WalRecordType::kEntry: {
          const Entry& e = *v.entry;
          if (e.index.value < from || e.index.value > to) return;
          std::printf("%8llu  entry index=%llu term=%llu type=%s len=%zu data=\"%s\"\n",
                      static_cast<unsigned long long>(v.offset),
                      static_cast<unsigned long long>(e.index.value),
                      static_cast<unsigned long long>(e.term.value),
                      e.type == EntryType::kNormal ? "normal" : "conf", e.data.size(),
                      printable(e.data, data_bytes).c_str());
          return;
        }
        case WalRecordType::kHardState:
          std::printf("%8llu  hard state %s\n", static_cast<unsigned long long>(v.offset),
                      hard_state(*v.hard_state).c_str());
          return;
        case WalRecordType::kTruncate:
          std::printf("%8llu  truncate from index %llu\n", static_cast<unsigned long long>(v.offset),
                      static_cast<unsigned long long>(v.truncate_from.value));
          return;
        case WalRecordType::kSnapshot:
          std::printf("%8llu  snapshot marker index=%llu term=%llu %s\n",
                      static_cast<unsigned long long>(v.offset),
                      static_cast<unsigned long long>(v.snapshot->index.value),
                      static_cast<unsigned long long>(v.snapshot->term.value),
                      conf(v.snapshot->conf).c_str());
          return;
        case WalRecordType::kSeal:
          std::printf("%8llu  seal (segment closed, log ends at %llu)\n",
                      static_cast<unsigned long long>(v.offset),
                      static_cast<unsigned long long>(v.sealed_last.value));
          return;
      }
    });
    if (r.recovered.torn_tail) {
      std::printf("torn tail: %s at offset %llu: %s\n", r.recovered.torn_tail->file.c_str(),
                  static_cast<unsigned long long>(r.recovered.torn_tail->offset),
                  r.recovered.torn_tail->reason.c_str());
    }
    std::printf("recovered hard state: %s\n", hard_state(r.recovered.hard_state).c_str());
  } catch (const StorageCorruptionError& e) {
    std::printf("corrupt: %s\n", e.what());
    rc = kExitDamaged;
  }
  if (!l.snap.empty()) {
    try {
      SnapshotStore store(fs, l.snap, 1, /*read_only=*/true);
      for (const SnapshotMetadata& md : store.list()) {
        std::printf("snapshot %s index=%llu term=%llu %s\n", store.file_name(md).c_str(),
                    static_cast<unsigned long long>(md.index.value),
                    static_cast<unsigned long long>(md.term.value), conf(md.conf).c_str());
      }
    } catch (const StorageCorruptionError& e) {
      std::printf("corrupt: %s\n", e.what());
      rc = kExitDamaged;
    }
  }
  return rc;
}

}  // namespace
}  // namespace balsa

int main(int argc, char** argv) {
  CLI::App app{"Inspect a Balsa node's WAL and snapshots (read-only)"};
  app.require_subcommand(1);
  std::string dir;
  auto* verify = app.add_subcommand("verify", "check every record and snapshot");
  verify->add_option("DIR", dir, "balsad --data-dir, node storage directory or WAL directory")->required();
  auto* dump = app.add_subcommand("dump", "print the log in human-readable form");
  uint64_t from = 0, to = std::numeric_limits<uint64_t>::max();
  size_t data_bytes = 64;
  dump->add_option("DIR", dir, "balsad --data-dir, node storage directory or WAL directory")->required();
  dump->add_option("--from", from, "first entry index to print");
  dump->add_option("--to", to, "last entry index to print");
  dump->add_option("--data-bytes", data_bytes, "bytes of entry data to show")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (*verify) return balsa::verify(dir);
  return balsa::dump(dir, from, to, data_bytes);
}
