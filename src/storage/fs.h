// The file system seam. The WAL and the snapshot store do all of their I/O through FileSystem,
// so the same code runs on a real disk (PosixFileSystem) and on the simulator's in-memory disk
// (SimFileSystem, sim_fs.h), which can crash, tear writes and fail calls on demand.
//
// Durability model (what a caller may rely on, and what SimFileSystem enforces):
//  - File::write_at is volatile until File::sync returns.
//  - Creating, renaming or removing a name is volatile until sync_dir on its directory.
//  - A crash keeps, per file, the synced contents plus possibly some prefix of the unsynced
//    writes in issue order (the last one kept may be torn).
// Every method throws IoError on failure. Paths are plain strings joined with '/'.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/errors.h"

namespace balsa {

class File {
 public:
  virtual ~File() = default;
  // Writes all of `data` at `offset`, extending the file if needed.
  virtual void write_at(uint64_t offset, std::string_view data) = 0;
  // Reads up to n bytes at offset; returns fewer only at end of file.
  virtual size_t read_at(uint64_t offset, char* buf, size_t n) = 0;
  // Makes every completed write (and the file size) durable: fdatasync.
  virtual void sync() = 0;
  // Reserves [0, bytes) so later writes in that range do not change the file's metadata;
  // the file's size becomes at least `bytes` and the new range reads as zeros.
  virtual void allocate(uint64_t bytes) = 0;
  virtual void truncate(uint64_t bytes) = 0;
  virtual uint64_t size() = 0;
  // A read-only view of the file's first `n` bytes (n <= size()), valid until this File is
  // destroyed or map() is called again; or an empty view when the file cannot be mapped (the
  // caller then reads with read_at). The file must not shrink while the view is in use.
  virtual std::string_view map(uint64_t n) {
    (void)n;
    return {};
  }
};

enum class OpenMode : uint8_t {
  kRead,          // existing file, read only
  kReadWrite,     // existing file
  kCreate,        // new file; fails if it exists
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual std::unique_ptr<File> open(const std::string& path, OpenMode mode) = 0;
  // Names (not paths) of the regular files in `dir`, sorted.
  virtual std::vector<std::string> list(const std::string& dir) = 0;
  virtual bool exists(const std::string& path) = 0;
  // Atomically replaces `to` with `from` (same directory).
  virtual void rename(const std::string& from, const std::string& to) = 0;
  virtual void remove(const std::string& path) = 0;
  // Makes creations, renames and removals in `dir` durable: fsync on the directory.
  virtual void sync_dir(const std::string& dir) = 0;
  // Creates `dir` and its parents if missing, durably.
  virtual void create_dirs(const std::string& dir) = 0;
};

class PosixFileSystem final : public FileSystem {
 public:
  std::unique_ptr<File> open(const std::string& path, OpenMode mode) override;
  std::vector<std::string> list(const std::string& dir) override;
  bool exists(const std::string& path) override;
  void rename(const std::string& from, const std::string& to) override;
  void remove(const std::string& path) override;
  void sync_dir(const std::string& dir) override;
  void create_dirs(const std::string& dir) override;
};

inline std::string path_join(std::string_view dir, std::string_view name) {
  std::string p(dir);
  if (!p.empty() && p.back() != '/') p.push_back('/');
  p.append(name);
  return p;
}

// Reads a whole file into memory (used for WAL segments, which are bounded in size).
std::string read_all(File& f);

}  // namespace balsa
