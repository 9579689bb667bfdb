// The Raft log as the core sees it: a durable prefix in Storage, and an unstable suffix (and
// possibly an unstable snapshot) that has been accepted but not yet reported durable.
//
//   storage:   [first_index .................. stable last]
//   unstable:                                   [offset ............ last_index]
//   (an unstable snapshot, when present, replaces everything at or below its index)
//
// Invariants (checked by check_invariants()):
//   applied <= committed <= last_index()
//   first_index() - 1 <= applied   (nothing below a snapshot is ever unapplied)
//   unstable entries are contiguous from unstable_offset_
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/storage.h"

namespace balsa {

class RaftLog {
 public:
  explicit RaftLog(const Storage* storage, uint64_t max_apply_bytes);

  LogIndex first_index() const;
  LogIndex last_index() const;
  Term last_term() const;
  // Term of entry i, or nullopt if i is compacted or beyond the log. term(first_index()-1) is
  // the snapshot's term; term(0) is 0.
  std::optional<Term> term(LogIndex i) const;
  // Term of entry i, or 0 if unknown (convenience for comparisons where unknown never matches).
  Term term_or_zero(LogIndex i) const { return term(i).value_or(Term{0}); }
  bool match_term(LogIndex i, Term t) const;

  // Entries [lo, hi) limited to max_bytes (at least one). Sets *compacted if lo is below the log.
  std::vector<Entry> slice(LogIndex lo, LogIndex hi, uint64_t max_bytes, bool* compacted) const;
  std::vector<Entry> entries_from(LogIndex lo, uint64_t max_bytes, bool* compacted) const {
    return slice(lo, last_index() + 1, max_bytes, compacted);
  }

  // Raft §5.3 append: given entries following (prev_index, prev_term), find the first conflict,
  // truncate from there and append. Returns the last new index, or nullopt if prev doesn't match.
  std::optional<LogIndex> maybe_append(LogIndex prev_index, Term prev_term, LogIndex commit,
                                       const std::vector<Entry>& entries);
  // Appends entries at the tail (leader path). Entries must start at last_index()+1 or truncate
  // an unstable suffix; never below committed.
  void append(std::vector<Entry> entries);

  // Is a candidate's log (last_index, last_term) at least as up-to-date as ours (§5.4.1)?
  bool is_up_to_date(LogIndex last_index, Term last_term) const;

  bool maybe_commit(LogIndex max_index, Term term);  // only if term(max_index) == term
  void commit_to(LogIndex index);
  void applied_to(LogIndex index);
  LogIndex committed() const { return committed_; }
  LogIndex applied() const { return applied_; }

  // Committed entries not yet handed out for apply, up to max_apply_bytes.
  bool has_next_committed() const;
  std::vector<Entry> next_committed() const;

  // Unstable state for Ready.
  const std::vector<Entry>& unstable_entries() const { return unstable_; }
  const std::optional<Snapshot>& unstable_snapshot() const { return unstable_snapshot_; }
  void stable_to(LogIndex index, Term term);
  void stable_snapshot_to(LogIndex index);
  // Index of the last entry durable in storage (or the stable snapshot).
  LogIndex stable_last_index() const;

  // Replaces the log with a snapshot received from the leader.
  void restore(Snapshot snapshot);
  const Snapshot* pending_snapshot() const {
    return unstable_snapshot_ ? &*unstable_snapshot_ : nullptr;
  }

  // Index of the first entry of the term of entry i, scanning back no further than `floor`.
  LogIndex first_index_of_term(LogIndex i, LogIndex floor) const;
  // Largest index j <= i whose term <= t; used to find where two logs agree.
  LogIndex find_conflict_by_term(LogIndex i, Term t) const;

  void check_invariants() const;
  const Storage& storage() const { return *storage_; }

 private:
  LogIndex find_conflict(const std::vector<Entry>& entries) const;
  LogIndex unstable_offset() const { return unstable_offset_; }

  const Storage* storage_;
  std::vector<Entry> unstable_;
  LogIndex unstable_offset_;  // index of unstable_[0]; == stable last + 1
  std::optional<Snapshot> unstable_snapshot_;
  LogIndex committed_;
  LogIndex applied_;
  uint64_t max_apply_bytes_;
};

}  // namespace balsa
