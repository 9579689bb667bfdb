// CRC-32C (Castagnoli), the checksum etcd's HashKV uses (Go: crc32.MakeTable(crc32.Castagnoli)).
// An incremental wrapper over the storage layer's implementation (hardware when available).
#pragma once

#include <cstdint>
#include <string_view>

#include "storage/crc32c.h"

namespace balsa::kv {

class Crc32c {
 public:
  void update(std::string_view bytes) { crc_ = crc32c_extend(crc_, bytes.data(), bytes.size()); }
  uint32_t value() const { return crc_; }

 private:
  uint32_t crc_ = 0;
};

using balsa::crc32c;

}  // namespace balsa::kv
