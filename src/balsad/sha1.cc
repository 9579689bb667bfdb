#include "balsad/sha1.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace balsa::balsad {

std::array<uint8_t, 20> sha1(std::string_view data) {
  std::array<uint8_t, 20> out{};
  unsigned int len = 0;
  // OpenSSL's one-shot digest (libcrypto, already linked by gRPC).
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha1(), nullptr) != 1 || len != out.size())
    throw std::runtime_error("EVP_Digest(SHA-1) failed");
  return out;
}

uint64_t sha1_prefix64(std::string_view data) {
  const auto h = sha1(data);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | h[static_cast<size_t>(i)];
  return v;
}

}  // namespace balsa::balsad
