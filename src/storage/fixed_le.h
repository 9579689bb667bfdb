// Fixed-width little-endian integers (and the hex fields of file names) for the storage formats (WAL segments, snapshot
// files). The formats are little-endian and these helpers copy host bytes, so the build
// refuses a big-endian host rather than write files no other machine reads.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace balsa::fixed_le {

static_assert(std::endian::native == std::endian::little, "the storage formats assume a little-endian host");

inline void put32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
inline void put64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
inline uint32_t get32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t get64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// The 16-digit lower-case hex fields of WAL segment and snapshot file names.
inline bool parse_hex(std::string_view s, uint64_t* out) {
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return false;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  *out = v;
  return true;
}

}  // namespace balsa::fixed_le
