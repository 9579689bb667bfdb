// SHA-1 (OpenSSL's libcrypto), only to derive member and cluster ids the way etcd does (its ids
// are the first 8 bytes of a SHA-1). Not for anything that needs a secure hash.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace balsa::balsad {

std::array<uint8_t, 20> sha1(std::string_view data);

// The first 8 bytes of sha1(data), big-endian (Go's binary.BigEndian.Uint64(hash[:8])).
uint64_t sha1_prefix64(std::string_view data);

}  // namespace balsa::balsad
