#include "core/progress.h"

#include <algorithm>

#include "core/assert.h"

namespace balsa {

void Inflights::add(LogIndex last, uint64_t bytes) {
  BALSA_ASSERT(slots_.empty() || slots_.back().last < last, "inflight {} not after {}", last.value,
               slots_.back().last.value);
  slots_.push_back({last, bytes});
  bytes_ += bytes;
}

void Inflights::free_le(LogIndex index) {
  size_t k = 0;
  while (k < slots_.size() && slots_[k].last <= index) bytes_ -= slots_[k++].bytes;
  slots_.erase(slots_.begin(), slots_.begin() + static_cast<std::ptrdiff_t>(k));
}

void Inflights::free_first_one() {
  if (slots_.empty()) return;
  bytes_ -= slots_.front().bytes;
  slots_.erase(slots_.begin());
}

const char* to_string(ProgressState s) {
  switch (s) {
    case ProgressState::kProbe: return "probe";
    case ProgressState::kReplicate: return "replicate";
    case ProgressState::kSnapshot: return "snapshot";
  }
  return "?";
}

void Progress::become_probe() {
  // Coming back from a snapshot, resume right after it (if the follower got that far).
  if (state == ProgressState::kSnapshot) {
    next = std::max(match + 1, pending_snapshot + 1);
  } else {
    next = match + 1;
  }
  state = ProgressState::kProbe;
  probe_sent = false;
  pending_snapshot = LogIndex{0};
  inflights.reset();
}

void Progress::become_replicate() {
  state = ProgressState::kReplicate;
  next = match + 1;
  probe_sent = false;
  pending_snapshot = LogIndex{0};
  inflights.reset();
}

void Progress::become_snapshot(LogIndex snapshot_index) {
  state = ProgressState::kSnapshot;
  probe_sent = false;
  pending_snapshot = snapshot_index;
  snapshot_ticks = 0;
  inflights.reset();
}

bool Progress::maybe_update(LogIndex n) {
  bool updated = false;
  if (match < n) {
    match = n;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, n + 1);
  return updated;
}

bool Progress::maybe_decrease_to(LogIndex rejected, LogIndex retry_next) {
  switch (state) {
    case ProgressState::kReplicate:
      // A rejection at or below match answers an old, reordered message.
      if (rejected <= match) return false;
      become_probe();
      break;
    case ProgressState::kProbe:
      // In probe, only the reply to the outstanding probe (which carried prev = next - 1) counts.
      if (next - 1 != rejected) return false;
      break;
    case ProgressState::kSnapshot:
      return false;
  }
  next = std::max(match + 1, std::min(retry_next, rejected));
  if (next.value == 0) next = LogIndex{1};
  probe_sent = false;
  return true;
}

void Progress::sent_entries(LogIndex last, uint64_t bytes, size_t count) {
  switch (state) {
    case ProgressState::kReplicate:
      if (count > 0) {
        next = last + 1;
        inflights.add(last, bytes);
      }
      break;
    case ProgressState::kProbe:
      probe_sent = true;
      break;
    case ProgressState::kSnapshot:
      BALSA_ASSERT(false, "sending entries to a follower in snapshot state");
  }
}

bool Progress::is_paused() const {
  switch (state) {
    case ProgressState::kProbe: return probe_sent;
    case ProgressState::kReplicate: return inflights.full();
    case ProgressState::kSnapshot: return true;
  }
  return true;
}

}  // namespace balsa
