// AVX2 + FMA attention kernels (compiled with -mavx2 -mfma -mf16c; reached only when cpu_supports(kAvx2)).
// bf16 -> f32 is a 16-bit left shift; tiles of 4 query rows share each loaded K/V vector. The pair-layout kernels
// (qk_kpacked, pv_vpacked) split each loaded dword pair into its low (<< 16) and high (& 0xffff0000) bf16 as f32
// and FMA them with the broadcast q / P value of that half: 8 outputs per instruction, no horizontal sums.
// qk_qpacked is qk on the Q rows (its loops broadcast K, so Q^T in pairs would not help them).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/attn_kernels.h"
#include "cpu/exp_poly.h"
#include "cpu/softmax_row.h"
#include "cpu/attn_prefetch.h"
#include "util/numeric.h"

namespace afd::cpu {

namespace {

constexpr int kRowTile = 4;

inline __m256 load8_bf16(const uint16_t* x) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// The first n (< 8) values of x, the rest zero; never reads past x[n-1].
inline __m256 load_tail_bf16(const uint16_t* x, int n) {
  uint16_t tmp[8] = {};
  std::memcpy(tmp, x, sizeof(uint16_t) * n);
  return load8_bf16(tmp);
}

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// e^x for x <= 0 (Cephes expf: x = n ln2 + r, degree-6 polynomial in r; ~2 ulp). Inputs below -87 give ~0.
inline __m256 exp_neg(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(exp_poly::kMinArg));
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(exp_poly::kLog2e), _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(exp_poly::kLn2Hi), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(exp_poly::kLn2Lo), x);
  __m256 y = _mm256_set1_ps(exp_poly::kP5);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(exp_poly::kP4));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(exp_poly::kP3));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(exp_poly::kP2));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(exp_poly::kP1));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(exp_poly::kP0));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// Round-to-nearest-even to bf16 of 8 finite values, as 8 uint16 in order.
inline __m128i to_bf16x8(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i r = _mm256_srli_epi32(
      _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1)))), 16);
  return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}

// The low and high bf16 halves of 8 dword pairs as f32.
inline void split_pairs(__m256i x, __m256& lo, __m256& hi) {
  lo = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
  hi = _mm256_castsi256_ps(_mm256_and_si256(x, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
}

// 8 dwords at x, lanes >= n (n may be <= 0 or >= 8) zero and never read.
inline __m256i load_pairs(const uint16_t* x, int n) {
  if (n >= 8) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_maskload_epi32(reinterpret_cast<const int*>(x), m);
}

// Adds the first n (<= 8) lanes of v to o[0 .. n).
inline void add_lanes(float* o, __m256 v, int n) {
  if (n >= 8) {
    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), v));
    return;
  }
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, v);
  for (int j = 0; j < n; ++j) o[j] += tmp[j];
}

// Lanes t0 .. t0+7 that are inside [lo, hi) (all-ones) or not (zero).
inline __m256 visible(int t0, int lo, int hi) {
  const __m256i t = _mm256_add_epi32(_mm256_set1_epi32(t0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(t, _mm256_set1_epi32(lo - 1)), _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), t));
  return _mm256_castsi256_ps(in);
}

}  // namespace

void softmax_f32_avx2(const SoftmaxParams& p) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const __m256 scale = _mm256_set1_ps(p.scale), neg_inf = _mm256_set1_ps(kNegInf);
  for_each_visible_row(p, [&](int i, int lo, int hi, float* s, uint16_t* pr) {
    // Pass 1: scale in place (invisible lanes -inf) and take the block max. Lanes past nt are never loaded.
    __m256 vmax = neg_inf;
    int t = 0;
    for (; t + 8 <= p.nt; t += 8) {
      const __m256 v = _mm256_blendv_ps(neg_inf, _mm256_mul_ps(_mm256_loadu_ps(s + t), scale), visible(t, lo, hi));
      _mm256_storeu_ps(s + t, v);
      vmax = _mm256_max_ps(vmax, v);
    }
    float bmax = kNegInf;
    for (; t < p.nt; ++t) {
      s[t] = t >= lo && t < hi ? s[t] * p.scale : kNegInf;
      bmax = std::max(bmax, s[t]);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax);
    for (float v : lanes) bmax = std::max(bmax, v);
    const float m_new = softmax_row_max(p, i, bmax);
    // Pass 2: p = bf16(e^(s - m_new)) on visible lanes, 0 elsewhere; l accumulates the rounded values.
    const __m256 m = _mm256_set1_ps(m_new);
    __m256 vsum = _mm256_setzero_ps();
    for (t = 0; t + 8 <= p.nt; t += 8) {
      const __m256 e = _mm256_and_ps(exp_neg(_mm256_sub_ps(_mm256_loadu_ps(s + t), m)), visible(t, lo, hi));
      const __m128i b = to_bf16x8(e);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(pr + t), b);
      vsum = _mm256_add_ps(vsum, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(b), 16)));
    }
    float sum = hsum(vsum);
    for (; t < p.nt; ++t) {
      const uint16_t e = t >= lo && t < hi ? f32_to_bf16(std::exp(s[t] - m_new)) : uint16_t{0};
      pr[t] = e;
      sum += bf16_to_f32(e);
    }
    softmax_row_end(p, i, m_new, sum);
  });
}

// 16 columns of a pair row per step: unpacklo / unpackhi interleave rows 2j and 2j + 1 within 128-bit lanes
// (columns 0-3 | 8-11 and 4-7 | 12-15), and the two lane permutes put them back in column order. Partial column
// groups (c >= dv) and the odd last row go through zero-padded copies.
void pack_v_avx2(const uint16_t* v, int v_stride, int nt, int dv, uint32_t* vp, int c16) {
  alignas(32) uint16_t tail[2][16];
  for (int j = 0; j < (nt + 1) / 2; ++j) {
    const uint16_t* v0 = v + static_cast<int64_t>(2 * j) * v_stride;
    const bool has1 = 2 * j + 1 < nt;
    for (int c0 = 0; c0 < c16; c0 += 16) {
      __m256i a, b;
      if (c0 + 16 <= dv && has1) {
        a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v0 + c0));
        b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v0 + v_stride + c0));
      } else {
        const int n = dv - c0 < 16 ? (dv - c0 > 0 ? dv - c0 : 0) : 16;
        for (int c = 0; c < 16; ++c) {
          tail[0][c] = c < n ? v0[c0 + c] : uint16_t{0};
          tail[1][c] = c < n && has1 ? v0[v_stride + c0 + c] : uint16_t{0};
        }
        a = _mm256_load_si256(reinterpret_cast<const __m256i*>(tail[0]));
        b = _mm256_load_si256(reinterpret_cast<const __m256i*>(tail[1]));
      }
      const __m256i lo = _mm256_unpacklo_epi16(a, b), hi = _mm256_unpackhi_epi16(a, b);
      uint32_t* dst = vp + static_cast<int64_t>(j) * c16 + c0;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_permute2x128_si256(lo, hi, 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
  }
}

void qk_bf16_avx2(const QkParams& p) {
  const int d8 = p.d / 8 * 8, tail = p.d - d8;
  // qf holds up to 4 query rows in f32, zero-padded to a multiple of 8 so the tail needs no mask.
  alignas(32) float qf[kRowTile][kMaxRowWidth + 8];
  for (int i0 = 0; i0 < p.nq; i0 += kRowTile) {
    const int rows = p.nq - i0 < kRowTile ? p.nq - i0 : kRowTile;
    for (int r = 0; r < kRowTile; ++r) {
      const uint16_t* q = p.q + static_cast<int64_t>(i0 + (r < rows ? r : 0)) * p.q_stride;
      for (int d = 0; d < p.d; ++d) qf[r][d] = bf16_to_f32(q[d]);
      for (int d = p.d; d < d8 + 8; ++d) qf[r][d] = 0.0f;
    }
    for (int t = 0; t < p.nt; ++t) {
      const uint16_t* k = p.k + static_cast<int64_t>(t) * p.k_stride;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int d = 0; d < d8; d += 8) {
        const __m256 kv = load8_bf16(k + d);
        a0 = _mm256_fmadd_ps(_mm256_load_ps(&qf[0][d]), kv, a0);
        a1 = _mm256_fmadd_ps(_mm256_load_ps(&qf[1][d]), kv, a1);
        a2 = _mm256_fmadd_ps(_mm256_load_ps(&qf[2][d]), kv, a2);
        a3 = _mm256_fmadd_ps(_mm256_load_ps(&qf[3][d]), kv, a3);
      }
      if (tail) {
        const __m256 kv = load_tail_bf16(k + d8, tail);
        a0 = _mm256_fmadd_ps(_mm256_load_ps(&qf[0][d8]), kv, a0);
        a1 = _mm256_fmadd_ps(_mm256_load_ps(&qf[1][d8]), kv, a1);
        a2 = _mm256_fmadd_ps(_mm256_load_ps(&qf[2][d8]), kv, a2);
        a3 = _mm256_fmadd_ps(_mm256_load_ps(&qf[3][d8]), kv, a3);
      }
      const float sums[kRowTile] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
      for (int r = 0; r < rows; ++r) p.s[static_cast<int64_t>(i0 + r) * p.s_stride + t] = sums[r];
    }
  }
}

void pv_bf16_avx2(const PvParams& p) {
  const int dv16 = p.dv / 16 * 16;
  for (int i0 = 0; i0 < p.nq; i0 += kRowTile) {
    const int rows = p.nq - i0 < kRowTile ? p.nq - i0 : kRowTile;
    const uint16_t* pr[kRowTile];
    for (int r = 0; r < kRowTile; ++r) pr[r] = p.p + static_cast<int64_t>(i0 + (r < rows ? r : 0)) * p.p_stride;
    for (int c = 0; c < dv16; c += 16) {
      __m256 acc[kRowTile][2];
      for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
      for (int t = 0; t < p.nt; ++t) {
        const uint16_t* v = p.v + static_cast<int64_t>(t) * p.v_stride + c;
        const __m256 v0 = load8_bf16(v), v1 = load8_bf16(v + 8);
        for (int r = 0; r < kRowTile; ++r) {
          const __m256 w = _mm256_set1_ps(bf16_to_f32(pr[r][t]));
          acc[r][0] = _mm256_fmadd_ps(w, v0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(w, v1, acc[r][1]);
        }
      }
      for (int r = 0; r < rows; ++r) {
        float* o = p.o + static_cast<int64_t>(i0 + r) * p.o_stride + c;
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc[r][0]));
        _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), acc[r][1]));
      }
    }
    for (int c = dv16; c < p.dv; c += 8) {  // the last < 16 columns, 8 (or fewer) at a time
      const int n = p.dv - c < 8 ? p.dv - c : 8;
      __m256 acc[kRowTile];
      for (auto& a : acc) a = _mm256_setzero_ps();
      for (int t = 0; t < p.nt; ++t) {
        const uint16_t* v = p.v + static_cast<int64_t>(t) * p.v_stride + c;
        const __m256 v0 = n == 8 ? load8_bf16(v) : load_tail_bf16(v, n);
        for (int r = 0; r < kRowTile; ++r) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(bf16_to_f32(pr[r][t])), v0, acc[r]);
      }
      for (int r = 0; r < rows; ++r) {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, acc[r]);
        float* o = p.o + static_cast<int64_t>(i0 + r) * p.o_stride + c;
        for (int j = 0; j < n; ++j) o[j] += tmp[j];
      }
    }
  }
}

// The prefetch hint is issued at once, before the products (what the caller did before the hint existed).
void qk_qpacked_avx2(const QkQPackedParams& p) {
  PrefetchSpread(p.prefetch, p.prefetch_bytes, 1).step(0);
  qk_bf16_avx2({p.q, p.k, p.s, p.q_stride, p.k_stride, p.s_stride, p.nq, p.nt, p.d});
}

// 16 positions per pass: lanes t >= nt read the block's padding (kp_stride >= round_up(nt, 16)), are computed
// from anything and never stored.
void qk_kpacked_avx2(const QkPackedParams& p) {
  alignas(32) float qf[kRowTile][kMaxRowWidth];
  const int passes = (p.nt + 15) / 16;
  const PrefetchSpread pf(p.prefetch, p.prefetch_bytes, 1);  // issued by the first row tile, a part per pass
  for (int i0 = 0; i0 < p.nq; i0 += kRowTile) {
    const int rows = p.nq - i0 < kRowTile ? p.nq - i0 : kRowTile;
    for (int r = 0; r < kRowTile; ++r) {
      const uint16_t* q = p.q + static_cast<int64_t>(i0 + (r < rows ? r : 0)) * p.q_stride;
      for (int d = 0; d < p.d; ++d) qf[r][d] = bf16_to_f32(q[d]);
    }
    for (int t0 = 0; t0 < p.nt; t0 += 16) {
      __m256 acc[kRowTile][2];
      for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
      const PrefetchSpread part = i0 == 0 ? pf.part(t0 / 16, passes, p.d / 2) : PrefetchSpread{};
      for (int j = 0; j < p.d / 2; ++j) {
        part.step(j);
        const uint16_t* k = p.kp + 2 * (static_cast<int64_t>(j) * p.kp_stride + t0);
        __m256 lo0, hi0, lo1, hi1;
        split_pairs(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k)), lo0, hi0);
        split_pairs(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + 16)), lo1, hi1);
        for (int r = 0; r < kRowTile; ++r) {
          const __m256 qlo = _mm256_broadcast_ss(&qf[r][2 * j]), qhi = _mm256_broadcast_ss(&qf[r][2 * j + 1]);
          acc[r][0] = _mm256_fmadd_ps(qhi, hi0, _mm256_fmadd_ps(qlo, lo0, acc[r][0]));
          acc[r][1] = _mm256_fmadd_ps(qhi, hi1, _mm256_fmadd_ps(qlo, lo1, acc[r][1]));
        }
      }
      const int n = p.nt - t0;
      for (int r = 0; r < rows; ++r) {
        float* s = p.s + static_cast<int64_t>(i0 + r) * p.s_stride + t0;
        alignas(32) float tmp[16];
        _mm256_store_ps(tmp, acc[r][0]);
        _mm256_store_ps(tmp + 8, acc[r][1]);
        std::memcpy(s, tmp, sizeof(float) * (n < 16 ? n : 16));
      }
    }
  }
}

// 16 output columns per pass; columns >= dv are never loaded. With odd nt the last pair row contributes only its
// low half (position nt - 1): its high half (position nt) is never multiplied.
void pv_vpacked_avx2(const PvPackedParams& p) {
  const int full = p.nt / 2, passes = (p.dv + 15) / 16;
  const PrefetchSpread pf(p.prefetch, p.prefetch_bytes, 1);  // issued by the first row tile, a part per pass
  for (int i0 = 0; i0 < p.nq; i0 += kRowTile) {
    const int rows = p.nq - i0 < kRowTile ? p.nq - i0 : kRowTile;
    const uint16_t* pr[kRowTile];
    for (int r = 0; r < kRowTile; ++r) pr[r] = p.p + static_cast<int64_t>(i0 + (r < rows ? r : 0)) * p.p_stride;
    for (int c = 0; c < p.dv; c += 16) {
      const int n = p.dv - c;
      __m256 acc[kRowTile][2];
      for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
      const PrefetchSpread part = i0 == 0 ? pf.part(c / 16, passes, (p.nt + 1) / 2) : PrefetchSpread{};
      auto step = [&](int j, bool only_low) {
        part.step(j);
        const uint16_t* v = p.vp + 2 * (static_cast<int64_t>(j) * p.vp_stride + c);
        __m256 lo0, hi0, lo1, hi1;
        split_pairs(load_pairs(v, n), lo0, hi0);
        split_pairs(load_pairs(v + 16, n - 8), lo1, hi1);
        for (int r = 0; r < kRowTile; ++r) {
          const __m256 wlo = _mm256_set1_ps(bf16_to_f32(pr[r][2 * j]));
          acc[r][0] = _mm256_fmadd_ps(wlo, lo0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(wlo, lo1, acc[r][1]);
          if (only_low) continue;
          const __m256 whi = _mm256_set1_ps(bf16_to_f32(pr[r][2 * j + 1]));
          acc[r][0] = _mm256_fmadd_ps(whi, hi0, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(whi, hi1, acc[r][1]);
        }
      };
      for (int j = 0; j < full; ++j) step(j, false);
      if (p.nt % 2) step(full, true);
      for (int r = 0; r < rows; ++r) {
        float* o = p.o + static_cast<int64_t>(i0 + r) * p.o_stride + c;
        add_lanes(o, acc[r][0], n);
        if (n > 8) add_lanes(o + 8, acc[r][1], n - 8);
      }
    }
  }
}

}  // namespace afd::cpu
