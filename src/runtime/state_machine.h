// The one interface a user implements to replicate a state machine with Balsa.
#pragma once

#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/types.h"
#include "storage/byte_stream.h"

namespace balsa {

// Thrown by a snapshot_image() writer that cannot finish a consistent image (e.g. history it
// needed was compacted meanwhile). Not a failure: the runtime drops that image and takes the
// next snapshot with save_snapshot on its loop thread.
struct SnapshotAbandoned : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class StateMachine {
 public:
  virtual ~StateMachine() = default;

  // Applies a batch of committed entries, in log order, exactly once each across restarts
  // (the runtime never re-applies an index at or below applied_index()). Empty entries (the
  // leader's no-op) and configuration entries are passed too so applied_index() can advance;
  // their result is ignored. Appends exactly one result per entry to `results`: it is what
  // the proposer's `propose` completes with.
  virtual void apply(std::span<const Entry> entries, std::vector<std::string>* results) = 0;

  // Index of the last entry applied (or restored from a snapshot).
  virtual LogIndex applied_index() const = 0;

  // Writes a consistent image of the state as of applied_index() to `out`.
  virtual void save_snapshot(ByteSink& out) = 0;

  // Optional, for state machines whose image is slow to write: returns a function that writes
  // an image of the state as of applied_index() (what save_snapshot would write) and that
  // stays valid while apply() goes on, e.g. over a copy-on-write view or a serialized copy.
  // The runtime calls it on another thread, so the loop keeps appending, acking and applying
  // while the image is written and synced. The default (empty) means: use save_snapshot on
  // the loop thread.
  virtual std::function<void(ByteSink&)> snapshot_image() { return {}; }

  // Replaces all state with the image read from `in`, taken at `index`.
  virtual void restore_snapshot(ByteSource& in, LogIndex index) = 0;
};

}  // namespace balsa
