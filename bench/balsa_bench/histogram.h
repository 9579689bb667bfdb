// A log-linear latency histogram (the HdrHistogram layout, reduced to what a load generator
// needs; Debian ships no C/C++ HdrHistogram).
//
// Values are nanoseconds. Below 2^kSubBits every value has its own bucket; above, each power of
// two [2^k, 2^(k+1)) is split into 2^(kSubBits-1) equal buckets, so a recorded value is known to
// within 1 part in 2^(kSubBits-1) (0.8 % with kSubBits = 8) from 1 ns to ~9 hours, in ~5 K
// counters. Quantiles report the bucket's upper bound (never below the true value); max and min
// are exact. One histogram per thread, merged at the end: record() takes no lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace balsa::bench {

class Histogram {
 public:
  static constexpr int kSubBits = 8;
  static constexpr uint64_t kMaxValue = (uint64_t{1} << 45) - 1;  // ~9.8 hours in ns

  Histogram();

  // Values above kMaxValue are clamped (and counted).
  void record(uint64_t value_ns);
  void merge(const Histogram& other);

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0; }
  // The smallest bucket upper bound with at least q of the values at or below it (q in [0, 1]);
  // capped at max(). 0 when empty.
  uint64_t quantile(double q) const;

  // Bucket layout, exposed for tests.
  static size_t index_of(uint64_t value);
  static uint64_t lowest_in(size_t index);
  static uint64_t highest_in(size_t index);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace balsa::bench
