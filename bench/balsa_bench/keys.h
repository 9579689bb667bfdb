// Which key a request touches: uniform or Zipfian over a fixed key space, formatted to a fixed
// key size as <prefix><zero-padded decimal index>.
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace balsa::bench {

enum class Distribution { kUniform, kZipf, kSequential };

// Zipfian ranks in [0, n) with exponent theta (0 < theta, theta != 1), by Gray et al.'s
// "Quickly generating billion-record synthetic databases" (the YCSB generator): O(n) setup
// for zeta(n), O(1) per draw. Rank 0 is the hottest; ranks are scattered over the key space
// by a fixed multiplicative hash so hot keys are not neighbours.
class Zipf {
 public:
  Zipf(uint64_t n, double theta);
  uint64_t next(std::mt19937_64& rng) const;

 private:
  uint64_t n_;
  double theta_, alpha_, zetan_, eta_, half_pow_theta_;
};

class KeyGen {
 public:
  // Fails (returns false from ok()) when the prefix plus the digits of key_space-1 do not fit in
  // key_size.
  KeyGen(std::string prefix, size_t key_size, uint64_t key_space, Distribution dist, double zipf_theta,
         uint64_t seed);
  bool ok() const { return ok_; }
  // Next key index under the distribution (sequential: 0, 1, 2, ... wrapping).
  uint64_t next_index();
  // Formats index i into *out (reusing its buffer).
  void format(uint64_t i, std::string* out) const;
  // The range end covering every key with this prefix (etcd's prefix_end).
  std::string prefix_end() const;
  const std::string& prefix() const { return prefix_; }

 private:
  std::string prefix_;
  size_t key_size_;
  uint64_t key_space_;
  Distribution dist_;
  std::mt19937_64 rng_;
  Zipf zipf_;
  uint64_t seq_ = 0;
  bool ok_ = true;
};

}  // namespace balsa::bench
