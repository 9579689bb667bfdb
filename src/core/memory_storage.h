// An in-memory Storage: the core's test double, and the cache a durable store keeps in front
// of its WAL. Not thread-safe: the owner serializes access with the core's steps.
#pragma once

#include <deque>
#include <span>

#include "core/storage.h"

namespace balsa {

class MemoryStorage final : public Storage {
 public:
  MemoryStorage();

  InitialState initial_state() const override;
  std::vector<Entry> entries(LogIndex lo, LogIndex hi, uint64_t max_bytes,
                             StorageError* error) const override;
  std::optional<Term> term(LogIndex i, StorageError* error) const override;
  LogIndex first_index() const override;
  LogIndex last_index() const override;
  Snapshot snapshot() const override;

  // Mutators used by the runtime after the data is durable.
  void set_hard_state(const HardState& hs) { hard_state_ = hs; }
  void set_conf_state(const ConfState& cs) { conf_ = cs; }
  // Appends entries, truncating any existing suffix that they overwrite. Entries must be
  // contiguous and must not start beyond last_index() + 1 or at/below the snapshot.
  // Appends (truncating a conflicting suffix; entries at or below the snapshot are ignored).
  // The span form copies each entry once; the rvalue form moves them.
  void append(std::span<const Entry> entries);
  void append(std::vector<Entry>&& entries);
  // Replaces everything with the snapshot (entries it covers are dropped).
  void apply_snapshot(Snapshot snap);
  // Records a snapshot taken locally at `index` (<= last_index); entries stay until compact().
  void create_snapshot(LogIndex index, const ConfState& conf, std::string data);
  // Drops entries up to and including `index` (which becomes the dummy head).
  void compact(LogIndex index);

 private:
  template <typename Ents, typename Take>
  void append_impl(Ents& ents, Take take);
  HardState hard_state_;
  ConfState conf_;
  Snapshot snapshot_;
  // entries_[0] is a dummy holding the snapshot's index and term.
  std::deque<Entry> entries_;
};

}  // namespace balsa
