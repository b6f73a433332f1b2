// Token sampling on the host: greedy (temperature 0; ties to the lower id), or temperature with optional top-k and
// top-p, drawn from a per-request generator seeded by the request so that a run is reproducible.
#pragma once

#include <cstdint>

namespace afd {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = all
  float top_p = 1.0f;        // 1 = all
  uint64_t seed = 0;
};

// Validates the parameters; throws a sentence naming the bad one.
void validate(const SamplingParams& p);

// One token from `logits` [vocab]. Its randomness is a pure function of (p.seed, step), so a request's tokens do not
// depend on what else runs in the same batch or on which backend computed the logits.
int32_t sample_token(const float* logits, int vocab, const SamplingParams& p, uint64_t step);

// A request's sampler: sample_token with the step counting up from 0.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  int32_t sample(const float* logits, int vocab) { return sample_token(logits, vocab, p_, step_++); }

 private:
  SamplingParams p_;
  uint64_t step_ = 0;
};

int32_t argmax(const float* v, int n);

}  // namespace afd
