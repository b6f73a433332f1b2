// argmax (greedy sampling) against the plain first-maximum loop: ties, NaN, infinities and every length around the
// 8-lane blocking.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "model/sampler.h"

using namespace afd;

namespace {
int32_t first_max(const std::vector<float>& v) {
  int32_t best = 0;
  for (int i = 1; i < static_cast<int>(v.size()); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}
}  // namespace

TEST_CASE("argmax returns the first index of the largest value", "[sampler]") {
  std::mt19937 rng(7);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (int n = 1; n <= 70; ++n) {
    for (int trial = 0; trial < 40; ++trial) {
      std::vector<float> v(n);
      // Few distinct values, so ties are common; some NaN and infinities.
      for (float& x : v) x = static_cast<float>(static_cast<int>(rng() % 7) - 3) * 0.5f;
      if (trial % 4 == 1) v[rng() % n] = nan;
      if (trial % 4 == 2) v[rng() % n] = -inf;
      if (trial % 8 == 3) v[rng() % n] = inf;
      if (trial % 8 == 5) v[0] = nan;
      if (trial % 10 == 7) std::fill(v.begin(), v.end(), -inf);
      INFO("n " << n << " trial " << trial);
      CHECK(argmax(v.data(), n) == first_max(v));
    }
  }
  std::vector<float> big(4099);
  for (float& x : big) x = std::uniform_real_distribution<float>(-5, 5)(rng);
  big[4098] = 9;
  big[4097] = 9;
  CHECK(argmax(big.data(), 4099) == 4097);
}
