// AVX-512 BF16 attention kernels (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16; reached only when
// cpu_supports(kAvx512Bf16)). vdpbf16ps multiplies bf16 pairs and accumulates in fp32 lanes, so both products are
// arranged with the reduction pairs inside 32-bit lanes and 16 outputs across the lanes (no horizontal sums):
//   qk: K is packed per call into kp[pair][t] (dword (K[t][2 pair], K[t][2 pair + 1]), a 16x16 dword transpose),
//       and each query pair is broadcast: 16 scores (t) per instruction. With 9..16 query rows and 16+ key rows it
//       is Q that is packed and K pairs broadcast instead (qk_keys16): 16 scores (query rows) per instruction.
//   pv: V is packed per call into vp[t pair][c] (dword (V[2 tp][c], V[2 tp + 1][c])) and each P pair is
//       broadcast: 16 output columns per instruction.
// Packed buffers are per-thread and zero-padded, so padding lanes contribute exact zeros; rows of K/V past nt
// and columns past d / dv are never loaded, and the odd last pair of q / P is broadcast with a zero high half.
// qk_kpacked / pv_vpacked run the same loops straight over the pair layouts of the KV cache (no packing): score
// lanes past nt there are computed from anything and never stored (masked stores); V loads are masked to the dv
// columns, and the odd last V pair row has its high half (position nt, anything) zeroed before the product. Their
// prefetch hint (the next block) is issued a few lines per step by the first row group (attn_prefetch.h).
// qk_qpacked with 9..16 query rows runs qk_keys16 on the caller's Q^T pairs (no per-block Q packing), otherwise qk
// on the Q rows. transpose_scores16 (attn_pack.h) turns the AMX kernel's S^T tiles into score rows.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cpu/attn_buffer.h"
#include "cpu/attn_kernels.h"
#include "cpu/exp_poly.h"
#include "cpu/softmax_row.h"
#include "cpu/attn_pack.h"
#include "cpu/attn_prefetch.h"

namespace afd::cpu {

namespace {

constexpr int kRowGroup = 8;  // query rows sharing each loaded K / V vector

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

inline __mmask32 mask32(int n) { return n <= 0 ? 0 : n >= 32 ? ~__mmask32{0} : ((__mmask32{1} << n) - 1); }
inline __mmask16 mask16(int n) {
  return static_cast<__mmask16>(n <= 0 ? 0 : n >= 16 ? 0xffff : (1u << n) - 1);
}
inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

// The dword pair x[2j], x[2j+1] (x[2j] alone, high half zero, when only_low).
inline __m512i pair_at(const uint16_t* x, int j, bool only_low) {
  uint32_t v;
  if (only_low) {
    v = x[2 * j];
  } else {
    std::memcpy(&v, x + 2 * j, 4);
  }
  return _mm512_set1_epi32(static_cast<int>(v));
}

// In place: r[i] (dword j) -> r[j] (dword i), for a 16x16 block of dwords.
// (GCC 12's unpack intrinsics pass an `__m512i __Y = __Y;` placeholder, which -Wuninitialized reports once this
// function is compiled out of line; the placeholder lanes are fully overwritten.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // u[4i + k], 128-bit lane L: column 4L + k of rows 4i .. 4i + 3.
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int k = 0; k < 4; ++k) {
    const __m512i s0 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0x44), s1 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0xee);
    const __m512i w0 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0x44), w1 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0xee);
    r[k] = _mm512_shuffle_i32x4(s0, w0, 0x88);
    r[4 + k] = _mm512_shuffle_i32x4(s0, w0, 0xdd);
    r[8 + k] = _mm512_shuffle_i32x4(s1, w1, 0x88);
    r[12 + k] = _mm512_shuffle_i32x4(s1, w1, 0xdd);
  }
}
#pragma GCC diagnostic pop

struct Scratch {
  ScratchBuffer<uint32_t> kp;  // [pairs padded to 16][t padded to 16]
  ScratchBuffer<uint32_t> vp;  // [t pairs][dv padded to 16]
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Scores of R query rows against 32 (kTwo) or 16 packed key columns starting at tv. The row loops are fully
// unrolled so the 2R accumulators stay in registers.
// kp: pair row j at kp + j * stride (stride >= round_up(nt, 16) dwords, all of them readable).
template <int R, bool kTwo>
void qk_rows(const QkParams& p, int i0, const uint32_t* kp, int stride, int tv, const PrefetchSpread& pf = {}) {
  const int full = p.d / 2;  // pairs with both halves inside d
  __m512 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const uint16_t* q[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) q[r] = p.q + static_cast<int64_t>(i0 + r) * p.q_stride;
  auto step = [&](int j, bool only_low) {
    pf.step(j);
    const uint32_t* kr = kp + static_cast<int64_t>(j) * stride + tv;
    const __m512bh k0 = as_bh(_mm512_loadu_si512(kr));
    const __m512bh k1 = kTwo ? as_bh(_mm512_loadu_si512(kr + 16)) : k0;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512bh qb = as_bh(pair_at(q[r], j, only_low));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], qb, k0);
      if (kTwo) acc[r][1] = _mm512_dpbf16_ps(acc[r][1], qb, k1);
    }
  };
  for (int j = 0; j < full; ++j) step(j, false);
  if (p.d % 2) step(full, true);
  const __mmask16 m0 = mask16(p.nt - tv), m1 = mask16(p.nt - tv - 16);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* s = p.s + static_cast<int64_t>(i0 + r) * p.s_stride + tv;
    _mm512_mask_storeu_ps(s, m0, acc[r][0]);
    if (kTwo) _mm512_mask_storeu_ps(s + 16, m1, acc[r][1]);
  }
}

// Calls f(std::integral_constant<int, R>{}, i0) for the query rows in groups of kRowGroup, then the R < kRowGroup
// rows left (R a compile-time constant, so each group's accumulators stay in registers).
template <typename F>
void for_row_groups(int nq, F&& f) {
  int i0 = 0;
  for (; i0 + kRowGroup <= nq; i0 += kRowGroup) f(std::integral_constant<int, kRowGroup>{}, i0);
  switch (nq - i0) {
    case 1: f(std::integral_constant<int, 1>{}, i0); break;
    case 2: f(std::integral_constant<int, 2>{}, i0); break;
    case 3: f(std::integral_constant<int, 3>{}, i0); break;
    case 4: f(std::integral_constant<int, 4>{}, i0); break;
    case 5: f(std::integral_constant<int, 5>{}, i0); break;
    case 6: f(std::integral_constant<int, 6>{}, i0); break;
    case 7: f(std::integral_constant<int, 7>{}, i0); break;
    default: break;
  }
}

template <bool kTwo>
void qk_cols(const QkParams& p, const uint32_t* kp, int stride, int tv, const PrefetchSpread& pf = {}) {
  for_row_groups(p.nq, [&](auto r, int i0) { qk_rows<decltype(r)::value, kTwo>(p, i0, kp, stride, tv, i0 ? PrefetchSpread{} : pf); });
}

// O rows i0 .. i0+R-1, columns cv .. cv+31 (kTwo) or cv .. cv+15, += P . V from the pairs vp (pair row j at
// vp + j * stride). Only columns < dv are loaded, and the high halves of the odd last pair row are zeroed.
template <int R, bool kTwo>
void pv_rows(const PvParams& p, int i0, const uint32_t* vp, int stride, int cv, const PrefetchSpread& pf = {}) {
  const int full = p.nt / 2;
  const __mmask16 m0 = mask16(p.dv - cv), m1 = mask16(p.dv - cv - 16);
  const __m512i low_half = _mm512_set1_epi32(0xffff);
  __m512 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const uint16_t* pr[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) pr[r] = p.p + static_cast<int64_t>(i0 + r) * p.p_stride;
  auto step = [&](int j, bool only_low) {
    pf.step(j);
    const uint32_t* vr = vp + static_cast<int64_t>(j) * stride + cv;
    __m512i x0 = _mm512_maskz_loadu_epi32(m0, vr), x1 = kTwo ? _mm512_maskz_loadu_epi32(m1, vr + 16) : x0;
    if (only_low) {
      x0 = _mm512_and_si512(x0, low_half);
      x1 = _mm512_and_si512(x1, low_half);
    }
    const __m512bh v0 = as_bh(x0), v1 = as_bh(x1);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512bh pb = as_bh(pair_at(pr[r], j, only_low));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], pb, v0);
      if (kTwo) acc[r][1] = _mm512_dpbf16_ps(acc[r][1], pb, v1);
    }
  };
  for (int j = 0; j < full; ++j) step(j, false);
  if (p.nt % 2) step(full, true);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* o = p.o + static_cast<int64_t>(i0 + r) * p.o_stride + cv;
    _mm512_mask_storeu_ps(o, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, o), acc[r][0]));
    if (kTwo) _mm512_mask_storeu_ps(o + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, o + 16), acc[r][1]));
  }
}

template <bool kTwo>
void pv_cols(const PvParams& p, const uint32_t* vp, int stride, int cv, const PrefetchSpread& pf = {}) {
  for_row_groups(p.nq, [&](auto r, int i0) { pv_rows<decltype(r)::value, kTwo>(p, i0, vp, stride, cv, i0 ? PrefetchSpread{} : pf); });
}

// Calls f(std::bool_constant<two>{}, v) for v = 0, 32, ... below round_up(n, 16): 32 columns from v (two) or,
// for the last 16 when that is all that is left, 16.
template <typename F>
void for_col_groups(int n, F&& f) {
  const int n16 = round_up(n, 16);
  for (int v = 0; v < n16; v += 32) {
    if (v + 16 < n16)
      f(std::true_type{}, v);
    else
      f(std::false_type{}, v);
  }
}

// Every score column (t < nt) / output column (c < dv) from pairs with the given row stride. pf: lines to prefetch,
// issued by the first row group, the column passes taking consecutive parts of the range.
void qk_all_cols(const QkParams& p, const uint32_t* kp, int stride, const PrefetchSpread& pf = {}) {
  const int passes = (round_up(p.nt, 16) + 31) / 32, steps = (p.d + 1) / 2;
  for_col_groups(p.nt, [&](auto two, int tv) {
    qk_cols<decltype(two)::value>(p, kp, stride, tv, pf.part(tv / 32, passes, steps));
  });
}
void pv_all_cols(const PvParams& p, const uint32_t* vp, int stride, const PrefetchSpread& pf = {}) {
  const int passes = (round_up(p.dv, 16) + 31) / 32, steps = (p.nt + 1) / 2;
  for_col_groups(p.dv, [&](auto two, int cv) {
    pv_cols<decltype(two)::value>(p, vp, stride, cv, pf.part(cv / 32, passes, steps));
  });
}

// s[i][t] = column i of the 16 x 16 dword block rows (rows[t] holds key row t's scores of 16 query rows), for
// i < nq and t < nt (<= 16); rows is clobbered.
void store_transposed(__m512i rows[16], int nt, int nq, float* s, int64_t s_stride) {
  transpose16(rows);  // rows[i] dword t = score of query row i against key row t
  const __mmask16 m = mask16(nt);
  for (int i = 0; i < nq; ++i) _mm512_mask_storeu_ps(s + i * s_stride, m, _mm512_castsi512_ps(rows[i]));
}

// Few query rows (9..16, e.g. one decoding token of a 16-head MLA model): the roles swap. Q is packed instead of K
// (qp[j][i], 16 rows x ceil(d/2) pairs, pair row stride qp_stride dwords: a quarter of the transposes of packing
// a 64-row K block, or none when the caller packed it once: qk_qpacked), each K pair is broadcast, and one
// accumulator holds the 16 rows' scores of one key row t. 16 key rows at a time; their 16 accumulators are
// transposed once into score rows. K rows past nt are never loaded. pf: prefetched a few lines per pair step.
template <int R>
void qk_keys16(const QkParams& p, const uint32_t* qp, int qp_stride, int t0, const PrefetchSpread& pf) {
  const int full = p.d / 2;
  __m512 acc[16];
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
  const uint16_t* k[16];
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) k[r] = p.k + static_cast<int64_t>(t0 + (r < R ? r : 0)) * p.k_stride;
  auto step = [&](int j, bool only_low) {
    pf.step(j);
    const __m512bh qv = as_bh(_mm512_loadu_si512(qp + static_cast<int64_t>(j) * qp_stride));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbf16_ps(acc[r], as_bh(pair_at(k[r], j, only_low)), qv);
  };
  for (int j = 0; j < full; ++j) step(j, false);
  if (p.d % 2) step(full, true);
  __m512i rows[16];
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) rows[r] = _mm512_castps_si512(acc[r]);
  store_transposed(rows, R, p.nq, p.s + t0, p.s_stride);
}

// Every key row of p (nq <= 16) against the Q pairs qp; pf: a part per 16 key rows.
void qk_keys(const QkParams& p, const uint32_t* qp, int qp_stride, const PrefetchSpread& pf = {}) {
  const int groups = (p.nt + 15) / 16, steps = (p.d + 1) / 2;
  int t0 = 0;
  for (; t0 + 16 <= p.nt; t0 += 16) qk_keys16<16>(p, qp, qp_stride, t0, pf.part(t0 / 16, groups, steps));
  const PrefetchSpread last = pf.part(t0 / 16, groups, steps);
  switch (p.nt - t0) {
    case 1: qk_keys16<1>(p, qp, qp_stride, t0, last); break;
    case 2: qk_keys16<2>(p, qp, qp_stride, t0, last); break;
    case 3: qk_keys16<3>(p, qp, qp_stride, t0, last); break;
    case 4: qk_keys16<4>(p, qp, qp_stride, t0, last); break;
    case 5: qk_keys16<5>(p, qp, qp_stride, t0, last); break;
    case 6: qk_keys16<6>(p, qp, qp_stride, t0, last); break;
    case 7: qk_keys16<7>(p, qp, qp_stride, t0, last); break;
    case 8: qk_keys16<8>(p, qp, qp_stride, t0, last); break;
    case 9: qk_keys16<9>(p, qp, qp_stride, t0, last); break;
    case 10: qk_keys16<10>(p, qp, qp_stride, t0, last); break;
    case 11: qk_keys16<11>(p, qp, qp_stride, t0, last); break;
    case 12: qk_keys16<12>(p, qp, qp_stride, t0, last); break;
    case 13: qk_keys16<13>(p, qp, qp_stride, t0, last); break;
    case 14: qk_keys16<14>(p, qp, qp_stride, t0, last); break;
    case 15: qk_keys16<15>(p, qp, qp_stride, t0, last); break;
    default: break;
  }
}

}  // namespace

void pack_k_pairs(const uint16_t* k, int k_stride, int nt, int d, uint32_t* kp, int t16) {
  const int p16 = round_up((d + 1) / 2, 16);
  __m512i blk[16];
  for (int t0 = 0; t0 < t16; t0 += 16) {
    for (int j0 = 0; j0 < p16; j0 += 16) {
      for (int r = 0; r < 16; ++r)
        blk[r] = t0 + r < nt ? _mm512_maskz_loadu_epi16(mask32(d - 2 * j0), k + static_cast<int64_t>(t0 + r) * k_stride + 2 * j0)
                             : _mm512_setzero_si512();
      transpose16(blk);
      for (int j = 0; j < 16; ++j) _mm512_storeu_si512(kp + static_cast<int64_t>(j0 + j) * t16 + t0, blk[j]);
    }
  }
}

// vpunpcklwd / vpunpckhwd interleave rows 2j and 2j + 1 within 128-bit lanes (columns 8L + 0..3 and 8L + 4..7 of
// lane L), and one vpermt2q per 16 columns puts the lane halves back in column order (cheaper than two vpermt2w).
void pack_v_pairs(const uint16_t* v, int v_stride, int nt, int dv, uint32_t* vp, int c16) {
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  const int tp = (nt + 1) / 2;
  for (int j = 0; j < tp; ++j) {
    const uint16_t* v0 = v + static_cast<int64_t>(2 * j) * v_stride;
    const bool has1 = 2 * j + 1 < nt;
    const uint16_t* v1 = v0 + v_stride;
    for (int c0 = 0; c0 < c16; c0 += 32) {
      const __mmask32 m = mask32(dv - c0);
      const __m512i a = _mm512_maskz_loadu_epi16(m, v0 + c0);
      const __m512i b = has1 ? _mm512_maskz_loadu_epi16(m, v1 + c0) : _mm512_setzero_si512();
      const __m512i lo = _mm512_unpacklo_epi16(a, b), hi = _mm512_unpackhi_epi16(a, b);
      uint32_t* dst = vp + static_cast<int64_t>(j) * c16 + c0;
      _mm512_storeu_si512(dst, _mm512_permutex2var_epi64(lo, first, hi));
      if (c0 + 16 < c16) _mm512_storeu_si512(dst + 16, _mm512_permutex2var_epi64(lo, second, hi));
    }
  }
}

namespace {

// e^x for x <= 0 (clamped at -87, so every result is a normal float): the AVX2 kernel's method and polynomial
// (attn_avx2.cpp exp_neg) on 16 lanes, the 2^n factor applied by vscalefps.
inline __m512 exp_neg16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(exp_poly::kMinArg));
  const __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(exp_poly::kLog2e), _mm512_set1_ps(0.5f)),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(exp_poly::kLn2Hi), x);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(exp_poly::kLn2Lo), x);
  __m512 y = _mm512_set1_ps(exp_poly::kP5);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(exp_poly::kP4));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(exp_poly::kP3));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(exp_poly::kP2));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(exp_poly::kP1));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(exp_poly::kP0));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

// Lanes t0 .. t0 + 15 inside [lo, hi) and below nt.
inline __mmask16 visible16(int t0, int lo, int hi, int nt) {
  const __m512i t = _mm512_add_epi32(_mm512_set1_epi32(t0), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  return _mm512_cmpge_epi32_mask(t, _mm512_set1_epi32(lo)) & _mm512_cmplt_epi32_mask(t, _mm512_set1_epi32(hi < nt ? hi : nt));
}

}  // namespace

// Two passes per row over the visible lanes only (masked loads: nothing past nt is read): the scaled block max,
// then p = bf16(e^(s * scale - m_new)) by vcvtneps2bf16 (round to nearest even; every value is a normal float) and
// the sum of the rounded values. s is not written.
void softmax_f32_avx512(const SoftmaxParams& p) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const __m512 scale = _mm512_set1_ps(p.scale), neg_inf = _mm512_set1_ps(kNegInf);
  for_each_visible_row(p, [&](int i, int lo, int hi, const float* s, uint16_t* pr) {
    __m512 vmax = neg_inf;
    for (int t = lo / 16 * 16; t < hi; t += 16) {
      const __mmask16 v = visible16(t, lo, hi, p.nt);
      vmax = _mm512_mask_max_ps(vmax, v, vmax, _mm512_mul_ps(_mm512_maskz_loadu_ps(v, s + t), scale));
    }
    const float m_new = softmax_row_max(p, i, _mm512_reduce_max_ps(vmax));
    const __m512 m = _mm512_set1_ps(m_new);
    __m512 vsum = _mm512_setzero_ps();
    for (int t = 0; t < p.nt; t += 16) {
      const __mmask16 v = visible16(t, lo, hi, p.nt);
      const __m512 x = _mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(v, s + t), scale), m);
      const __m512 e = _mm512_maskz_mov_ps(v, exp_neg16(x));
      const __m256bh h = _mm512_cvtneps_pbh(e);
      const __m256i b = reinterpret_cast<const __m256i&>(h);
      _mm256_mask_storeu_epi16(pr + t, mask16(p.nt - t), b);
      vsum = _mm512_add_ps(vsum, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16)));
    }
    softmax_row_end(p, i, m_new, _mm512_reduce_add_ps(vsum));
  });
}

void qk_bf16_avx512(const QkParams& p) {
  Scratch& sc = scratch();
  const int p16 = round_up((p.d + 1) / 2, 16), t16 = round_up(p.nt, 16);
  if (p.nq > kRowGroup && p.nq <= 16 && p.nt >= 16) {  // see qk_keys16
    uint32_t* qp = sc.kp.get(static_cast<size_t>(p16) * 16);
    pack_k_pairs(p.q, p.q_stride, p.nq, p.d, qp, 16);
    qk_keys(p, qp, 16);
    return;
  }
  uint32_t* kp = sc.kp.get(static_cast<size_t>(p16) * t16);
  pack_k_pairs(p.k, p.k_stride, p.nt, p.d, kp, t16);
  qk_all_cols(p, kp, t16);
}

void pv_bf16_avx512(const PvParams& p) {
  Scratch& sc = scratch();
  const int tp = (p.nt + 1) / 2, c16 = round_up(p.dv, 16);
  uint32_t* vp = sc.vp.get(static_cast<size_t>(tp) * c16 + 16);
  pack_v_pairs(p.v, p.v_stride, p.nt, p.dv, vp, c16);
  pv_all_cols(p, vp, c16);
}

void transpose_scores16(const float* c, int nt, int nq, float* s, int64_t s_stride) {
  __m512i rows[16];
  for (int r = 0; r < 16; ++r) rows[r] = _mm512_loadu_si512(c + 16 * r);
  store_transposed(rows, nt, nq, s, s_stride);
}

// 9..16 rows: qk_keys16 over the caller's Q^T pairs (its qp layout with stride qt_stride). Otherwise qk on the Q
// rows: with 8 rows or fewer, 16 score lanes per instruction from packed K beat broadcasting K pairs into 8 or
// fewer of 16 lanes, and more than 16 rows amortise the K packing. There the hint is issued at once, up front.
void qk_qpacked_avx512(const QkQPackedParams& p) {
  const QkParams rp{p.q, p.k, p.s, p.q_stride, p.k_stride, p.s_stride, p.nq, p.nt, p.d};
  if (p.nq > kRowGroup && p.nq <= 16) return qk_keys(rp, p.qt, p.qt_stride, {p.prefetch, p.prefetch_bytes, 1});
  PrefetchSpread(p.prefetch, p.prefetch_bytes, 1).step(0);
  qk_bf16_avx512(rp);
}

// The row kernels' loops read q, s, nq, nt, d (resp. p, o, nq, nt, dv) from the params and K / V only through kp /
// vp, so they run unchanged over the cache's pairs.
void qk_kpacked_avx512(const QkPackedParams& p) {
  const QkParams rp{p.q, nullptr, p.s, p.q_stride, 0, p.s_stride, p.nq, p.nt, p.d};
  qk_all_cols(rp, reinterpret_cast<const uint32_t*>(p.kp), p.kp_stride, {p.prefetch, p.prefetch_bytes, 1});
}

void pv_vpacked_avx512(const PvPackedParams& p) {
  const PvParams rp{p.p, nullptr, p.o, p.p_stride, 0, p.o_stride, p.nq, p.nt, p.dv};
  pv_all_cols(rp, reinterpret_cast<const uint32_t*>(p.vp), p.vp_stride, {p.prefetch, p.prefetch_bytes, 1});
}

}  // namespace afd::cpu
