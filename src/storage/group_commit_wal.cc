#include "storage/group_commit_wal.h"

#include <chrono>
#include <future>

namespace balsa {

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
  std::promise<LogIndex> p;
  auto f = p.get_future();
  append_async(term, std::move(payloads), [&p](LogIndex, LogIndex last, std::exception_ptr err) {
    if (err) p.set_exception(err);
    else p.set_value(last);
  });
  return f.get();
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
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      batch.swap(queue_);
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
    {
      std::lock_guard lock(mu_);
      ++syncs_;
      save_seconds_ += took.count();
      if (err && !error_) error_ = err;
      done_.push_back(Done{std::move(batch), err});
    }
    done_cv_.notify_one();
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
        const LogIndex last = p.payloads.empty() ? p.first - 1 : p.first + (p.payloads.size() - 1);
        p.done(p.first, last, d.error);
      }
    }
    ready.clear();
  }
}

}  // namespace balsa
