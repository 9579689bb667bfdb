// The two ways durable storage can fail, and why they differ.
//
// StorageFatalError: a write, fsync, rename or similar failed. After a failed fsync the kernel
// may have dropped the dirty pages and cleared the error (the "fsyncgate" behaviour on Linux),
// so a retry can report success for data that never reached the disk. The only safe response is
// to stop the node; the component that threw stays failed and every later call throws again.
//
// StorageCorruptionError: what is on disk is not what we wrote, somewhere other than a torn
// tail. Starting anyway could silently lose or invent committed entries, so we refuse and name
// the file and byte offset for the operator.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace balsa {

// An I/O call failed. Thrown by FileSystem implementations; the WAL and snapshot store turn it
// into StorageFatalError for anything that mutates durable state.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class StorageFatalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class StorageCorruptionError : public std::runtime_error {
 public:
  StorageCorruptionError(std::string file, uint64_t offset, const std::string& what)
      : std::runtime_error(file + " at offset " + std::to_string(offset) + ": " + what),
        file_(std::move(file)),
        offset_(offset) {}
  const std::string& file() const { return file_; }
  uint64_t offset() const { return offset_; }

 private:
  std::string file_;
  uint64_t offset_;
};

}  // namespace balsa
