// DurableLog: the Storage the Raft core reads, backed by the WAL and the snapshot store, with a
// MemoryStorage cache in front so reads never touch the disk.
//
// Directory layout: <dir>/wal (Wal segments) and <dir>/snap (SnapshotStore).
//
// The runtime's loop, per Ready:
//   if Ready has a snapshot: log.apply_snapshot(metadata, image)   // before the entries
//   log.persist(&hard_state or nullptr, entries)                   // one write + one fdatasync
//   ... then send the messages that depended on durability, and Advance.
// Local snapshots: log.create_snapshot(applied, conf, writer-fn), later log.compact(i).
//
// Every method that writes throws StorageFatalError on I/O failure, after which the node must
// stop. Not thread-safe: the runtime serializes calls with the core's steps.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>

#include "core/memory_storage.h"
#include "storage/snapshot_store.h"
#include "storage/wal.h"

namespace balsa {

struct DurableLogOptions {
  WalOptions wal;
  size_t keep_snapshots = 2;
};

class DurableLog final : public Storage {
 public:
  // Recovers from `dir` (created if missing). Throws StorageCorruptionError if the WAL is
  // damaged or refers to a snapshot the store does not hold.
  static std::unique_ptr<DurableLog> open(FileSystem& fs, const std::string& dir,
                                          DurableLogOptions options = {});

  // Storage
  InitialState initial_state() const override { return cache_.initial_state(); }
  std::vector<Entry> entries(LogIndex lo, LogIndex hi, uint64_t max_bytes,
                             StorageError* error) const override {
    return cache_.entries(lo, hi, max_bytes, error);
  }
  std::optional<Term> term(LogIndex i, StorageError* error) const override {
    return cache_.term(i, error);
  }
  LogIndex first_index() const override { return cache_.first_index(); }
  LogIndex last_index() const override { return cache_.last_index(); }
  // Loads the image from the snapshot store (verified), unless set_inline_snapshot_images(false):
  // then only the metadata, and whoever needs the image streams it (snapshots().open(index),
  // or open_file() to send it to a follower).
  Snapshot snapshot() const override;
  // The latest snapshot's metadata (index 0: none), without touching its image.
  SnapshotMetadata snapshot_metadata() const { return cache_.snapshot().metadata; }
  // The node runtime streams images and turns this off; the core simulator keeps it on.
  void set_inline_snapshot_images(bool on) { inline_images_ = on; }
  bool inline_snapshot_images() const { return inline_images_; }

  // Appends entries (truncating a conflicting suffix) and the hard state, if given, in one
  // write with one fdatasync; then updates the cache. With sync=false (Ready::must_sync false:
  // only the commit index moved) the write is not synced; the next synced write covers it, and
  // a crash may only lose a commit index, which Raft recomputes.
  void persist(const HardState* hs, std::span<const Entry> entries, bool sync = true);

  // A snapshot from the leader: stores the image, records it in the WAL, and replaces the log.
  void apply_snapshot(const SnapshotMetadata& md, ByteSource& image);
  void apply_snapshot(const Snapshot& snap);
  // The same for a snapshot whose file was streamed in and verified (SnapshotStore::receive):
  // moves it into place, records it in the WAL and replaces the log. False (nothing changed)
  // if no finished transfer of `md` is waiting.
  bool install_received_snapshot(const SnapshotMetadata& md);

  // A snapshot of the local state machine at `index` (<= last_index()). Entries stay until
  // compact(). Equivalent to begin_snapshot, writing the image, commit(), finish_snapshot.
  void create_snapshot(LogIndex index, const ConfState& conf,
                       const std::function<void(ByteSink&)>& write_image);

  // The same in steps, so the image can be written and synced off the owner's thread:
  //   auto w = log.begin_snapshot(i, conf);           // owner's thread
  //   write the image into *w; w->commit();           // any one thread (fsync + rename)
  //   log.finish_snapshot(w->metadata());             // owner's thread: recorded in the WAL
  // Meanwhile the owner may persist, apply leader snapshots and so on. finish_snapshot returns
  // false (and records nothing) when a snapshot at or past this index got there first.
  std::unique_ptr<SnapshotWriter> begin_snapshot(LogIndex index, const ConfState& conf);
  bool finish_snapshot(const SnapshotMetadata& md);

  // Forgets entries up to `index` (at most the snapshot index), in the cache and in whole WAL
  // segments.
  void compact(LogIndex index);

  const std::optional<TornTail>& torn_tail() const { return torn_tail_; }
  SnapshotStore& snapshots() { return *store_; }
  Wal& wal() { return *wal_; }

 private:
  DurableLog() = default;

  std::unique_ptr<Wal> wal_;
  std::unique_ptr<SnapshotStore> store_;
  MemoryStorage cache_;
  std::optional<TornTail> torn_tail_;
  bool inline_images_ = true;
};

}  // namespace balsa
