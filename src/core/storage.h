// The read-only view of durable state the core consults. The core never writes through it:
// what must be persisted comes out of Ready, and the runtime appends it to the real storage
// (WAL, snapshot store) and then to whatever implements this interface.
#pragma once

#include <optional>
#include <stdexcept>
#include <vector>

#include "core/types.h"

namespace balsa {

// Why a storage lookup could not be answered.
enum class StorageError : uint8_t {
  kCompacted,    // the index is below first_index(): it lives only in a snapshot now
  kUnavailable,  // the index is above last_index()
};

struct InitialState {
  HardState hard_state;
  ConfState conf;
};

class Storage {
 public:
  virtual ~Storage() = default;

  // Durable hard state and the configuration as of the last snapshot/applied conf change.
  virtual InitialState initial_state() const = 0;

  // Entries in [lo, hi), at most max_bytes in payload but always at least one if lo < hi.
  // Fails with kCompacted if lo < first_index(), kUnavailable if hi > last_index() + 1.
  virtual std::vector<Entry> entries(LogIndex lo, LogIndex hi, uint64_t max_bytes,
                                     StorageError* error) const = 0;

  // Term of entry i; valid for i in [first_index() - 1, last_index()] (first_index() - 1 is the
  // snapshot's index). Returns nullopt and sets *error otherwise.
  virtual std::optional<Term> term(LogIndex i, StorageError* error) const = 0;

  // Index of the first entry still in the log (snapshot index + 1).
  virtual LogIndex first_index() const = 0;
  // Index of the last durable entry (snapshot index if the log is empty).
  virtual LogIndex last_index() const = 0;

  // The most recent snapshot (metadata and data).
  virtual Snapshot snapshot() const = 0;
};

}  // namespace balsa
