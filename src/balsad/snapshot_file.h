// The file `etcdctl snapshot save` writes from balsad's Maintenance.Snapshot stream, and
// `balsad restore` reads:
//
//   "BALSABK1" | u64 little-endian image length | image (KvStateMachine's snapshot image)
//   | zero padding to a multiple of 512 bytes | SHA-256 of everything before it (32 bytes)
//
// etcdctl 3.4 checks only that the size is a multiple of 512 plus a 32-byte SHA-256 (what etcd
// appends to its bbolt file, whose pages are 512-byte aligned); balsad restore checks all of it.
// The image is balsad's, not a bbolt file: `etcdctl snapshot status/restore` cannot read it.
#pragma once

#include <cstdint>
#include <string>

namespace balsa::balsad {

inline constexpr char kSnapshotMagic[] = "BALSABK1";
inline constexpr size_t kSnapshotPrefixBytes = 16;
inline constexpr size_t kSnapshotAlign = 512;
inline constexpr size_t kSnapshotSumBytes = 32;

// Incremental SHA-256 (OpenSSL's EVP).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* p, size_t n);
  std::string finish();  // 32 bytes

 private:
  void* ctx_;
};

std::string snapshot_prefix(uint64_t image_bytes);
// Zero bytes after the image so that prefix + image + padding is a multiple of 512.
uint64_t snapshot_padding(uint64_t image_bytes);

// Verifies `path` (size, magic, length, zero padding, SHA-256). Returns the image length; the
// image starts at kSnapshotPrefixBytes. Throws std::runtime_error saying what is wrong.
uint64_t verify_snapshot_file(const std::string& path, bool skip_hash_check = false);

}  // namespace balsa::balsad
