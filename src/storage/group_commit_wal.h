// A thread-safe front for a Wal that lets many producers share each fdatasync.
//
// Producers enqueue payloads; one syncer thread takes everything queued, writes it with one
// Wal::save and one fdatasync, and hands the batch to a completer thread, which runs the
// producers' callbacks while the syncer already writes the next batch (waking dozens of
// producers takes as long as an fdatasync on two cores). Whatever arrives while an fdatasync is
// in flight forms the next batch, so the number of syncs adapts to the load: one producer pays
// one sync per append, sixty-four share one.
//
// Indexes are assigned at enqueue time, in enqueue order, so the log order is the order in which
// appends were accepted. After a storage failure every pending and later append fails with the
// same StorageFatalError.
#pragma once

#include <condition_variable>
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
  // syncer thread; keep it short.
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
    Callback done;
  };
  void run();
  void complete();

  Wal& wal_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> queue_;
  LogIndex next_index_;
  bool stopping_ = false;
  std::exception_ptr error_;
  uint64_t syncs_ = 0;
  double save_seconds_ = 0;
  struct Done {
    std::vector<Pending> batch;
    std::exception_ptr error;
  };
  std::vector<Done> done_;  // synced batches waiting for their callbacks, in order
  bool syncer_exited_ = false;
  std::condition_variable done_cv_;
  std::thread syncer_;
  std::thread completer_;
};

}  // namespace balsa
