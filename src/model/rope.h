// Rotary position embedding: frequencies (default, linear, YaRN as transformers' modeling_rope_utils computes
// them) and the three ways of applying them (MODEL_SPEC.md section 1).
#pragma once

#include <vector>

#include "model/config.h"

namespace afd {

// g(s, m) of YaRN: 1 if s <= 1 else 0.1 * m * ln(s) + 1.
double yarn_get_mscale(double scale, double mscale);

struct RopeTable {
  std::vector<float> inv_freq;  // [rope_dim / 2]
  float attention_scaling = 1.0f;  // multiplies cos and sin
};

RopeTable make_rope_table(const RopeConfig& rope, int rope_dim);

// Rotates one head vector `x` [dim] in place for position `pos` (float32 math).
void apply_rope_f32(RopeLayout layout, const RopeTable& t, int pos, float* x, int dim);

}  // namespace afd
