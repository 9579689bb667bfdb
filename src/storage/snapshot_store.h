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

  // Removes all but the newest `keep` snapshots.
  void prune();

  const std::string& dir() const { return dir_; }
  std::string file_name(const SnapshotMetadata& md) const;

 private:
  friend class SnapshotWriter;
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
