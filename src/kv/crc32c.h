// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum etcd's HashKV uses
// (Go: crc32.New(crc32.MakeTable(crc32.Castagnoli))). Software table implementation.
#pragma once

#include <cstdint>
#include <string_view>

namespace balsa::kv {

class Crc32c {
 public:
  void update(std::string_view bytes);
  uint32_t value() const { return ~state_; }

 private:
  uint32_t state_ = ~uint32_t{0};
};

inline uint32_t crc32c(std::string_view bytes) {
  Crc32c c;
  c.update(bytes);
  return c.value();
}

}  // namespace balsa::kv
