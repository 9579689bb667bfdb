#include "storage/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace balsa {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;

// table[k][b]: the CRC contribution of byte b followed by k zero bytes, which lets the
// slicing-by-8 loop fold eight input bytes per step with eight independent lookups.
struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  constexpr Tables() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1) ? kPoly : 0);
      t[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; ++b) {
      for (int k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
    }
  }
};
constexpr Tables kTables;

uint64_t load_le64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // the targets we build for are little-endian
}

}  // namespace

namespace detail {

uint32_t crc32c_software(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  const auto& t = kTables.t;
  uint32_t c = ~crc;
  while (n >= 8) {
    const uint64_t v = load_le64(p) ^ c;
    c = t[7][v & 0xFF] ^ t[6][(v >> 8) & 0xFF] ^ t[5][(v >> 16) & 0xFF] ^ t[4][(v >> 24) & 0xFF] ^
        t[3][(v >> 32) & 0xFF] ^ t[2][(v >> 40) & 0xFF] ^ t[1][(v >> 48) & 0xFF] ^
        t[0][(v >> 56) & 0xFF];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

#if defined(__x86_64__)
bool crc32c_hardware_available() {
  static const bool ok = __builtin_cpu_supports("sse4.2");
  return ok;
}

namespace {

// The crc32 instruction has a latency of three cycles but can start one per cycle, so one
// dependent chain runs at a third of its speed. Three independent streams over consecutive
// blocks of B bytes, then combined, keep it busy: with R the raw (not inverted) CRC register,
// R(c, A B) = Z_B(R(c, A)) ^ R(0, B), where Z_B(x) feeds B zero bytes to x. Z_B is linear, so
// it is four table lookups, one per byte of x.
struct ZeroShift {
  std::array<std::array<uint32_t, 256>, 4> t{};
  explicit ZeroShift(size_t zero_bytes) {
    for (int k = 0; k < 4; ++k) {
      for (uint32_t b = 0; b < 256; ++b) {
        uint32_t c = b << (8 * k);
        for (size_t i = 0; i < zero_bytes; ++i) c = (c >> 8) ^ kTables.t[0][c & 0xFF];
        t[k][b] = c;
      }
    }
  }
  uint32_t operator()(uint32_t c) const {
    return t[0][c & 0xFF] ^ t[1][(c >> 8) & 0xFF] ^ t[2][(c >> 16) & 0xFF] ^ t[3][c >> 24];
  }
};

constexpr size_t kLongBlock = 2048;  // per stream: 6 KiB per round (snapshots, big entries)
constexpr size_t kShortBlock = 128;  // per stream: 384 bytes per round (typical records)

__attribute__((target("sse4.2"))) uint64_t crc3(uint64_t c0, const unsigned char*& p, size_t& n,
                                                size_t block, const ZeroShift& shift) {
  while (n >= 3 * block) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < block; i += 8) {
      c0 = _mm_crc32_u64(c0, load_le64(p + i));
      c1 = _mm_crc32_u64(c1, load_le64(p + block + i));
      c2 = _mm_crc32_u64(c2, load_le64(p + 2 * block + i));
    }
    c0 = shift(static_cast<uint32_t>(c0)) ^ c1;
    c0 = shift(static_cast<uint32_t>(c0)) ^ c2;
    p += 3 * block;
    n -= 3 * block;
  }
  return c0;
}

}  // namespace

__attribute__((target("sse4.2"))) uint32_t crc32c_hardware(uint32_t crc, const void* data,
                                                            size_t n) {
  static const ZeroShift long_shift(kLongBlock), short_shift(kShortBlock);
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t c = ~crc;
  c = crc3(c, p, n, kLongBlock, long_shift);
  c = crc3(c, p, n, kShortBlock, short_shift);
  while (n >= 8) {
    c = _mm_crc32_u64(c, load_le64(p));
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}
#else
bool crc32c_hardware_available() { return false; }
uint32_t crc32c_hardware(uint32_t crc, const void* data, size_t n) {
  return crc32c_software(crc, data, n);
}
#endif

}  // namespace detail

uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n) {
  if (detail::crc32c_hardware_available()) return detail::crc32c_hardware(crc, data, n);
  return detail::crc32c_software(crc, data, n);
}

}  // namespace balsa
