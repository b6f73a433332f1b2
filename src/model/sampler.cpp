#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/error.h"

namespace afd {

void validate(const SamplingParams& p) {
  AFD_REQUIRE(std::isfinite(p.temperature) && p.temperature >= 0.0f, "temperature ", p.temperature,
              " must be a finite number >= 0");
  AFD_REQUIRE(p.top_k >= 0, "top_k ", p.top_k, " must be >= 0");
  AFD_REQUIRE(p.top_p > 0.0f && p.top_p <= 1.0f, "top_p ", p.top_p, " must be in (0, 1]");
}

int32_t argmax(const float* v, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) { validate(p); }

int32_t Sampler::sample(const float* logits, int vocab) {
  if (p_.temperature == 0.0f) return argmax(logits, vocab);
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  const int k = p_.top_k > 0 ? std::min(p_.top_k, vocab) : vocab;
  auto higher = [logits](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), higher);
  probs_.resize(k);
  const float mx = logits[order_[0]];
  double sum = 0;
  for (int i = 0; i < k; ++i) sum += (probs_[i] = std::exp((logits[order_[i]] - mx) / p_.temperature));
  // top-p: the smallest prefix (in descending probability) whose mass reaches top_p.
  int keep = k;
  if (p_.top_p < 1.0f) {
    double acc = 0;
    for (int i = 0; i < k; ++i) {
      acc += probs_[i] / sum;
      if (acc >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double mass = 0;
  for (int i = 0; i < keep; ++i) mass += probs_[i];
  const double r = std::uniform_real_distribution<double>(0.0, mass)(rng_);
  double acc = 0;
  for (int i = 0; i < keep; ++i) {
    acc += probs_[i];
    if (r < acc) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace afd
