#include "histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace balsa::bench {
namespace {

TEST(Histogram, BucketsAreContiguousAndTight) {
  // Every value lands in a bucket whose bounds hold it, bucket bounds tile the line with no
  // gap, and a bucket is never wider than 1/128 of its lower bound above the exact range.
  for (size_t i = 1; i < Histogram::index_of(Histogram::kMaxValue); ++i) {
    ASSERT_EQ(Histogram::lowest_in(i), Histogram::highest_in(i - 1) + 1) << i;
    const uint64_t lo = Histogram::lowest_in(i), hi = Histogram::highest_in(i);
    ASSERT_LE(hi - lo, std::max<uint64_t>(lo / 128, 0)) << i;
  }
  std::mt19937_64 rng(7);
  for (int k = 0; k < 100000; ++k) {
    const uint64_t v = rng() >> (rng() % 64);
    if (v > Histogram::kMaxValue) continue;
    const size_t i = Histogram::index_of(v);
    ASSERT_LE(Histogram::lowest_in(i), v);
    ASSERT_GE(Histogram::highest_in(i), v);
  }
}

TEST(Histogram, QuantilesMatchASortedSample) {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> d(12.0, 1.5);  // ~160 us median, long tail
  std::vector<uint64_t> vals;
  Histogram h;
  for (int k = 0; k < 200000; ++k) {
    const auto v = static_cast<uint64_t>(d(rng));
    vals.push_back(v);
    h.record(v);
  }
  std::sort(vals.begin(), vals.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const uint64_t exact = vals[static_cast<size_t>(std::ceil(q * static_cast<double>(vals.size()))) - 1];
    const uint64_t got = h.quantile(q);
    EXPECT_GE(got, exact) << q;
    EXPECT_LE(static_cast<double>(got), static_cast<double>(exact) * 1.01) << q;
  }
  EXPECT_EQ(h.max(), vals.back());
  EXPECT_EQ(h.min(), vals.front());
  EXPECT_EQ(h.quantile(1.0), vals.back());
  EXPECT_EQ(h.count(), vals.size());
}

TEST(Histogram, MergeAddsAndEmptyIsZero) {
  Histogram a, b, empty;
  EXPECT_EQ(empty.quantile(0.5), 0u);
  EXPECT_EQ(empty.max(), 0u);
  EXPECT_EQ(empty.min(), 0u);
  for (uint64_t v = 1; v <= 1000; ++v) (v % 2 ? a : b).record(v * 1000);
  a.merge(b);
  EXPECT_EQ(a.count(), 1000u);
  EXPECT_EQ(a.min(), 1000u);
  EXPECT_EQ(a.max(), 1000000u);
  EXPECT_NEAR(static_cast<double>(a.quantile(0.5)), 500000.0, 500000.0 / 128);
  a.record(Histogram::kMaxValue + 12345);  // clamped, not lost
  EXPECT_EQ(a.count(), 1001u);
  EXPECT_EQ(a.max(), Histogram::kMaxValue);
}

}  // namespace
}  // namespace balsa::bench
