// The element-wise steps of the attention half with transformers' bf16 rounding points (MODEL_SPEC 1 and 7):
// RMSNorm and the three RoPE layouts. Inputs and outputs are bf16 bits; statistics and rotations in fp32.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/rope.h"

namespace afd::attn {

// y = bf16(w * bf16(x * rsqrt(mean(x^2) + eps))) over dim values. y may alias x.
void rmsnorm_bf16(const uint16_t* x, const uint16_t* w, int dim, float eps, uint16_t* y);

// Rounds n f32 values to bf16 bits.
void to_bf16(const float* x, int64_t n, uint16_t* y);

// cos/sin of one position for a RoPE table; `cos`/`sin` hold rope_dim / 2 values each.
struct RopeAngles {
  float cos[512];
  float sin[512];
};
void rope_angles(const RopeTable& t, int pos, int rope_dim, RopeAngles& a);

// Rotates one head vector x [rope_dim] (bf16, in place) with the angles of its position:
//   kRotateHalf / kInterleavedOut: bf16 cos/sin, each product rounded to bf16, then the sum (transformers' bf16 ops);
//   kComplex: fp32 cos/sin and fp32 math, rounded once (transformers DeepSeek-V2).
void rope_apply_bf16(RopeLayout layout, const RopeAngles& a, uint16_t* x, int rope_dim);

}  // namespace afd::attn
