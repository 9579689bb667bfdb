#include "storage/group_commit_wal.h"

#include <chrono>
#include <climits>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace balsa {
namespace {

// Sleeps while `word` still holds `seen` (or returns at once if it changed, or spuriously).
void futex_wait(std::atomic<uint32_t>& word, uint32_t seen) {
#if defined(__linux__)
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, nullptr,
            nullptr, 0);
#else
  word.wait(seen, std::memory_order_acquire);
#endif
}

// Wakes every thread sleeping on `word`, in one system call.
void futex_wake_all(std::atomic<uint32_t>& word) {
#if defined(__linux__)
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
            nullptr, 0);
#else
  word.notify_all();
#endif
}

}  // namespace

GroupCommitWal::GroupCommitWal(Wal& wal) : wal_(wal), next_index_(wal.last_index() + 1) {
  syncer_ = std::thread([this] { run(); });
  completer_ = std::thread([this] { complete(); });
}

GroupCommitWal::~GroupCommitWal() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  syncer_.join();
  {
    std::lock_guard lock(mu_);
    syncer_exited_ = true;
  }
  done_cv_.notify_all();
  completer_.join();
}

void GroupCommitWal::append_async(Term term, std::vector<std::string> payloads, Callback done) {
  std::unique_lock lock(mu_);
  if (error_) {
    const auto err = error_;
    lock.unlock();
    done(LogIndex{0}, LogIndex{0}, err);
    return;
  }
  const LogIndex first = next_index_;
  next_index_ += payloads.size();
  queue_.push_back(Pending{first, term, std::move(payloads), std::move(done)});
  lock.unlock();
  cv_.notify_one();
}

LogIndex GroupCommitWal::append(Term term, std::vector<std::string> payloads) {
  std::unique_lock lock(mu_);
  if (error_) std::rethrow_exception(error_);
  const LogIndex first = next_index_;
  next_index_ += payloads.size();
  const LogIndex last = next_index_ - 1;
  const uint64_t batch = forming_batch_;
  const bool was_empty = queue_.empty();
  queue_.push_back(Pending{first, term, std::move(payloads), nullptr});
  lock.unlock();
  if (was_empty) cv_.notify_one();  // only the first of a batch can find the syncer asleep
  wait_for_batch(batch);
  if (failed_from_.load(std::memory_order_acquire) <= batch) {
    lock.lock();
    std::rethrow_exception(error_);
  }
  return last;
}

void GroupCommitWal::wake(uint64_t batch) {
  completed_batches_.store(batch + 1, std::memory_order_release);
  std::atomic<uint32_t>& word = wake_words_[batch % kWakeWords];
  word.fetch_add(1, std::memory_order_release);
  futex_wake_all(word);
}

void GroupCommitWal::wait_for_batch(uint64_t batch) {
  std::atomic<uint32_t>& word = wake_words_[batch % kWakeWords];
  for (;;) {
    const uint32_t seen = word.load(std::memory_order_acquire);
    if (completed_batches_.load(std::memory_order_acquire) > batch) return;
    futex_wait(word, seen);
  }
}

uint64_t GroupCommitWal::syncs() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

double GroupCommitWal::save_seconds() const {
  std::lock_guard lock(mu_);
  return save_seconds_;
}

void GroupCommitWal::run() {
  std::vector<Pending> batch;
  std::vector<Entry> entries;
  uint64_t number = 0;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      batch.swap(queue_);
      number = forming_batch_++;
    }
    entries.clear();
    for (Pending& p : batch) {
      for (size_t i = 0; i < p.payloads.size(); ++i)
        entries.push_back(Entry{p.term, p.first + i, EntryType::kNormal, std::move(p.payloads[i])});
    }
    std::exception_ptr err;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      wal_.save(nullptr, entries, /*sync=*/true);
    } catch (...) {
      err = std::current_exception();
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
    // A small batch of blocking appends, with every earlier batch completed: wake it from
    // here. Handing it to the completer would cost the lone producer two more thread switches
    // per append; waking a large batch is left to the completer so the disk is not idle.
    bool inline_wake = batch.size() <= kInlineWakeMax &&
                       completed_batches_.load(std::memory_order_acquire) == number;
    for (const Pending& p : batch) inline_wake &= !p.done;
    {
      std::lock_guard lock(mu_);
      ++syncs_;
      save_seconds_ += took.count();
      if (err && !error_) {
        error_ = err;
        failed_from_.store(number, std::memory_order_release);
      }
      if (!inline_wake) done_.push_back(Done{std::move(batch), number, err});
    }
    if (inline_wake) {
      wake(number);
    } else {
      done_cv_.notify_one();
    }
    batch.clear();
  }
}

void GroupCommitWal::complete() {
  std::vector<Done> ready;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      done_cv_.wait(lock, [&] { return syncer_exited_ || !done_.empty(); });
      if (done_.empty()) return;  // the syncer has exited and everything is completed
      ready.swap(done_);
    }
    for (Done& d : ready) {
      for (Pending& p : d.batch) {
        if (!p.done) continue;  // a blocking append(): woken below
        const LogIndex last = p.payloads.empty() ? p.first - 1 : p.first + (p.payloads.size() - 1);
        p.done(p.first, last, d.error);
      }
      wake(d.number);
    }
    ready.clear();
  }
}

}  // namespace balsa
