// What the leader knows about each follower's log, and the flow control of appends to it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/types.h"

namespace balsa {

// A bounded window of in-flight appends to one follower, by count and by bytes.
// Each slot records the last index a message carried and its payload bytes; an ack up to
// index i frees every slot <= i.
class Inflights {
 public:
  Inflights(size_t max_count, uint64_t max_bytes) : max_count_(max_count), max_bytes_(max_bytes) {}

  // Full when either bound is reached. A window with max_bytes == 0 is bounded by count only.
  bool full() const {
    return slots_.size() >= max_count_ || (max_bytes_ != 0 && bytes_ >= max_bytes_);
  }
  size_t count() const { return slots_.size(); }
  uint64_t bytes() const { return bytes_; }
  void add(LogIndex last, uint64_t bytes);
  void free_le(LogIndex index);  // frees every slot whose last index <= index
  void free_first_one();         // frees the oldest slot (a lost message is assumed)
  void reset() { slots_.clear(); bytes_ = 0; }

 private:
  struct Slot { LogIndex last; uint64_t bytes; };
  std::vector<Slot> slots_;  // in index order; small (max_count), so a vector is fine
  size_t max_count_;
  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
};

enum class ProgressState : uint8_t {
  kProbe,      // we don't know where the follower's log matches: one append at a time
  kReplicate,  // matching found: stream appends optimistically, up to the inflight window
  kSnapshot,   // the follower needs a snapshot; appends paused until it is applied
};
const char* to_string(ProgressState s);

// Invariant: match < next; in kProbe at most one append is unacknowledged (probe_sent).
struct Progress {
  Progress(LogIndex next, size_t max_inflight, uint64_t max_inflight_bytes)
      : next(next), inflights(max_inflight, max_inflight_bytes) {}

  LogIndex match;
  LogIndex next;
  ProgressState state = ProgressState::kProbe;
  bool probe_sent = false;          // kProbe: an append is outstanding; wait for a reply
  LogIndex pending_snapshot;        // kSnapshot: index of the snapshot sent
  uint64_t snapshot_ticks = 0;      // kSnapshot: ticks since it was sent (a lost one is resent)
  bool recent_active = false;       // heard from since the last check-quorum round
  bool is_learner = false;
  Inflights inflights;

  void become_probe();
  void become_replicate();
  void become_snapshot(LogIndex snapshot_index);
  // An ack up to n: returns true if match advanced.
  bool maybe_update(LogIndex n);
  // A rejection of the append after `rejected` with a computed retry point: returns false if
  // the rejection is stale (answers an older message) and must be ignored.
  bool maybe_decrease_to(LogIndex rejected, LogIndex retry_next);
  // Records an append of entries up to `last` (bytes in flight) and advances next.
  void sent_entries(LogIndex last, uint64_t bytes, size_t count);
  bool is_paused() const;
};

}  // namespace balsa
