#include "keys.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace balsa::bench {
namespace {

TEST(KeyGen, FixedSizeKeysUnderThePrefix) {
  KeyGen g("bb/", 16, 1000, Distribution::kUniform, 0.99, 1);
  ASSERT_TRUE(g.ok());
  std::string k;
  g.format(7, &k);
  EXPECT_EQ(k, "bb/0000000000007");
  g.format(999, &k);
  EXPECT_EQ(k.size(), 16u);
  EXPECT_LT(k, g.prefix_end());
  EXPECT_GE(k, g.prefix());
  EXPECT_EQ(g.prefix_end(), "bb0");
  EXPECT_FALSE(KeyGen("bb/", 5, 1000, Distribution::kUniform, 0.99, 1).ok());  // 3 + 3 digits > 5
  EXPECT_TRUE(KeyGen("bb/", 6, 1000, Distribution::kUniform, 0.99, 1).ok());
}

TEST(KeyGen, UniformCoversTheSpace) {
  KeyGen g("k", 8, 100, Distribution::kUniform, 0.99, 3);
  std::set<uint64_t> seen;
  for (int i = 0; i < 5000; ++i) {
    const uint64_t v = g.next_index();
    ASSERT_LT(v, 100u);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(KeyGen, ZipfIsSkewed) {
  KeyGen g("k", 12, 100000, Distribution::kZipf, 0.99, 5);
  std::map<uint64_t, int> counts;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const uint64_t v = g.next_index();
    ASSERT_LT(v, 100000u);
    ++counts[v];
  }
  int hottest = 0;
  for (const auto& [k, c] : counts) hottest = std::max(hottest, c);
  // theta 0.99 over 1e5 keys: rank 0 takes ~1/zeta(1e5) ~ 8% of draws; uniform would give 2.
  EXPECT_GT(hottest, n / 25);
  EXPECT_LT(counts.size(), 100000u / 2);
}

}  // namespace
}  // namespace balsa::bench
