// Random workloads on the real WAL over SimFileSystem, with crashes at random points: between
// calls, in the middle of a save (an fsync fails, then the power goes), and after unsynced
// writes. After every crash the recovered log must be exactly a state the log could be in:
// everything acknowledged, plus some prefix of what was in flight (the last part possibly torn
// off). Nothing acknowledged may be missing or different.
#include <gtest/gtest.h>

#include <optional>
#include <random>

#include "storage/sim_fs.h"
#include "storage/test_util.h"
#include "storage/wal.h"

namespace balsa {
namespace {

const std::string kDir = "/node/wal";

struct Model {
  std::vector<Entry> log;  // entries after the snapshot
  LogIndex snap_index;
  std::optional<SnapshotMetadata> snap;
  HardState hs;

  LogIndex last() const { return log.empty() ? snap_index : log.back().index; }
  bool operator==(const Model&) const = default;
};

struct Op {
  // An append: truncate-and-append entries, then set hs. Or a snapshot marker.
  std::vector<Entry> entries;
  std::optional<HardState> hs;
  std::optional<SnapshotMetadata> snap;
};

void apply_entries(Model& m, const std::vector<Entry>& ents, size_t n) {
  if (n == 0) return;
  const LogIndex first = ents.front().index;
  m.log.resize(first - m.snap_index - 1);
  for (size_t i = 0; i < n; ++i) m.log.push_back(ents[i]);
}

void apply(Model& m, const Op& op) {
  if (op.snap) {
    const LogIndex s = op.snap->index;
    m.log.erase(m.log.begin(), m.log.begin() + static_cast<std::ptrdiff_t>(s - m.snap_index));
    m.snap_index = s;
    m.snap = op.snap;
    return;
  }
  apply_entries(m, op.entries, op.entries.size());
  if (op.hs) m.hs = *op.hs;
}

// Every state a crash may legitimately leave, given the acknowledged state and what was issued
// after it.
std::vector<Model> candidates(const Model& acked, const std::vector<Op>& pending) {
  std::vector<Model> out{acked};
  Model m = acked;
  for (const Op& op : pending) {
    if (!op.snap) {
      // Torn inside this op: any prefix of its entries (the truncate record goes first, so the
      // suffix may also be cut with none of the new entries yet).
      for (size_t j = 0; j < op.entries.size() + (op.hs ? 1 : 0); ++j) {
        Model t = m;
        if (!op.entries.empty() && op.entries.front().index <= t.last()) {
          t.log.resize(op.entries.front().index - t.snap_index - 1);
        }
        apply_entries(t, op.entries, j);
        out.push_back(t);
      }
    }
    apply(m, op);
    out.push_back(m);
  }
  return out;
}

Model recovered_model(const WalRecovery& r) {
  Model m;
  m.log = r.entries;
  m.snap = r.snapshot;
  m.snap_index = r.snapshot ? r.snapshot->index : LogIndex{0};
  m.hs = r.hard_state;
  return m;
}

std::string describe(const Model& m) {
  std::string s = "snap=" + std::to_string(m.snap_index.value) + " hs.commit=" +
                  std::to_string(m.hs.commit.value) + " term=" + std::to_string(m.hs.term.value) +
                  " log=[";
  for (const Entry& e : m.log) s += std::to_string(e.index.value) + "t" + std::to_string(e.term.value) + " ";
  return s + "]";
}

void run_seed(uint64_t seed, int steps, int* crashes, int* torn) {
  SimFileSystem fs;
  std::mt19937_64 rng(seed);
  WalOptions opts;
  opts.segment_bytes = 256 + rng() % 2048;
  auto opened = Wal::open(fs, kDir, opts);
  std::unique_ptr<Wal> wal = std::move(opened.wal);
  Model acked;      // durable for sure
  Model current;    // what the Wal has been told
  std::vector<Op> pending;  // issued since `acked`
  uint64_t term = 1;

  auto crash_and_recover = [&](const char* where) {
    wal.reset();
    fs.clear_faults();
    fs.crash(rng);
    ++*crashes;
    // Each start may choose differently (a record torn inside its padding once misaligned
    // later appends when the file was not preallocated).
    opts.preallocate = rng() % 2 == 0;
    auto r = Wal::open(fs, kDir, opts);
    *torn += r.recovered.torn_tail ? 1 : 0;
    const Model got = recovered_model(r.recovered);
    bool ok = false;
    for (const Model& c : candidates(acked, pending)) ok |= c == got;
    ASSERT_TRUE(ok) << "seed " << seed << " after crash " << where << "\nrecovered " << describe(got)
                    << "\nacked     " << describe(acked) << "\npending ops " << pending.size();
    wal = std::move(r.wal);
    acked = current = got;
    pending.clear();
    // A second open must find the repaired log clean and identical.
    WalOptions ro = opts;
    ro.read_only = true;
    auto again = Wal::open(fs, kDir, ro);
    ASSERT_FALSE(again.recovered.torn_tail)
        << "seed " << seed << " " << again.recovered.torn_tail->file << " @"
        << again.recovered.torn_tail->offset << " " << again.recovered.torn_tail->reason
        << (r.recovered.torn_tail ? " first: " + r.recovered.torn_tail->file + " @" +
                                        std::to_string(r.recovered.torn_tail->offset) + " " +
                                        r.recovered.torn_tail->reason
                                  : std::string(" no first"));
    ASSERT_EQ(recovered_model(again.recovered), got) << "seed " << seed;
  };

  auto make_append = [&]() {
    Op op;
    const LogIndex last = current.last();
    const LogIndex lo = std::max(current.hs.commit, current.snap_index) + 1;
    LogIndex start = last + 1;
    if (rng() % 5 == 0 && lo <= last) start = lo + rng() % (last + 1 - lo);
    if (start <= last || rng() % 10 == 0) term = std::max(term, current.hs.term.value) + (rng() % 2);
    const size_t n = rng() % 6;
    for (size_t i = 0; i < n; ++i) {
      std::string data(rng() % 300, '\0');
      for (char& c : data) c = static_cast<char>('a' + rng() % 26);
      op.entries.push_back(Entry{Term{term}, start + i, EntryType::kNormal, std::move(data)});
    }
    if (rng() % 10 < 7) {
      Model after = current;
      apply(after, op);
      HardState hs = current.hs;
      hs.term = Term{std::max(term, hs.term.value)};
      hs.vote = NodeId{1 + rng() % 3};
      const LogIndex new_last = after.last();
      if (new_last > hs.commit) hs.commit = hs.commit + rng() % (new_last - hs.commit + 1);
      op.hs = hs;
    }
    return op;
  };

  auto do_append = [&](const Op& op, bool sync) {
    const HardState* hs = op.hs ? &*op.hs : nullptr;
    pending.push_back(op);
    wal->save(hs, op.entries, sync);
    apply(current, op);
    if (sync) {
      acked = current;
      pending.clear();
    }
  };

  for (int step = 0; step < steps; ++step) {
    const auto dice = rng() % 100;
    if (dice < 55) {
      do_append(make_append(), true);
    } else if (dice < 65) {
      do_append(make_append(), false);
    } else if (dice < 75) {
      // Crash inside a save: one of its next few fsyncs fails, then the power goes.
      fs.fail_sync_in(1 + static_cast<int>(rng() % 3));
      const Op op = make_append();
      try {
        do_append(op, true);
        fs.clear_faults();
      } catch (const StorageFatalError&) {
        crash_and_recover("inside save");
      }
    } else if (dice < 82) {
      const LogIndex lo = current.snap_index + 1;
      const LogIndex hi = std::min(current.hs.commit, current.last());
      if (lo <= hi) {
        const LogIndex s = lo + rng() % (hi - lo + 1);
        const Term t = current.log[s - current.snap_index - 1].term;
        Op op;
        op.snap = SnapshotMetadata{s, t, ConfState{{NodeId{1}}, {}, {}}};
        pending.push_back(op);
        try {
          if (rng() % 4 == 0) fs.fail_sync_in(1 + static_cast<int>(rng() % 2));
          wal->save_snapshot(*op.snap);
          apply(current, op);
          acked = current;
          pending.clear();
          wal->release_to(s);
          fs.clear_faults();
        } catch (const StorageFatalError&) {
          crash_and_recover("inside snapshot/release");
        }
      }
    } else {
      crash_and_recover("between calls");
    }
    if (::testing::Test::HasFatalFailure()) return;
  }
  crash_and_recover("at the end");
}

TEST(WalCrash, RandomWorkloadsWithCrashesKeepEveryAcknowledgedEntry) {
  int crashes = 0, torn = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    run_seed(seed, 150, &crashes, &torn);
    if (HasFatalFailure()) return;
  }
  // The workload must actually exercise what it claims to.
  EXPECT_GT(crashes, 3000);
  EXPECT_GT(torn, 100);
  std::printf("crashes %d, torn tails %d\n", crashes, torn);
}

}  // namespace
}  // namespace balsa
