#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace balsa::bench {

namespace {
constexpr uint64_t kHalf = uint64_t{1} << (Histogram::kSubBits - 1);
}

// For v < 2^kSubBits the index is v. Otherwise, with e = bit_width(v) - kSubBits (so v >> e is in
// [2^(kSubBits-1), 2^kSubBits)), the index is e * 2^(kSubBits-1) + (v >> e): contiguous, monotonic.
size_t Histogram::index_of(uint64_t v) {
  const int width = std::bit_width(v);
  if (width <= kSubBits) return static_cast<size_t>(v);
  const int e = width - kSubBits;
  return static_cast<size_t>(static_cast<uint64_t>(e) * kHalf + (v >> e));
}

uint64_t Histogram::lowest_in(size_t index) {
  if (index < (uint64_t{1} << kSubBits)) return index;
  const uint64_t e = index / kHalf - 1;
  const uint64_t m = index - e * kHalf;
  return m << e;
}

uint64_t Histogram::highest_in(size_t index) {
  if (index < (uint64_t{1} << kSubBits)) return index;
  const uint64_t e = index / kHalf - 1;
  const uint64_t m = index - e * kHalf;
  return ((m + 1) << e) - 1;
}

Histogram::Histogram() : counts_(index_of(kMaxValue) + 1, 0) {}

void Histogram::record(uint64_t v) {
  v = std::min(v, kMaxValue);
  ++counts_[index_of(v)];
  ++count_;
  sum_ += v;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

void Histogram::merge(const Histogram& o) {
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

uint64_t Histogram::quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highest_in(i), max_);
  }
  return max_;
}

}  // namespace balsa::bench
