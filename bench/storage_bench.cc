// Storage benchmarks: WAL append+fdatasync latency, group commit throughput, replay speed.
// Run on the real disk (a directory under $BALSA_BENCH_DIR, default /tmp). See docs/storage.md
// for the commands and the figures measured on the reference machine.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "storage/crc32c.h"
#include "storage/group_commit_wal.h"
#include "storage/wal.h"

namespace balsa {
namespace {

using Clock = std::chrono::steady_clock;

std::string bench_dir() {
  const char* base = std::getenv("BALSA_BENCH_DIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/balsa-bench-XXXXXX";
  return ::mkdtemp(tmpl.data());
}

struct ScopedDir {
  std::string path = bench_dir();
  ~ScopedDir() { std::filesystem::remove_all(path); }
};

void report_percentiles(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p90_us"] = us[us.size() * 9 / 10];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
}

WalOptions options_for(const benchmark::State& state, int zero_ahead_arg) {
  WalOptions o;
  o.zero_ahead_bytes = static_cast<uint64_t>(state.range(zero_ahead_arg)) << 10;
  return o;
}

// One 256-byte entry per save(), each followed by its own fdatasync: the latency a lone client
// sees. Compare p50_us with fio's fdatasync p50. zero_ahead_kib: WalOptions::zero_ahead_bytes
// (0: the segment's blocks stay fallocate's unwritten extents until a record reaches them).
void BM_WalAppendSync256(benchmark::State& state) {
  ScopedDir dir;
  PosixFileSystem fs;
  auto w = Wal::open(fs, dir.path + "/wal", options_for(state, 0));
  uint64_t i = 0;
  std::vector<double> us;
  us.reserve(20000);
  Entry e{Term{1}, LogIndex{0}, EntryType::kNormal, std::string(256, 'x')};
  for (auto _ : state) {
    e.index = LogIndex{++i};
    const auto t0 = Clock::now();
    w.wal->save(nullptr, std::span(&e, 1), /*sync=*/true);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  report_percentiles(state, us);
  state.counters["entries_per_s"] = benchmark::Counter(static_cast<double>(i), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_WalAppendSync256)
    ->ArgName("zero_ahead_kib")->Arg(256)->Arg(0)
    ->Iterations(3000)->UseRealTime()->Unit(benchmark::kMicrosecond);

// N producer threads, each appending one 256-byte entry at a time and waiting for it to be
// durable, through GroupCommitWal. entries_per_s is the total; compare 64 with 1.
void BM_GroupCommit(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  ScopedDir dir;
  PosixFileSystem fs;
  auto w = Wal::open(fs, dir.path + "/wal", options_for(state, 1));
  const std::string payload(256, 'x');
  uint64_t total = 0, syncs = 0;
  double seconds = 0, save_seconds = 0;
  for (auto _ : state) {
    GroupCommitWal gc(*w.wal);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> done{0};
    std::vector<std::thread> threads;
    std::vector<double> lat_us;
    std::mutex lat_mu;
    const auto t0 = Clock::now();
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&] {
        std::vector<double> mine;
        while (!stop.load(std::memory_order_relaxed)) {
          const auto a = Clock::now();
          gc.append(Term{1}, {payload});
          mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
          done.fetch_add(1, std::memory_order_relaxed);
        }
        std::lock_guard lock(lat_mu);
        lat_us.insert(lat_us.end(), mine.begin(), mine.end());
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(3));
    stop = true;
    for (auto& t : threads) t.join();
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    total += done.load();
    syncs += gc.syncs();
    save_seconds += gc.save_seconds();
    report_percentiles(state, lat_us);
  }
  state.counters["entries_per_s"] = static_cast<double>(total) / seconds;
  state.counters["entries_per_sync"] = static_cast<double>(total) / static_cast<double>(syncs);
  // Mean time of one write+fdatasync in the syncer, and the share of wall time spent there.
  state.counters["save_us"] = save_seconds / static_cast<double>(syncs) * 1e6;
  state.counters["disk_busy"] = save_seconds / seconds;
}
BENCHMARK(BM_GroupCommit)
    ->ArgNames({"producers", "zero_ahead_kib"})
    ->Args({1, 256})->Args({64, 256})->Args({64, 0})
    ->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// CRC32C throughput on one buffer of `bytes` (the hardware path when the CPU has SSE4.2).
void BM_Crc32c(benchmark::State& state) {
  const std::string buf(static_cast<size_t>(state.range(0)), 'c');
  uint32_t c = 0;
  for (auto _ : state) {
    c = crc32c_extend(c, buf.data(), buf.size());
    benchmark::DoNotOptimize(c);
  }
  state.SetBytesProcessed(static_cast<int64_t>(buf.size() * state.iterations()));
}
BENCHMARK(BM_Crc32c)->ArgName("bytes")->Arg(64)->Arg(1040)->Arg(65536);

// Replay: Wal::open (verify every record, decode every entry) of a 1 GiB log (or
// $BALSA_BENCH_REPLAY_MIB), against a plain sequential read of the same files. cold:1 evicts
// the files from the page cache first (disk bound); cold:0 reads from the page cache (the CPU
// cost of recovery against a memcpy). read_only:0 is a node's own recovery (segments mapped);
// read_only:1 is balsa-log's (segments read with pread).
struct ReplayFixture {
  ScopedDir dir;
  PosixFileSystem fs;
  uint64_t bytes = 0;
  uint64_t entries = 0;
  ReplayFixture(uint64_t total_bytes, size_t entry_bytes) {
    WalOptions o;
    o.zero_ahead_bytes = 0;  // writes only what replay reads
    auto w = Wal::open(fs, dir.path + "/wal", o);
    std::vector<Entry> batch;
    const std::string data(entry_bytes, 'r');
    uint64_t i = 0;
    while (i * entry_bytes < total_bytes) {
      batch.clear();
      for (int k = 0; k < 256; ++k) batch.push_back(Entry{Term{1}, LogIndex{++i}, EntryType::kNormal, data});
      w.wal->save(nullptr, batch, /*sync=*/false);
    }
    w.wal->sync();
    entries = i;
    for (const auto& name : fs.list(dir.path + "/wal")) bytes += fs.open(dir.path + "/wal/" + name, OpenMode::kRead)->size();
  }
};

ReplayFixture& replay_fixture() {
  const char* mib = std::getenv("BALSA_BENCH_REPLAY_MIB");
  static ReplayFixture f((mib ? std::strtoull(mib, nullptr, 10) : 1024) << 20, 1024);
  return f;
}

// Drops this log's pages from the page cache (only these files), so the next read hits the disk.
void evict(ReplayFixture& f) {
  for (const auto& name : f.fs.list(f.dir.path + "/wal")) {
    const std::string path = f.dir.path + "/wal/" + name;
    const int fd = ::open(path.c_str(), O_RDONLY);
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

void BM_PlainSequentialRead(benchmark::State& state) {
  ReplayFixture& f = replay_fixture();
  const bool cold = state.range(0) != 0;
  std::string buf(1 << 20, '\0');
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      evict(f);
      state.ResumeTiming();
    }
    for (const auto& name : f.fs.list(f.dir.path + "/wal")) {
      auto file = f.fs.open(f.dir.path + "/wal/" + name, OpenMode::kRead);
      uint64_t off = 0;
      while (size_t n = file->read_at(off, buf.data(), buf.size())) off += n;
      benchmark::DoNotOptimize(buf.data());
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(f.bytes * state.iterations()));
}
BENCHMARK(BM_PlainSequentialRead)->ArgName("cold")->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2);

void BM_WalReplay(benchmark::State& state) {
  ReplayFixture& f = replay_fixture();
  WalOptions ro;
  ro.read_only = state.range(1) != 0;
  const bool cold = state.range(0) != 0;
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      evict(f);
      state.ResumeTiming();
    }
    std::optional<Wal::Opened> r = Wal::open(f.fs, f.dir.path + "/wal", ro);
    if (r->recovered.entries.size() != f.entries) state.SkipWithError("replay lost entries");
    benchmark::DoNotOptimize(r->recovered.entries.data());
    // A node keeps what it recovered; freeing 1 GiB of entries is not part of replay.
    state.PauseTiming();
    r.reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(f.bytes * state.iterations()));
  state.counters["entries"] = static_cast<double>(f.entries);
}
BENCHMARK(BM_WalReplay)
    ->ArgNames({"cold", "read_only"})->Args({0, 0})->Args({0, 1})->Args({1, 0})->Args({1, 1})
    ->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2);

}  // namespace
}  // namespace balsa

BENCHMARK_MAIN();
