// Fixed-width little-endian integers for the storage file formats (WAL segments, snapshot
// files). The formats are little-endian and these helpers copy host bytes, so the build
// refuses a big-endian host rather than write files no other machine reads.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

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

}  // namespace balsa::fixed_le
