#include "core/raft_log.h"

#include <algorithm>

#include "core/assert.h"

namespace balsa {

RaftLog::RaftLog(const Storage* storage, uint64_t max_apply_bytes)
    : storage_(storage), max_apply_bytes_(max_apply_bytes) {
  unstable_offset_ = storage_->last_index() + 1;
  // Everything up to the snapshot is committed and applied by definition.
  committed_ = storage_->first_index() - 1;
  applied_ = committed_;
}

LogIndex RaftLog::first_index() const {
  if (unstable_snapshot_) return unstable_snapshot_->metadata.index + 1;
  return storage_->first_index();
}

LogIndex RaftLog::last_index() const {
  if (!unstable_.empty()) return unstable_offset_ + (unstable_.size() - 1);
  if (unstable_snapshot_) return unstable_snapshot_->metadata.index;
  return storage_->last_index();
}

LogIndex RaftLog::stable_last_index() const { return unstable_offset_ - 1; }

Term RaftLog::last_term() const {
  auto t = term(last_index());
  BALSA_ASSERT(t.has_value(), "term of last index {} unavailable", last_index().value);
  return *t;
}

std::optional<Term> RaftLog::term(LogIndex i) const {
  if (i.value == 0) return Term{0};
  if (i > last_index()) return std::nullopt;
  if (!unstable_.empty() && i >= unstable_offset_) return unstable_[i - unstable_offset_].term;
  if (unstable_snapshot_) {
    if (i == unstable_snapshot_->metadata.index) return unstable_snapshot_->metadata.term;
    return std::nullopt;
  }
  StorageError err;
  return storage_->term(i, &err);
}

bool RaftLog::match_term(LogIndex i, Term t) const {
  auto mine = term(i);
  return mine.has_value() && *mine == t;
}

std::vector<Entry> RaftLog::slice(LogIndex lo, LogIndex hi, uint64_t max_bytes,
                                  bool* compacted) const {
  *compacted = false;
  std::vector<Entry> out;
  if (lo >= hi) return out;
  if (lo < first_index()) {
    *compacted = true;
    return out;
  }
  BALSA_ASSERT(hi <= last_index() + 1, "slice [{}, {}) beyond last index {}", lo.value, hi.value,
               last_index().value);
  uint64_t bytes = 0;
  if (lo < unstable_offset_) {
    StorageError err;
    out = storage_->entries(lo, std::min(hi, unstable_offset_), max_bytes, &err);
    if (out.empty()) {
      // The storage compacted between our first_index() check and now.
      *compacted = true;
      return {};
    }
    for (const Entry& e : out) bytes += e.payload_bytes();
    // Storage stopped early for size: don't continue into the unstable part.
    if (out.back().index + 1 < std::min(hi, unstable_offset_)) return out;
  }
  for (LogIndex i = std::max(lo, unstable_offset_); i < hi; ++i) {
    const Entry& e = unstable_[i - unstable_offset_];
    bytes += e.payload_bytes();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

LogIndex RaftLog::find_conflict(const std::vector<Entry>& entries) const {
  for (const Entry& e : entries)
    if (!match_term(e.index, e.term)) return e.index;
  return LogIndex{0};
}

std::optional<LogIndex> RaftLog::maybe_append(LogIndex prev_index, Term prev_term, LogIndex commit,
                                              const std::vector<Entry>& entries) {
  if (!match_term(prev_index, prev_term)) return std::nullopt;
  const LogIndex last_new = prev_index + entries.size();
  const LogIndex conflict = find_conflict(entries);
  if (conflict.value != 0) {
    // A conflict at or below commit would mean a committed entry differs from the leader's:
    // the Log Matching property is broken and continuing would corrupt data.
    BALSA_ASSERT(conflict > committed_, "conflict at {} is at or below commit {}", conflict.value,
                 committed_.value);
    append(std::vector<Entry>(entries.begin() + static_cast<std::ptrdiff_t>(conflict - (prev_index + 1)),
                              entries.end()));
  }
  commit_to(std::min(commit, last_new));
  return last_new;
}

void RaftLog::append(std::vector<Entry> entries) {
  if (entries.empty()) return;
  const LogIndex after = entries.front().index - 1;
  BALSA_ASSERT(after >= committed_, "append after {} would overwrite committed {}", after.value,
               committed_.value);
  BALSA_ASSERT(after <= last_index(), "append after {} leaves a gap past last {}", after.value,
               last_index().value);
  if (after + 1 == unstable_offset_ + unstable_.size()) {
    // The common case: extend the unstable tail.
  } else if (after + 1 <= unstable_offset_) {
    // Replaces part of the stable log: everything from after+1 on is new, and the storage's
    // stale suffix is shadowed until the runtime persists these (which truncates it).
    unstable_offset_ = after + 1;
    unstable_.clear();
  } else {
    unstable_.resize(after + 1 - unstable_offset_);
  }
  for (Entry& e : entries) unstable_.push_back(std::move(e));
}

bool RaftLog::is_up_to_date(LogIndex idx, Term t) const {
  const Term lt = last_term();
  return t > lt || (t == lt && idx >= last_index());
}

bool RaftLog::maybe_commit(LogIndex max_index, Term t) {
  if (max_index > committed_ && term_or_zero(max_index) == t) {
    commit_to(max_index);
    return true;
  }
  return false;
}

void RaftLog::commit_to(LogIndex index) {
  if (index <= committed_) return;  // commit never goes back
  BALSA_ASSERT(index <= last_index(), "commit {} beyond last index {}", index.value,
               last_index().value);
  committed_ = index;
}

void RaftLog::applied_to(LogIndex index) {
  if (index.value == 0 || index <= applied_) return;
  BALSA_ASSERT(index <= committed_, "applied {} beyond commit {}", index.value, committed_.value);
  applied_ = index;
}

bool RaftLog::has_next_committed() const {
  if (unstable_snapshot_) return false;  // the snapshot is applied first
  return committed_ > std::max(applied_, first_index() - 1);
}

std::vector<Entry> RaftLog::next_committed() const {
  if (!has_next_committed()) return {};
  bool compacted;
  auto out = slice(std::max(applied_ + 1, first_index()), committed_ + 1, max_apply_bytes_, &compacted);
  BALSA_ASSERT(!compacted, "committed entries after applied {} were compacted", applied_.value);
  return out;
}

void RaftLog::stable_to(LogIndex index, Term t) {
  if (unstable_snapshot_ || unstable_.empty() || index < unstable_offset_) return;
  const LogIndex last = unstable_offset_ + (unstable_.size() - 1);
  if (index > last || unstable_[index - unstable_offset_].term != t) return;  // replaced since
  unstable_.erase(unstable_.begin(),
                  unstable_.begin() + static_cast<std::ptrdiff_t>(index - unstable_offset_ + 1));
  unstable_offset_ = index + 1;
}

void RaftLog::stable_snapshot_to(LogIndex index) {
  if (unstable_snapshot_ && unstable_snapshot_->metadata.index == index) {
    unstable_snapshot_.reset();
    if (applied_ < index) applied_ = index;
  }
}

void RaftLog::restore(Snapshot snapshot) {
  const LogIndex index = snapshot.metadata.index;
  BALSA_ASSERT(index > committed_, "restoring snapshot {} at or below commit {}", index.value,
               committed_.value);
  committed_ = index;
  unstable_.clear();
  unstable_offset_ = index + 1;
  unstable_snapshot_ = std::move(snapshot);
}

LogIndex RaftLog::first_index_of_term(LogIndex i, LogIndex floor) const {
  const auto t = term(i);
  if (!t) return i;
  LogIndex j = i;
  const LogIndex lowest = std::max(floor + 1, first_index());
  while (j > lowest && term_or_zero(j - 1) == *t) j = j - 1;
  return j;
}

LogIndex RaftLog::find_conflict_by_term(LogIndex i, Term t) const {
  LogIndex j = std::min(i, last_index());
  for (; j.value > 0; j = j - 1) {
    auto tj = term(j);
    if (!tj) return j;  // compacted: the caller falls back to the follower's hint
    if (*tj <= t) return j;
  }
  return LogIndex{0};
}

void RaftLog::check_invariants() const {
  BALSA_ASSERT(applied_ <= committed_, "applied {} > committed {}", applied_.value, committed_.value);
  BALSA_ASSERT(committed_ <= last_index(), "committed {} > last {}", committed_.value,
               last_index().value);
  if (!unstable_snapshot_)
    BALSA_ASSERT(first_index() - 1 <= applied_, "entries above applied {} were compacted (first {})",
                 applied_.value, first_index().value);
  for (size_t k = 0; k < unstable_.size(); ++k) {
    BALSA_ASSERT(unstable_[k].index == unstable_offset_ + k, "unstable entry {} has index {}", k,
                 unstable_[k].index.value);
    if (k > 0)
      BALSA_ASSERT(unstable_[k].term >= unstable_[k - 1].term, "terms go back at index {}",
                   unstable_[k].index.value);
  }
}

}  // namespace balsa
