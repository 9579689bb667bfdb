#include "keys.h"

#include <cmath>

namespace balsa::bench {

namespace {
double zeta(uint64_t n, double theta) {
  double s = 0;
  for (uint64_t i = 1; i <= n; ++i) s += 1.0 / std::pow(static_cast<double>(i), theta);
  return s;
}
}  // namespace

Zipf::Zipf(uint64_t n, double theta) : n_(n < 1 ? 1 : n), theta_(theta) {
  zetan_ = zeta(n_, theta_);
  const double zeta2 = zeta(2, theta_);
  alpha_ = 1.0 / (1.0 - theta_);
  eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n_), 1.0 - theta_)) / (1.0 - zeta2 / zetan_);
  half_pow_theta_ = 1.0 + std::pow(0.5, theta_);
}

uint64_t Zipf::next(std::mt19937_64& rng) const {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  const double uz = u * zetan_;
  if (uz < 1.0) return 0;
  if (uz < half_pow_theta_) return n_ > 1 ? 1 : 0;
  const auto r = static_cast<uint64_t>(static_cast<double>(n_) * std::pow(eta_ * u - eta_ + 1.0, alpha_));
  return r >= n_ ? n_ - 1 : r;
}

KeyGen::KeyGen(std::string prefix, size_t key_size, uint64_t key_space, Distribution dist, double zipf_theta,
               uint64_t seed)
    : prefix_(std::move(prefix)),
      key_size_(key_size),
      key_space_(key_space < 1 ? 1 : key_space),
      dist_(dist),
      rng_(seed),
      // The O(n) zeta sum only when it is used.
      zipf_(dist == Distribution::kZipf ? key_space_ : 2, zipf_theta) {
  const size_t digits = std::to_string(key_space_ - 1).size();
  ok_ = prefix_.size() + digits <= key_size_;
}

uint64_t KeyGen::next_index() {
  switch (dist_) {
    case Distribution::kUniform: return std::uniform_int_distribution<uint64_t>(0, key_space_ - 1)(rng_);
    case Distribution::kSequential: return seq_++ % key_space_;
    case Distribution::kZipf: {
      // Scatter ranks over the key space with a fixed multiplicative hash, so the hot keys
      // are not neighbours (two ranks may share a key; the skew stays).
      const uint64_t rank = zipf_.next(rng_);
      return (rank * 0x9E3779B97F4A7C15ULL) % key_space_;
    }
  }
  return 0;
}

void KeyGen::format(uint64_t i, std::string* out) const {
  out->assign(prefix_);
  const std::string digits = std::to_string(i);
  out->append(key_size_ - prefix_.size() - digits.size(), '0');
  out->append(digits);
}

std::string KeyGen::prefix_end() const {
  std::string end = prefix_;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

}  // namespace balsa::bench
