// Durable snapshots: the state machine's image plus the Raft metadata it was taken at, one file
// per snapshot, streamed in and out so an image need not fit in memory.
//
// ON-DISK FORMAT (version 1), integers little-endian. File name <index>-<term>.snap, each 16
// lower-case hex digits (so names sort by index). Layout:
//     [0,8)        magic "BALSASNP"
//     [8,12)       version (1)
//     [12,16)      M, length of the encoded metadata (at most 16 MiB)
//     [16,16+M)    codec(SnapshotMetadata): index, term, configuration
//     [16+M,20+M)  CRC32C of bytes [0,16+M)
//     [20+M,S-16)  the state machine's image, D bytes
//     [S-16,S-8)   D
//     [S-8,S-4)    CRC32C of the image
//     [S-4,S)      CRC32C of bytes [S-16,S-4)
// A snapshot is written as <name>.tmp, fdatasynced, renamed and the directory fsynced, so a
// name without ".tmp" always refers to a complete file; leftover .tmp files are deleted.
//
// Reading verifies the header and the trailer up front, then the image checksum in a first
// pass before any byte is handed out (so a corrupt image is rejected before a state machine
// starts restoring from it), and again as the bytes stream out. A mismatch throws
// StorageCorruptionError naming the file and offset.
//
// Streaming to a follower (src/transport/snapshot_stream.h): the leader reads the file as it
// lies on disk, chunk by chunk, with a SnapshotFileReader (never the whole file in memory);
// the follower writes the chunks into <name>.part with an IncomingSnapshot as they arrive,
// which on the last byte syncs it, verifies it completely (header, metadata, image checksum,
// trailer) and renames it <name>.recv; install_received() then moves it under its final name
// once the Raft core has accepted the snapshot. .part and .recv files left by a crash are
// deleted when the store is opened (a transfer interrupted by a restart starts over).
//
// Any I/O failure while writing throws StorageFatalError: like the WAL, a failed fsync is never
// retried, and the store is failed for good: every later begin(), write, commit() or prune()
// throws the same error without touching the disk.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/types.h"
#include "storage/byte_stream.h"
#include "storage/fs.h"

namespace balsa {

class SnapshotStore;

// Streams a new snapshot's image to a temporary file. Destroying it without commit() discards it.
class SnapshotWriter final : public ByteSink {
 public:
  ~SnapshotWriter() override;
  void write(std::string_view bytes) override;
  // Makes the snapshot durable under its final name. Does not prune: the caller first records
  // the snapshot in the WAL, then calls SnapshotStore::prune(), so the snapshot the WAL refers
  // to is never the one deleted.
  void commit();
  const SnapshotMetadata& metadata() const { return metadata_; }

 private:
  friend class SnapshotStore;
  SnapshotWriter(SnapshotStore& store, SnapshotMetadata md, std::string tmp, std::string final,
                 std::unique_ptr<File> file, uint64_t offset);
  void flush();
  [[noreturn]] void die(const std::string& what, const std::exception& e);

  SnapshotStore& store_;
  SnapshotMetadata metadata_;
  std::string tmp_path_;
  std::string final_path_;
  std::unique_ptr<File> file_;
  uint64_t offset_;
  uint64_t unsynced_ = 0;  // bytes written since the last fdatasync
  uint64_t data_bytes_ = 0;
  uint32_t crc_ = 0;
  std::string buffer_;
  bool done_ = false;
};

class SnapshotReader final : public ByteSource {
 public:
  size_t read(char* buf, size_t n) override;
  const SnapshotMetadata& metadata() const { return metadata_; }
  uint64_t data_bytes() const { return data_bytes_; }
  // Reads the rest of the image into a string (for small snapshots and tests).
  std::string read_all();

 private:
  friend class SnapshotStore;
  SnapshotReader() = default;

  std::string path_;
  std::unique_ptr<File> file_;
  SnapshotMetadata metadata_;
  uint64_t data_start_ = 0;
  uint64_t data_bytes_ = 0;
  uint32_t expected_crc_ = 0;
  uint64_t pos_ = 0;  // bytes of the image handed out so far
  uint32_t crc_ = 0;
};

// The raw bytes of one snapshot file, for streaming it chunk by chunk. Holds the file open, so
// a snapshot pruned meanwhile can still be read to its end. Any one thread at a time.
class SnapshotFileReader {
 public:
  const SnapshotMetadata& metadata() const { return metadata_; }
  uint64_t size() const { return size_; }
  // Reads up to n bytes at `offset` (fewer only at the end of the file). Throws
  // StorageCorruptionError if the file is shorter than when it was opened.
  size_t read_at(uint64_t offset, char* buf, size_t n);

 private:
  friend class SnapshotStore;
  SnapshotFileReader() = default;
  std::string path_;
  std::unique_ptr<File> file_;
  SnapshotMetadata metadata_;
  uint64_t size_ = 0;
};

// A snapshot file arriving from the leader, appended in order into <name>.part. Destroying it
// before finish() deletes the partial file. Any one thread at a time (the transport's).
class IncomingSnapshot {
 public:
  ~IncomingSnapshot();
  IncomingSnapshot(const IncomingSnapshot&) = delete;
  IncomingSnapshot& operator=(const IncomingSnapshot&) = delete;

  const SnapshotMetadata& metadata() const { return metadata_; }
  uint64_t size() const { return offset_; }          // bytes written so far, contiguous from 0
  uint64_t expected_size() const { return expected_; }
  // Writes at size(). Throws std::invalid_argument past expected_size().
  void append(std::string_view bytes);
  // With size() == expected_size(): fdatasyncs, verifies the whole file and that its metadata
  // is the one announced, then renames it <name>.recv. Throws StorageCorruptionError when the
  // file does not verify (the partial file is deleted: the transfer must start over).
  void finish();

 private:
  friend class SnapshotStore;
  IncomingSnapshot(SnapshotStore& store, SnapshotMetadata md, uint64_t expected, std::string part,
                   std::string recv, std::unique_ptr<File> file);
  SnapshotStore& store_;
  SnapshotMetadata metadata_;
  uint64_t expected_;
  std::string part_path_;
  std::string recv_path_;
  std::unique_ptr<File> file_;
  uint64_t offset_ = 0;
  uint64_t unsynced_ = 0;
  bool done_ = false;
};

// Threading: one SnapshotWriter may be written and committed on another thread while the
// owner keeps using the store (begin, open, list, prune) on its own; nothing else is shared.
class SnapshotStore {
 public:
  // Keeps the newest `keep` snapshots (at least 1). `read_only` never creates, deletes or repairs.
  SnapshotStore(FileSystem& fs, std::string dir, size_t keep = 2, bool read_only = false);

  std::unique_ptr<SnapshotWriter> begin(const SnapshotMetadata& md);

  // Snapshots present, oldest first, from their verified headers (the image is not read).
  // Throws StorageCorruptionError for a file whose header or name is damaged.
  std::vector<SnapshotMetadata> list();
  std::optional<SnapshotMetadata> latest();

  // Opens the snapshot at `index`, verifying it completely first.
  std::unique_ptr<SnapshotReader> open(LogIndex index);

  // The file of the snapshot `md` (exactly that index and term) for streaming; throws
  // std::runtime_error if the store does not hold it.
  std::unique_ptr<SnapshotFileReader> open_file(const SnapshotMetadata& md);
  // Starts receiving the file of `md`, `file_bytes` long, from offset 0 (an older partial file
  // of the same snapshot is replaced).
  std::unique_ptr<IncomingSnapshot> receive(const SnapshotMetadata& md, uint64_t file_bytes);
  // Moves the finished, verified transfer of `md` (<name>.recv) under its final name. False
  // if there is none. Older .recv files (transfers the core never took) are deleted.
  bool install_received(const SnapshotMetadata& md);

  // Removes all but the newest `keep` snapshots.
  void prune();

  const std::string& dir() const { return dir_; }
  std::string file_name(const SnapshotMetadata& md) const;

 private:
  friend class SnapshotWriter;
  friend class IncomingSnapshot;
  std::unique_ptr<SnapshotReader> open_path(const std::string& path, bool verify);
  void check_ok() const;
  [[noreturn]] void fail(std::string message);

  FileSystem& fs_;
  std::string dir_;
  size_t keep_;
  bool read_only_;
  // The first fatal error; non-empty: the store is stopped. Guarded: a writer may commit on
  // a background thread while the node's loop uses the store.
  mutable std::mutex failed_mu_;
  std::string failed_;
};

}  // namespace balsa
