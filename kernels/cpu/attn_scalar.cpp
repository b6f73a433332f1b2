// The scalar reference of the attention kernels: plain loops in the order the math is written. Also the Q^T pair
// packing of qk_qpacked (pack_qt_pairs), which callers run on any CPU.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/attn_kernels.h"
#include "cpu/softmax_row.h"
#include "util/numeric.h"

namespace afd::cpu {

namespace {

// The element accessor of a row-major matrix: (r, c) -> x[r * stride + c].
auto row_major(const uint16_t* x, int stride) {
  return [=](int r, int c) { return x[static_cast<int64_t>(r) * stride + c]; };
}

// S[i][t] = sum_d Q(i, d) * K(t, d) and O[i][c] += sum_t P[i][t] * V(t, c), in that order, for Q / K / V given as
// element accessors (the row and pair layouts differ only there).
template <typename QAt, typename KAt>
void qk_ref(float* s0, int s_stride, int nq, int nt, int dim, QAt q_at, KAt k_at) {
  for (int i = 0; i < nq; ++i) {
    for (int t = 0; t < nt; ++t) {
      float s = 0.0f;
      for (int d = 0; d < dim; ++d) s += bf16_to_f32(q_at(i, d)) * bf16_to_f32(k_at(t, d));
      s0[static_cast<int64_t>(i) * s_stride + t] = s;
    }
  }
}

template <typename VAt>
void pv_ref(const uint16_t* p0, int p_stride, float* o0, int o_stride, int nq, int nt, int dv, VAt v_at) {
  for (int i = 0; i < nq; ++i) {
    float* o = o0 + static_cast<int64_t>(i) * o_stride;
    const uint16_t* pr = p0 + static_cast<int64_t>(i) * p_stride;
    for (int t = 0; t < nt; ++t) {
      const float w = bf16_to_f32(pr[t]);
      for (int c = 0; c < dv; ++c) o[c] += w * bf16_to_f32(v_at(t, c));
    }
  }
}

}  // namespace

void qk_bf16_scalar(const QkParams& p) {
  qk_ref(p.s, p.s_stride, p.nq, p.nt, p.d, row_major(p.q, p.q_stride), row_major(p.k, p.k_stride));
}

void pv_bf16_scalar(const PvParams& p) {
  pv_ref(p.p, p.p_stride, p.o, p.o_stride, p.nq, p.nt, p.dv, row_major(p.v, p.v_stride));
}

// Pair layouts as written in attn_kernels.h: K[t][c] = kp[2 ((c / 2) * kp_stride + t) + c % 2],
// V[t][c] = vp[2 ((t / 2) * vp_stride + c) + t % 2].
void qk_kpacked_scalar(const QkPackedParams& p) {
  qk_ref(p.s, p.s_stride, p.nq, p.nt, p.d, row_major(p.q, p.q_stride),
         [&](int t, int d) { return p.kp[2 * (static_cast<int64_t>(d / 2) * p.kp_stride + t) + d % 2]; });
}

void pv_vpacked_scalar(const PvPackedParams& p) {
  pv_ref(p.p, p.p_stride, p.o, p.o_stride, p.nq, p.nt, p.dv,
         [&](int t, int c) { return p.vp[2 * (static_cast<int64_t>(t / 2) * p.vp_stride + c) + t % 2]; });
}

// Q[i][c] = qt[(c / 2) * qt_stride + i], low half for even c, high half for odd c (the Q rows are not read).
void qk_qpacked_scalar(const QkQPackedParams& p) {
  const uint16_t* qt = reinterpret_cast<const uint16_t*>(p.qt);
  qk_ref(
      p.s, p.s_stride, p.nq, p.nt, p.d,
      [&](int i, int d) { return qt[2 * (static_cast<int64_t>(d / 2) * p.qt_stride + i) + d % 2]; },
      row_major(p.k, p.k_stride));
}

void pack_qt_pairs(const uint16_t* q, int q_stride, int nq, int d, uint32_t* qt) {
  const int rows = qt_pair_rows(d), cols = qt_cols(nq);
  for (int j = 0; j < rows; ++j) {
    for (int i = 0; i < cols; ++i) {
      uint32_t pair = 0;  // little-endian, as the pair layouts: Q[i][2j] in the low half
      if (i < nq) {
        const uint16_t* r = q + static_cast<int64_t>(i) * q_stride;
        if (2 * j < d) pair = r[2 * j];
        if (2 * j + 1 < d) pair |= static_cast<uint32_t>(r[2 * j + 1]) << 16;
      }
      qt[static_cast<int64_t>(j) * cols + i] = pair;
    }
  }
}

void pack_v_scalar(const uint16_t* v, int v_stride, int nt, int dv, uint32_t* vp, int c16) {
  for (int j = 0; j < (nt + 1) / 2; ++j) {
    const uint16_t* v0 = v + static_cast<int64_t>(2 * j) * v_stride;
    for (int c = 0; c < c16; ++c) {
      uint32_t pair = 0;
      if (c < dv) {
        pair = v0[c];
        if (2 * j + 1 < nt) pair |= static_cast<uint32_t>(v0[v_stride + c]) << 16;
      }
      vp[static_cast<int64_t>(j) * c16 + c] = pair;
    }
  }
}

void softmax_f32_scalar(const SoftmaxParams& p) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < p.nq; ++i) {
    float* s = p.s + static_cast<int64_t>(i) * p.s_stride;
    uint16_t* pr = p.p + static_cast<int64_t>(i) * p.p_stride;
    int lo, hi;
    softmax_row_range(p, i, lo, hi);
    float bmax = kNegInf;
    for (int t = lo; t < hi; ++t) bmax = std::max(bmax, s[t] * p.scale);
    if (bmax == kNegInf) {  // nothing visible in this block
      softmax_row_skip(p, i);
      continue;
    }
    const float m_new = softmax_row_max(p, i, bmax);
    float sum = 0.0f;
    for (int t = 0; t < p.nt; ++t) {
      const uint16_t e = t >= lo && t < hi ? f32_to_bf16(std::exp(s[t] * p.scale - m_new)) : uint16_t{0};
      pr[t] = e;
      sum += bf16_to_f32(e);
    }
    softmax_row_end(p, i, m_new, sum);
  }
}

}  // namespace afd::cpu
