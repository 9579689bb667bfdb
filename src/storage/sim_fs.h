// An in-memory, deterministic FileSystem for crash tests and the cluster simulator.
//
// Each file keeps its durable contents (as of the last sync) and the unsynced operations
// issued since, in order. Each directory keeps its live names and its durable names (as of the
// last sync_dir). crash() turns the disk into what a power failure could leave behind:
//  - names revert to the durable directory (a file created or renamed without sync_dir is gone
//    or back under its old name; a removed one comes back);
//  - each file keeps its synced bytes plus a random prefix of its unsynced operations, the last
//    kept write possibly torn to a random prefix of its bytes (half the time nothing unsynced
//    survives at all).
// Directories made by create_dirs are durable at once (a simplification: the code under test
// creates its directories once, at startup, before anything that matters).
//
// Faults: fail_next_write() / fail_next_sync() make the next such call throw IoError, so
// fail-stop paths can be tested. All methods are thread-safe (one mutex); randomness comes
// only from the generator passed to crash().
#pragma once

#include <map>
#include <mutex>
#include <random>

#include "storage/fs.h"

namespace balsa {

class SimFileSystem final : public FileSystem {
 public:
  SimFileSystem() = default;

  std::unique_ptr<File> open(const std::string& path, OpenMode mode) override;
  std::vector<std::string> list(const std::string& dir) override;
  bool exists(const std::string& path) override;
  void rename(const std::string& from, const std::string& to) override;
  void remove(const std::string& path) override;
  void sync_dir(const std::string& dir) override;
  void create_dirs(const std::string& dir) override;

  // Simulates a power failure (see above). Open File handles must not be used afterwards.
  void crash(std::mt19937_64& rng);
  void crash(uint64_t seed) {
    std::mt19937_64 rng(seed);
    crash(rng);
  }
  // A power failure chosen exactly, for regression tests: names revert as in crash(); `path`
  // keeps its unsynced operations in issue order until `bytes` written bytes have been kept
  // (the write that reaches the limit is torn there; size changes are kept while the budget
  // is not used up); every other file keeps none of its unsynced operations.
  void crash_keeping(const std::string& path, uint64_t bytes);

  // The next write_at (or sync / sync_dir) anywhere fails with IoError; fail_sync_in(n) fails
  // the n-th from now (n >= 1). clear_faults() cancels what has not fired.
  void fail_next_write() { fail_write_in(1); }
  void fail_next_sync() { fail_sync_in(1); }
  void fail_write_in(int n);
  void fail_sync_in(int n);
  void clear_faults();

  // Test helpers: current (live) contents of a file, and replacing them durably.
  std::string contents(const std::string& path);
  void set_contents(const std::string& path, std::string data);
  uint64_t sync_count() const;

 private:
  // An unsynced change, with what it replaced so a crash can roll it back. Syncing only drops
  // this list: the simulator fsyncs constantly, and copying whole files on each would be slow.
  struct Op {
    bool is_write;  // else: resize to `offset`
    uint64_t offset;
    std::string data;
    uint64_t old_size = 0;
    std::string old_bytes;  // bytes overwritten (write) or cut off (shrinking resize)
  };
  struct Inode {
    std::string data;          // what reads see
    std::vector<Op> unsynced;  // since the last sync, in order
  };
  struct Dir {
    std::map<std::string, std::shared_ptr<Inode>> live;
    std::map<std::string, std::shared_ptr<Inode>> durable;
  };
  class SimFile;

  static void apply(std::string& data, Op& op);  // also records the undo information
  static void undo(std::string& data, const Op& op);
  // Reverts names to the durable directories and every file to its synced contents, then lets
  // `redo(inode)` re-apply some of that inode's unsynced operations. Clears them all.
  template <typename Redo>
  void crash_with(Redo&& redo);
  Dir& dir_of(const std::string& path, std::string* name);  // throws if the dir is missing

  mutable std::mutex mu_;
  std::map<std::string, Dir> dirs_;
  int fail_write_ = 0;  // countdown; 0 = off
  int fail_sync_ = 0;
  bool fire(int* countdown) { return *countdown > 0 && --*countdown == 0; }
  uint64_t syncs_ = 0;
};

}  // namespace balsa
