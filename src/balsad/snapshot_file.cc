#include "balsad/snapshot_file.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace balsa::balsad {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("cannot initialize SHA-256");
}
Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void Sha256::update(const void* p, size_t n) { EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), p, n); }
std::string Sha256::finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string snapshot_prefix(uint64_t image_bytes) {
  std::string p(kSnapshotMagic, 8);
  for (int i = 0; i < 8; ++i) p.push_back(static_cast<char>(image_bytes >> (8 * i)));
  return p;
}

uint64_t snapshot_padding(uint64_t image_bytes) {
  const uint64_t used = (kSnapshotPrefixBytes + image_bytes) % kSnapshotAlign;
  return used == 0 ? 0 : kSnapshotAlign - used;
}

uint64_t verify_snapshot_file(const std::string& path, bool skip_hash_check) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot open snapshot file {}", path));
  in.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (size < kSnapshotAlign + kSnapshotSumBytes || size % kSnapshotAlign != kSnapshotSumBytes)
    throw std::runtime_error(fmt::format("snapshot file {} is truncated or not a snapshot: {} bytes is not "
                                         "512*n + 32 (a sha256 checksum after 512-byte aligned data)",
                                         path, size));
  char prefix[kSnapshotPrefixBytes];
  in.read(prefix, sizeof prefix);
  if (std::memcmp(prefix, kSnapshotMagic, 8) != 0)
    throw std::runtime_error(fmt::format("snapshot file {} was not written by balsad (no {} header); an etcd "
                                         "(bbolt) snapshot is restored with etcdctl snapshot restore",
                                         path, kSnapshotMagic));
  uint64_t image = 0;
  for (int i = 0; i < 8; ++i) image |= uint64_t{static_cast<unsigned char>(prefix[8 + i])} << (8 * i);
  const uint64_t data = size - kSnapshotSumBytes;
  if (image > data - kSnapshotPrefixBytes || kSnapshotPrefixBytes + image + snapshot_padding(image) != data)
    throw std::runtime_error(fmt::format("snapshot file {} is truncated: its header names a {} byte image "
                                         "but the file holds {} bytes",
                                         path, image, size));
  Sha256 sha;
  sha.update(prefix, sizeof prefix);
  std::vector<char> buf(1 << 20);
  uint64_t left = data - kSnapshotPrefixBytes, pos = kSnapshotPrefixBytes;
  while (left > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
    if (!in.read(buf.data(), static_cast<std::streamsize>(n)))
      throw std::runtime_error(fmt::format("cannot read snapshot file {}", path));
    sha.update(buf.data(), n);
    // The padding after the image must be zeros.
    for (size_t k = 0; k < n; ++k)
      if (pos + k >= kSnapshotPrefixBytes + image && buf[k] != 0)
        throw std::runtime_error(fmt::format("snapshot file {} is damaged: non-zero padding at offset {}", path, pos + k));
    pos += n;
    left -= n;
  }
  char want[kSnapshotSumBytes];
  in.read(want, sizeof want);
  const std::string got = sha.finish();
  if (!skip_hash_check && std::memcmp(want, got.data(), sizeof want) != 0)
    throw std::runtime_error(fmt::format("snapshot file {} is damaged: sha256 checksum mismatch (the file was "
                                         "altered or corrupted after it was saved)",
                                         path));
  return image;
}

}  // namespace balsa::balsad
