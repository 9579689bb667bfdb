#include "storage/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace balsa {
namespace {

TEST(Crc32c, StandardVectors) {
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c("a"), 0xC1D04330u);
  // RFC 3720 (iSCSI) B.4 test patterns.
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string inc, dec;
  for (int i = 0; i < 32; ++i) {
    inc.push_back(static_cast<char>(i));
    dec.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(crc32c(inc), 0x46DD794Eu);
  EXPECT_EQ(crc32c(dec), 0x113FDB5Cu);
}

TEST(Crc32c, ExtendEqualsWhole) {
  const std::string s = "The quick brown fox jumps over the lazy dog";
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    const uint32_t a = crc32c_extend(0, s.data(), cut);
    EXPECT_EQ(crc32c_extend(a, s.data() + cut, s.size() - cut), crc32c(s)) << cut;
  }
}

TEST(Crc32c, SoftwareMatchesHardwareOnAllLengthsAndAlignments) {
  std::mt19937_64 rng(7);
  std::string buf(20000 + 16, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  // Around the three-stream round sizes of the hardware path (384 and 6144 bytes) too.
  for (size_t len : {0u, 1u, 7u, 8u, 9u, 15u, 63u, 64u, 383u, 384u, 385u, 767u, 768u, 1000u,
                     1040u, 4096u, 6143u, 6144u, 6145u, 6528u, 12288u, 20000u}) {
    for (size_t align = 0; align < 8; ++align) {
      const uint32_t sw = detail::crc32c_software(0, buf.data() + align, len);
      EXPECT_EQ(sw, crc32c_extend(0, buf.data() + align, len));
      if (detail::crc32c_hardware_available()) {
        EXPECT_EQ(sw, detail::crc32c_hardware(0, buf.data() + align, len));
      }
    }
  }
  EXPECT_EQ(detail::crc32c_software(0, "123456789", 9), 0xE3069283u);
}

}  // namespace
}  // namespace balsa
