// The write-ahead log: Raft's entries, hard state and snapshot markers, durably, in a directory
// of segment files.
//
// ON-DISK FORMAT (version 2). All integers are little-endian.
//
// Directory. Segment files are named
//     <seq>-<first>.wal          e.g. 0000000000000003-00000000000004d2.wal
// where <seq> is the segment's sequence number and <first> the log index the next entry was
// expected to have when the segment was created, each 16 lower-case hex digits, so that a
// directory listing sorts in log order. Sequence numbers are consecutive; the first one may be
// above 1 once older segments have been released after a snapshot. Files ending in ".tmp" are
// segments being created (created, preallocated and given their header under the temporary
// name, then synced, renamed and the directory fsynced): recovery deletes them.
//
// Segment header, 40 bytes:
//     [0,8)   magic "BALSAWAL"
//     [8,12)  format version (2; version 1 had no seal records and is refused)
//     [12,16) zero
//     [16,24) seq         (must equal the name's <seq>)
//     [24,32) first index (must equal the name's <first>)
//     [32,36) CRC32C of bytes [0,32)
//     [36,40) zero
//
// Records follow the header back to back, each starting at an offset that is a multiple of 8:
//     [0,4)   length L of the payload
//     [4,8)   CRC32C of bytes [0,4), then [8, 9+L) (length, type and payload)
//     [8]     type: 1 entry, 2 hard state, 3 truncate, 4 snapshot marker, 5 seal (0 is never
//             valid, so a zeroed header cannot be mistaken for a record)
//     [9,9+L) payload
//     then zero bytes up to the next multiple of 8 (checked, so every byte is covered). A
//     record is complete only with all of its padding: one whose padding runs past the end of
//     the file was torn, and is treated like any other bad record.
// Payloads, encoded with core/codec.h:
//     entry:     codec(Entry). Its index must be exactly one above the last entry's.
//     hard state codec(HardState). The last one in the log wins.
//     truncate:  varint I: entries with index >= I are discarded (a conflicting suffix).
//     snapshot:  codec(SnapshotMetadata): a snapshot covering everything up to its index is
//                durable in the snapshot store; entries at or below it are dropped.
//     seal:      varints seq, offset, last: the segment's sequence number, the seal's own
//                offset, and the log's last index when the segment was closed. The last record
//                of every closed segment, and only there.
// A header of all zeros marks the end of the log in the last segment, which is preallocated
// (filled with zeros) to the segment size so that an fdatasync does not also have to journal a
// size change. A segment is closed by writing its seal, truncating the file just after it and
// fdatasyncing, all before its successor is created: a successor on disk proves its
// predecessor complete.
//
// Every segment starts with a copy of the newest snapshot marker and hard state (when there are
// any), so deleting older segments never loses them.
//
// Within one save(), entries are written before the hard state that may commit them, all in one
// write followed by one fdatasync. A torn write can therefore lose a hard state together with or
// after its entries, never keep a commit index whose entries are gone.
//
// RECOVERY verifies every byte. In the last segment, the first record that fails to verify is a
// torn tail if no valid record starts at any later 8-byte boundary: the tail is reported,
// truncated and zeroed (unless read-only). Anything else refuses to start with
// StorageCorruptionError naming the file and offset: a bad header, checksum, length, type,
// padding or payload anywhere else; a closed segment that does not end with its seal (zeros or
// the end of the file before it: its last records were lost), a seal that disagrees with its
// segment, or anything but zeros after a seal; an entry index that does not follow its
// predecessor; a truncate below the snapshot; segment names that disagree with their headers,
// skip a sequence number or skip indexes; a first segment that starts above 1 without a
// snapshot marker that covers the gap; or a hard state whose commit index is beyond the
// recovered log. A last segment that ends with its seal (its successor was never created) is
// complete; opening for writes creates the successor.
//
// FAIL-STOP. A failed write, fdatasync, rename or directory fsync throws StorageFatalError and
// the Wal is failed for good: every later call throws. An fsync is never retried.
//
// THREADS. A Wal is used by one thread at a time. GroupCommitWal (group_commit_wal.h) puts a
// thread-safe, batching front on it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/types.h"
#include "storage/fs.h"

namespace balsa {

struct WalOptions {
  // A segment is closed once adding the next write would take it past this size. A single
  // save() larger than this still goes into one segment.
  uint64_t segment_bytes = 64ull << 20;
  // Preallocate each segment to segment_bytes with fallocate.
  bool preallocate = true;
  // With preallocate: before records reach a part of the segment not yet written, write zeros
  // this far ahead of them (see Wal::zero_ahead). 0: never.
  uint64_t zero_ahead_bytes = 256 << 10;
  // Verify only: never create, repair or delete anything (balsa-log verify/dump).
  bool read_only = false;
};

// A torn write at the end of the last segment, found and (unless read-only) cut off by open().
struct TornTail {
  std::string file;
  uint64_t offset = 0;         // where the first bad record started
  uint64_t bytes_dropped = 0;  // non-zero bytes from there to the end of the file
  std::string reason;
};

struct WalRecovery {
  HardState hard_state;
  std::optional<SnapshotMetadata> snapshot;  // the newest snapshot marker
  std::vector<Entry> entries;                // the log after the snapshot, in order
  std::optional<TornTail> torn_tail;
};

enum class WalRecordType : uint8_t {
  kEntry = 1,
  kHardState = 2,
  kTruncate = 3,
  kSnapshot = 4,
  kSeal = 5,
};

// One verified record, for balsa-log dump.
struct WalRecordView {
  std::string file;
  uint64_t offset = 0;
  WalRecordType type = WalRecordType::kEntry;
  const Entry* entry = nullptr;
  const HardState* hard_state = nullptr;
  const SnapshotMetadata* snapshot = nullptr;
  LogIndex truncate_from;
  LogIndex sealed_last;  // kSeal: the log's last index when the segment was closed
};
using WalVisitor = std::function<void(const WalRecordView&)>;

class Wal {
 public:
  struct Opened;
  // Recovers the log in `dir` (created if missing, unless read-only). Throws
  // StorageCorruptionError on damage other than a torn tail, StorageFatalError if the repair or
  // the first segment cannot be written. `visit` (optional) sees every verified record in order.
  static Opened open(FileSystem& fs, std::string dir, WalOptions options = {},
                     const WalVisitor& visit = nullptr);

  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Appends `entries` (contiguous; the first may be at or below last_index(), which truncates
  // the conflicting suffix first) and then `hs` if non-null, in one write. With `sync`, one
  // fdatasync covers the whole call. Entries at or below the snapshot are ignored. Throws
  // std::invalid_argument (Wal still usable) for a gap or non-contiguous entries.
  void save(const HardState* hs, std::span<const Entry> entries, bool sync);

  // Records, durably, that a snapshot up to `md.index` is in the snapshot store. Entries at or
  // below it are dropped; if it is beyond last_index() the log becomes empty and continues at
  // md.index + 1. With discard_after (a snapshot received from the leader), entries after it
  // are dropped too (a truncate record precedes the marker). Call after the snapshot file is
  // committed.
  void save_snapshot(const SnapshotMetadata& md, bool discard_after = false);

  // Deletes segments whose entries are all at or below `index` (never the last segment).
  // Only call with an index covered by a snapshot marker already saved.
  void release_to(LogIndex index);

  // Makes everything written so far durable (for callers that saved with sync=false).
  void sync();

  LogIndex last_index() const { return last_index_; }
  LogIndex snapshot_index() const { return snapshot_ ? snapshot_->index : LogIndex{0}; }
  const HardState& hard_state() const { return hard_state_; }
  size_t segment_count() const { return segments_.size(); }
  const std::string& dir() const { return dir_; }

 private:
  struct Segment {
    uint64_t seq = 0;
    LogIndex first;
    std::string name;
  };

  Wal(FileSystem& fs, std::string dir, WalOptions options);
  void append_record(WalRecordType type, std::string_view payload);
  void write_pending(bool sync);
  void open_new_segment();
  void zero_ahead(uint64_t end);
  void check_ok() const;
  [[noreturn]] void die(const std::string& what, const std::exception& e);

  FileSystem& fs_;
  std::string dir_;
  WalOptions options_;
  bool failed_ = false;
  std::string fail_message_;

  std::vector<Segment> segments_;  // in order; the last is open for appends
  std::unique_ptr<File> file_;     // the last segment
  uint64_t offset_ = 0;            // end of the last record in the last segment
  uint64_t zeroed_to_ = 0;         // [offset_, zeroed_to_) was written with zeros

  LogIndex last_index_;
  HardState hard_state_;
  std::optional<SnapshotMetadata> snapshot_;
  std::string pending_;  // records of the current save(), written in one call
};

struct Wal::Opened {
  std::unique_ptr<Wal> wal;  // null when read-only
  WalRecovery recovered;
};

// Segment file name for (seq, first index); and its parse, false if `name` is not a segment.
std::string wal_segment_name(uint64_t seq, LogIndex first);
bool parse_wal_segment_name(const std::string& name, uint64_t* seq, LogIndex* first);

}  // namespace balsa
