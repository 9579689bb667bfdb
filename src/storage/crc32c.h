// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every WAL record and
// snapshot. Chosen over CRC32 because x86 computes it in hardware (SSE4.2) and it detects more
// error patterns at the record sizes we use. A software slicing-by-8 path covers other CPUs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace balsa {

// Extends `crc` (the CRC32C of some prefix) with `n` more bytes. crc32c_extend(0, ...) starts
// a new checksum.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t n);

inline uint32_t crc32c(std::string_view s) { return crc32c_extend(0, s.data(), s.size()); }

namespace detail {
// Exposed so tests can check the software path against the hardware one.
uint32_t crc32c_software(uint32_t crc, const void* data, size_t n);
bool crc32c_hardware_available();
uint32_t crc32c_hardware(uint32_t crc, const void* data, size_t n);
}  // namespace detail

}  // namespace balsa
