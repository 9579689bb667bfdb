#include "core/memory_storage.h"

#include "core/assert.h"

namespace balsa {

MemoryStorage::MemoryStorage() { entries_.push_back(Entry{}); }

InitialState MemoryStorage::initial_state() const { return {hard_state_, conf_}; }

LogIndex MemoryStorage::first_index() const { return entries_.front().index + 1; }
LogIndex MemoryStorage::last_index() const { return entries_.front().index + (entries_.size() - 1); }

Snapshot MemoryStorage::snapshot() const { return snapshot_; }

std::vector<Entry> MemoryStorage::entries(LogIndex lo, LogIndex hi, uint64_t max_bytes,
                                          StorageError* error) const {
  if (lo < first_index()) {
    *error = StorageError::kCompacted;
    return {};
  }
  if (hi > last_index() + 1) {
    *error = StorageError::kUnavailable;
    return {};
  }
  std::vector<Entry> out;
  uint64_t bytes = 0;
  const LogIndex base = entries_.front().index;
  for (LogIndex i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - base];
    bytes += e.payload_bytes();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

std::optional<Term> MemoryStorage::term(LogIndex i, StorageError* error) const {
  const LogIndex base = entries_.front().index;
  if (i < base) {
    *error = StorageError::kCompacted;
    return std::nullopt;
  }
  if (i > last_index()) {
    *error = StorageError::kUnavailable;
    return std::nullopt;
  }
  return entries_[i - base].term;
}

template <typename Ents, typename Take>
void MemoryStorage::append_impl(Ents& ents, Take take) {
  if (ents.empty()) return;
  const LogIndex base = entries_.front().index;
  const LogIndex first = ents.front().index;
  BALSA_ASSERT(first <= last_index() + 1, "append leaves a gap: first {} last {}", first.value,
               last_index().value);
  // Entries at or below the snapshot are already covered; skip them.
  size_t skip = 0;
  while (skip < ents.size() && ents[skip].index <= base) ++skip;
  if (skip == ents.size()) return;
  const LogIndex start = ents[skip].index;
  entries_.resize(start - base);  // truncate the conflicting suffix (if any)
  for (size_t k = skip; k < ents.size(); ++k) {
    BALSA_ASSERT(ents[k].index == last_index() + 1, "append: entries not contiguous at {}",
                 ents[k].index.value);
    entries_.push_back(take(ents[k]));
  }
}

void MemoryStorage::append(std::span<const Entry> ents) {
  append_impl(ents, [](const Entry& e) -> const Entry& { return e; });
}

void MemoryStorage::append(std::vector<Entry>&& ents) {
  append_impl(ents, [](Entry& e) -> Entry&& { return std::move(e); });
}

void MemoryStorage::apply_snapshot(Snapshot snap) {
  BALSA_ASSERT(snap.metadata.index >= snapshot_.metadata.index, "snapshot goes back: {} < {}",
               snap.metadata.index.value, snapshot_.metadata.index.value);
  entries_.clear();
  entries_.push_back(Entry{snap.metadata.term, snap.metadata.index, EntryType::kNormal, {}});
  conf_ = snap.metadata.conf;
  snapshot_ = std::move(snap);
}

void MemoryStorage::create_snapshot(LogIndex index, const ConfState& conf, std::string data) {
  const LogIndex base = entries_.front().index;
  BALSA_ASSERT(index >= base && index <= last_index(), "create_snapshot out of range: {}",
               index.value);
  if (index <= snapshot_.metadata.index) return;
  snapshot_.metadata = SnapshotMetadata{index, entries_[index - base].term, conf};
  snapshot_.data = std::move(data);
}

void MemoryStorage::compact(LogIndex index) {
  const LogIndex base = entries_.front().index;
  if (index <= base) return;
  BALSA_ASSERT(index <= last_index(), "compact beyond last index: {}", index.value);
  const size_t n = index - base;
  Entry dummy{entries_[n].term, entries_[n].index, EntryType::kNormal, {}};
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(n));
  entries_.front() = std::move(dummy);
}

}  // namespace balsa
