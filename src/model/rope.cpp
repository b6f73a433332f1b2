#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "util/error.h"

namespace afd {

double yarn_get_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

namespace {
// Inverse dimension formula: the dimension index at which `rotations` full turns fit in `max_pos` positions.
double yarn_correction_dim(double rotations, int dim, double base, int max_pos) {
  return dim * std::log(max_pos / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
}
}  // namespace

RopeTable make_rope_table(const RopeConfig& rope, int dim) {
  AFD_CHECK(dim > 0 && dim % 2 == 0);
  const int half = dim / 2;
  RopeTable t;
  t.inv_freq.resize(half);
  // pos_freqs[i] = base^(2i/d), computed in fp32 as transformers does.
  std::vector<float> pos_freqs(half);
  for (int i = 0; i < half; ++i)
    pos_freqs[i] = std::pow(static_cast<float>(rope.theta), static_cast<float>(2 * i) / static_cast<float>(dim));
  if (rope.type == "yarn") {
    double low = yarn_correction_dim(rope.beta_fast, dim, rope.theta, rope.original_max_position);
    double high = yarn_correction_dim(rope.beta_slow, dim, rope.theta, rope.original_max_position);
    if (rope.truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) high += 0.001;
    const float factor = static_cast<float>(rope.factor);
    for (int i = 0; i < half; ++i) {
      const float ramp = std::clamp(static_cast<float>((i - low) / (high - low)), 0.0f, 1.0f);
      const float extrapolation = 1.0f - ramp;
      const float interp = 1.0f / (factor * pos_freqs[i]);
      const float extrap = 1.0f / pos_freqs[i];
      t.inv_freq[i] = interp * (1.0f - extrapolation) + extrap * extrapolation;
    }
    double af = rope.attention_factor;
    if (af == 0.0) {
      if (rope.mscale != 0.0 && rope.mscale_all_dim != 0.0)
        af = yarn_get_mscale(rope.factor, rope.mscale) / yarn_get_mscale(rope.factor, rope.mscale_all_dim);
      else
        af = yarn_get_mscale(rope.factor, 1.0);
    }
    t.attention_scaling = static_cast<float>(af);
  } else {
    const float div = rope.type == "linear" ? static_cast<float>(rope.factor) : 1.0f;
    for (int i = 0; i < half; ++i) t.inv_freq[i] = 1.0f / pos_freqs[i] / div;
  }
  return t;
}

void apply_rope_f32(RopeLayout layout, const RopeTable& t, int pos, float* x, int dim) {
  const int half = dim / 2;
  float tmp[1024];
  AFD_CHECK(dim <= 1024, "rope dim ", dim);
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * t.inv_freq[i];
    const float c = std::cos(angle) * t.attention_scaling;
    const float s = std::sin(angle) * t.attention_scaling;
    switch (layout) {
      case RopeLayout::kRotateHalf: {
        const float a = x[i], b = x[i + half];
        tmp[i] = a * c - b * s;
        tmp[i + half] = b * c + a * s;
        break;
      }
      case RopeLayout::kInterleavedOut: {
        const float a = x[2 * i], b = x[2 * i + 1];
        tmp[i] = a * c - b * s;
        tmp[half + i] = b * c + a * s;
        break;
      }
      case RopeLayout::kComplex: {
        const float a = x[2 * i], b = x[2 * i + 1];
        tmp[2 * i] = a * c - b * s;
        tmp[2 * i + 1] = a * s + b * c;
        break;
      }
    }
  }
  std::copy(tmp, tmp + dim, x);
}

}  // namespace afd
