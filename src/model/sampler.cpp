#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "util/error.h"
#include "util/numeric.h"

namespace afd {

void validate(const SamplingParams& p) {
  AFD_REQUIRE(std::isfinite(p.temperature) && p.temperature >= 0.0f, "temperature ", p.temperature,
              " must be a finite number >= 0");
  AFD_REQUIRE(p.top_k >= 0, "top_k ", p.top_k, " must be >= 0");
  AFD_REQUIRE(p.top_p > 0.0f && p.top_p <= 1.0f, "top_p ", p.top_p, " must be in (0, 1]");
}

// The first index of the largest value (0 when v[0] is NaN or nothing exceeds v[0]; NaN never wins). Eight
// independent running maxima (lane j sees indices = j mod 8) so the loop is not one long compare chain; merged by
// value, then lowest index.
int32_t argmax(const float* v, int n) {
  constexpr int kLanes = 8;
  if (n <= 0 || v[0] != v[0]) return 0;
  float bv[kLanes];
  int32_t bi[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    bv[j] = -std::numeric_limits<float>::infinity();
    bi[j] = -1;
  }
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j)
      if (v[i + j] > bv[j]) {
        bv[j] = v[i + j];
        bi[j] = i + j;
      }
  for (; i < n; ++i)
    if (v[i] > bv[i % kLanes]) {
      bv[i % kLanes] = v[i];
      bi[i % kLanes] = i;
    }
  int32_t best = 0;  // v[0] stands unless something is larger (v[0] = -inf: nothing is)
  for (int j = 0; j < kLanes; ++j)
    if (bi[j] >= 0 && (bv[j] > v[best] || (bv[j] == v[best] && bi[j] < best))) best = bi[j];
  return best;
}

Sampler::Sampler(const SamplingParams& p) : p_(p) { validate(p); }


int32_t sample_token(const float* logits, int vocab, const SamplingParams& p, uint64_t step) {
  if (p.temperature == 0.0f) return argmax(logits, vocab);
  thread_local std::vector<int32_t> order;
  thread_local std::vector<float> probs;
  order.resize(vocab);
  std::iota(order.begin(), order.end(), 0);
  const int k = p.top_k > 0 ? std::min(p.top_k, vocab) : vocab;
  auto higher = [logits](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), higher);
  probs.resize(k);
  const float mx = logits[order[0]];
  double sum = 0;
  for (int i = 0; i < k; ++i) sum += (probs[i] = std::exp((logits[order[i]] - mx) / p.temperature));
  // top-p: the smallest prefix (in descending probability) whose mass reaches top_p.
  int keep = k;
  if (p.top_p < 1.0f) {
    double acc = 0;
    for (int i = 0; i < k; ++i) {
      acc += probs[i] / sum;
      if (acc >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double mass = 0;
  for (int i = 0; i < keep; ++i) mass += probs[i];
  // A uniform draw in [0, mass) from 53 random bits of splitmix64(seed, step).
  const uint64_t bits = splitmix64(splitmix64(p.seed) ^ step);
  const double r = static_cast<double>(bits >> 11) * 0x1.0p-53 * mass;
  double acc = 0;
  for (int i = 0; i < keep; ++i) {
    acc += probs[i];
    if (r < acc) return order[i];
  }
  return order[keep - 1];
}

}  // namespace afd
