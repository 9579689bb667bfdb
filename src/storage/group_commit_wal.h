// A thread-safe front for a Wal that lets many producers share each fdatasync.
//
// Producers enqueue payloads; one syncer thread takes everything queued, writes it with one
// Wal::save and one fdatasync, and hands the batch to a completer thread, which runs the
// batch's callbacks and wakes its blocked producers while the syncer already writes the next
// batch. Whatever arrives while an fdatasync is in flight forms the next batch, so the number of
// syncs adapts to the load: one producer pays one sync per append, sixty-four share one.
//
// Waking. Blocking append()s of one batch all sleep on one futex word (a ring of words indexed
// by batch number, so producers already queued for the next batch are not woken with this
// one), and the completer wakes the whole batch with a single FUTEX_WAKE. Earlier, each
// append() had its own promise, and the completer woke them one syscall at a time; a woken
// producer could preempt the completer between two wakes. With 64 producers on two cores the
// cost is scheduling, not the disk (perf: ~60% of cycles in task switching and wake-ups).
//
// Indexes are assigned at enqueue time, in enqueue order, so the log order is the order in which
// appends were accepted. After a storage failure every pending and later append fails with the
// same StorageFatalError.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storage/wal.h"

namespace balsa {

class GroupCommitWal {
 public:
  // `done(first, last, error)`: the appended range, durable unless `error` is set. Runs on the
  // completer thread (in append order); keep it short.
  using Callback = std::function<void(LogIndex first, LogIndex last, std::exception_ptr error)>;

  // Takes over `wal` until destroyed: nothing else may call it meanwhile.
  explicit GroupCommitWal(Wal& wal);
  // Waits for queued appends to complete.
  ~GroupCommitWal();
  GroupCommitWal(const GroupCommitWal&) = delete;
  GroupCommitWal& operator=(const GroupCommitWal&) = delete;

  void append_async(Term term, std::vector<std::string> payloads, Callback done);
  // Blocks until the payloads are durable; returns the index of the last one.
  LogIndex append(Term term, std::vector<std::string> payloads);

  uint64_t syncs() const;    // fdatasyncs issued so far
  // Time the syncer spent inside Wal::save (write + fdatasync), in seconds.
  double save_seconds() const;

 private:
  struct Pending {
    LogIndex first;
    Term term;
    std::vector<std::string> payloads;
    Callback done;  // empty for a blocking append(): it waits on its batch's word
  };
  void run();
  void complete();
  void wait_for_batch(uint64_t batch);
  void wake(uint64_t batch);  // marks `batch` (and all before it) complete, wakes its waiters

  static constexpr size_t kWakeWords = 8;
  static constexpr size_t kInlineWakeMax = 2;

  Wal& wal_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> queue_;
  LogIndex next_index_;
  bool stopping_ = false;
  std::exception_ptr error_;
  uint64_t syncs_ = 0;
  double save_seconds_ = 0;
  uint64_t forming_batch_ = 0;  // the batch number new appends join (guarded by mu_)
  // Batches [0, completed_batches_) are durable or failed, their producers woken. Batches
  // from failed_from_ on failed.
  std::atomic<uint64_t> completed_batches_{0};
  std::atomic<uint64_t> failed_from_{UINT64_MAX};
  std::array<std::atomic<uint32_t>, kWakeWords> wake_words_{};  // futex words, bumped per batch
  struct Done {
    std::vector<Pending> batch;
    uint64_t number = 0;
    std::exception_ptr error;
  };
  std::vector<Done> done_;  // synced batches waiting for their callbacks, in order
  bool syncer_exited_ = false;
  std::condition_variable done_cv_;
  std::thread syncer_;
  std::thread completer_;
};

}  // namespace balsa
