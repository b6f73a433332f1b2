// The scalar reference of the attention kernels: plain loops in the order the math is written.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/attn_kernels.h"
#include "util/numeric.h"

namespace afd::cpu {

void qk_bf16_scalar(const QkParams& p) {
  for (int i = 0; i < p.nq; ++i) {
    const uint16_t* q = p.q + static_cast<int64_t>(i) * p.q_stride;
    for (int t = 0; t < p.nt; ++t) {
      const uint16_t* k = p.k + static_cast<int64_t>(t) * p.k_stride;
      float s = 0.0f;
      for (int d = 0; d < p.d; ++d) s += bf16_to_f32(q[d]) * bf16_to_f32(k[d]);
      p.s[static_cast<int64_t>(i) * p.s_stride + t] = s;
    }
  }
}

void pv_bf16_scalar(const PvParams& p) {
  for (int i = 0; i < p.nq; ++i) {
    float* o = p.o + static_cast<int64_t>(i) * p.o_stride;
    const uint16_t* pr = p.p + static_cast<int64_t>(i) * p.p_stride;
    for (int t = 0; t < p.nt; ++t) {
      const float w = bf16_to_f32(pr[t]);
      const uint16_t* v = p.v + static_cast<int64_t>(t) * p.v_stride;
      for (int c = 0; c < p.dv; ++c) o[c] += w * bf16_to_f32(v[c]);
    }
  }
}

void softmax_f32_scalar(const SoftmaxParams& p) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < p.nq; ++i) {
    float* s = p.s + static_cast<int64_t>(i) * p.s_stride;
    uint16_t* pr = p.p + static_cast<int64_t>(i) * p.p_stride;
    const int lo = std::max(p.lo[i], 0), hi = std::min(p.hi[i], p.nt);
    float bmax = kNegInf;
    for (int t = lo; t < hi; ++t) bmax = std::max(bmax, s[t] * p.scale);
    p.alpha[i] = 1.0f;
    if (bmax == kNegInf) {  // nothing visible in this block
      std::fill_n(pr, p.nt, uint16_t{0});
      continue;
    }
    const float m_new = std::max(p.m[i], bmax);
    if (p.m[i] != kNegInf && m_new != p.m[i]) p.alpha[i] = std::exp(p.m[i] - m_new);
    float sum = 0.0f;
    for (int t = 0; t < p.nt; ++t) {
      const uint16_t e = t >= lo && t < hi ? f32_to_bf16(std::exp(s[t] * p.scale - m_new)) : uint16_t{0};
      pr[t] = e;
      sum += bf16_to_f32(e);
    }
    p.l[i] = p.l[i] * p.alpha[i] + sum;
    p.m[i] = m_new;
  }
}

}  // namespace afd::cpu
