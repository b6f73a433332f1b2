// Synthetic models: random weights of a preset's real shapes (optionally fewer layers), so real-size runs need no
// download. Values: std 1/sqrt(fan_in) uniform (as the fixtures were drawn), norms around 1, router correction bias
// small, reproducible from the seed. Not meant to produce sensible text: for timing and memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "model/weights.h"

namespace afd {

struct SyntheticSpec {
  std::string preset;  // presets.h
  int layers = 0;      // 0 = all of the preset
  uint64_t seed = 1;
};

// The preset's config with num_hidden_layers = layers (first_k_dense_replace kept).
ModelConfig synthetic_config(const SyntheticSpec& s);

// Generates the parts asked for. Throws afd::Error, before allocating, when they would not fit in host memory.
// opt.keep_fp8_experts: an fp8 preset's routed experts are generated as kept fp8 (random e4m3 + block scales).
std::shared_ptr<const Bf16Weights> make_synthetic_weights(const SyntheticSpec& s, unsigned parts, bool show_progress,
                                                           const LoadOptions& opt = {});

}  // namespace afd
