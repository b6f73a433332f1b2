// Token sampling on the host: greedy (temperature 0; ties to the lower id), or temperature with optional top-k and
// top-p, drawn from a per-request generator seeded by the request so that a run is reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace afd {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = all
  float top_p = 1.0f;        // 1 = all
  uint64_t seed = 0;
};

// Validates the parameters; throws a sentence naming the bad one.
void validate(const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  int32_t sample(const float* logits, int vocab);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;
  std::vector<float> probs_;
};

int32_t argmax(const float* v, int n);

}  // namespace afd
