// The per-row bookkeeping of one online-softmax step (SoftmaxParams in attn_kernels.h), shared by every ISA's
// softmax so that m, l and alpha follow one rule and agree bit for bit across ISAs: the visible range clamped to
// the block, m_new = max(m, block max), alpha = e^(m - m_new) only when a finite m moved (else exactly 1), and
// l = l alpha + sum of the rounded p. Include only from the per-ISA files (internal linkage, for the reason
// attn_buffer.h gives).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/attn_kernels.h"

namespace afd::cpu {
namespace {

// Row i's visible positions in block coordinates, clamped to [0, nt): [lo, hi), empty when lo >= hi.
inline void softmax_row_range(const SoftmaxParams& p, int i, int& lo, int& hi) {
  lo = std::max(p.lo[i], 0);
  hi = std::min(p.hi[i], p.nt);
}

// Nothing of row i is visible in this block: its p row is zero and its state stays (alpha = 1).
inline void softmax_row_skip(const SoftmaxParams& p, int i) {
  p.alpha[i] = 1.0f;
  std::fill_n(p.p + static_cast<int64_t>(i) * p.p_stride, p.nt, uint16_t{0});
}

// The row loop of the vector softmaxes: row(i, lo, hi, s, p) for every row with visible positions [lo, hi) in this
// block, s and p its score and probability rows; the other rows are skipped (softmax_row_skip).
template <class Row>
inline void for_each_visible_row(const SoftmaxParams& p, Row&& row) {
  for (int i = 0; i < p.nq; ++i) {
    int lo, hi;
    softmax_row_range(p, i, lo, hi);
    if (lo >= hi) {
      softmax_row_skip(p, i);
      continue;
    }
    row(i, lo, hi, p.s + static_cast<int64_t>(i) * p.s_stride, p.p + static_cast<int64_t>(i) * p.p_stride);
  }
}

// Row i's new running max given this block's (scaled) max; sets alpha[i]. Returns m_new.
inline float softmax_row_max(const SoftmaxParams& p, int i, float block_max) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const float m_new = std::max(p.m[i], block_max);
  p.alpha[i] = p.m[i] != kNegInf && m_new != p.m[i] ? std::exp(p.m[i] - m_new) : 1.0f;
  return m_new;
}

// Row i's state after the block: l rescaled and added to, m moved.
inline void softmax_row_end(const SoftmaxParams& p, int i, float m_new, float sum) {
  p.l[i] = p.l[i] * p.alpha[i] + sum;
  p.m[i] = m_new;
}

}  // namespace
}  // namespace afd::cpu
