// The core's only source of randomness: a small seeded generator (SplitMix64), passed in by the
// owner so that the same seed replays the same run on every platform. std:: distributions are
// implementation-defined, so ranges are mapped here too.
#pragma once

#include <cstdint>

namespace balsa {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) for n > 0 (the modulo bias is negligible for the small n we use).
  uint64_t below(uint64_t n) { return next() % n; }
  // True with probability p (0 <= p <= 1).
  bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }

 private:
  uint64_t state_;
};

}  // namespace balsa
