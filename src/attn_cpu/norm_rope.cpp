#include "attn_cpu/norm_rope.h"

#include <cmath>

#include "util/error.h"
#include "util/numeric.h"

namespace afd::attn {

void rmsnorm_bf16(const uint16_t* x, const uint16_t* w, int dim, float eps, uint16_t* y) {
  float ss = 0.0f;
  for (int i = 0; i < dim; ++i) {
    const float v = bf16_to_f32(x[i]);
    ss += v * v;
  }
  const float r = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
  for (int i = 0; i < dim; ++i) y[i] = f32_to_bf16(bf16_to_f32(w[i]) * round_bf16(bf16_to_f32(x[i]) * r));
}

void to_bf16(const float* x, int64_t n, uint16_t* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(x[i]);
}

void rope_angles(const RopeTable& t, int pos, int rope_dim, RopeAngles& a) {
  AFD_CHECK(rope_dim / 2 <= 512, "rope dim ", rope_dim);
  for (int i = 0; i < rope_dim / 2; ++i) {
    const float angle = static_cast<float>(pos) * t.inv_freq[i];
    a.cos[i] = std::cos(angle) * t.attention_scaling;
    a.sin[i] = std::sin(angle) * t.attention_scaling;
  }
}

void rope_apply_bf16(RopeLayout layout, const RopeAngles& a, uint16_t* x, int rope_dim) {
  const int half = rope_dim / 2;
  float in[1024];
  for (int i = 0; i < rope_dim; ++i) in[i] = bf16_to_f32(x[i]);
  for (int i = 0; i < half; ++i) {
    switch (layout) {
      case RopeLayout::kRotateHalf: {
        const float c = round_bf16(a.cos[i]), s = round_bf16(a.sin[i]);
        const float lo = in[i], hi = in[i + half];
        x[i] = f32_to_bf16(round_bf16(lo * c) - round_bf16(hi * s));
        x[i + half] = f32_to_bf16(round_bf16(hi * c) + round_bf16(lo * s));
        break;
      }
      case RopeLayout::kInterleavedOut: {
        const float c = round_bf16(a.cos[i]), s = round_bf16(a.sin[i]);
        const float ev = in[2 * i], od = in[2 * i + 1];
        x[i] = f32_to_bf16(round_bf16(ev * c) - round_bf16(od * s));
        x[half + i] = f32_to_bf16(round_bf16(od * c) + round_bf16(ev * s));
        break;
      }
      case RopeLayout::kComplex: {
        const float c = a.cos[i], s = a.sin[i];
        const float ev = in[2 * i], od = in[2 * i + 1];
        x[2 * i] = f32_to_bf16(ev * c - od * s);
        x[2 * i + 1] = f32_to_bf16(ev * s + od * c);
        break;
      }
    }
  }
}

}  // namespace afd::attn
