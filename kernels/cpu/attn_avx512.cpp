// AVX-512 BF16 attention kernels (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512bf16; reached only when
// cpu_supports(kAvx512Bf16)). vdpbf16ps multiplies bf16 pairs and accumulates in fp32:
//   qk pairs run along d (q and k rows are already pair-contiguous);
//   pv pairs run along t: rows t and t+1 of V are interleaved with unpacklo/hi_epi16 and the accumulator lanes are
//   put back in column order once at the end.
#include <immintrin.h>

#include "cpu/attn_kernels.h"

namespace afd::cpu {

namespace {

constexpr int kRowTile = 4;

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

inline __mmask32 mask_of(int n) { return n >= 32 ? ~__mmask32{0} : ((__mmask32{1} << n) - 1); }

inline __m512i load32(const uint16_t* x, int n) {  // x[0..n) (n <= 32), zeros after; never reads past x[n-1]
  return _mm512_maskz_loadu_epi16(mask_of(n), x);
}

inline float hsum(__m512 v) {  // (GCC 12's _mm512_reduce_add_ps trips -Wmaybe-uninitialized)
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4e));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xb1));
  __m128 x = _mm512_castps512_ps128(v);
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)));
}

}  // namespace

void qk_bf16_avx512(const QkParams& p) {
  for (int i0 = 0; i0 < p.nq; i0 += kRowTile) {
    const int rows = p.nq - i0 < kRowTile ? p.nq - i0 : kRowTile;
    const uint16_t* q[kRowTile];
    for (int r = 0; r < kRowTile; ++r) q[r] = p.q + static_cast<int64_t>(i0 + (r < rows ? r : 0)) * p.q_stride;
    for (int t = 0; t < p.nt; ++t) {
      const uint16_t* k = p.k + static_cast<int64_t>(t) * p.k_stride;
      __m512 acc[kRowTile];
      for (auto& a : acc) a = _mm512_setzero_ps();
      for (int d = 0; d < p.d; d += 32) {
        const int n = p.d - d;
        const __m512bh kv = as_bh(load32(k + d, n));
        for (int r = 0; r < kRowTile; ++r) acc[r] = _mm512_dpbf16_ps(acc[r], as_bh(load32(q[r] + d, n)), kv);
      }
      for (int r = 0; r < rows; ++r) p.s[static_cast<int64_t>(i0 + r) * p.s_stride + t] = hsum(acc[r]);
    }
  }
}

void pv_bf16_avx512(const PvParams& p) {
  // After unpacklo/hi of 32 columns, lane j of `lo` holds column 8(j/4) + j%4 and lane j of `hi` column
  // 8(j/4) + 4 + j%4. kFirst/kSecond gather columns 0..15 / 16..31 from (lo, hi) (index >= 16 selects hi).
  alignas(64) static const int kFirst[16] = {0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23};
  alignas(64) static const int kSecond[16] = {8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31};
  const __m512i first = _mm512_load_si512(kFirst), second = _mm512_load_si512(kSecond);
  for (int i0 = 0; i0 < p.nq; i0 += kRowTile) {
    const int rows = p.nq - i0 < kRowTile ? p.nq - i0 : kRowTile;
    const uint16_t* pr[kRowTile];
    for (int r = 0; r < kRowTile; ++r) pr[r] = p.p + static_cast<int64_t>(i0 + (r < rows ? r : 0)) * p.p_stride;
    for (int c = 0; c < p.dv; c += 32) {
      const int n = p.dv - c;
      __m512 lo_acc[kRowTile], hi_acc[kRowTile];
      for (int r = 0; r < kRowTile; ++r) lo_acc[r] = hi_acc[r] = _mm512_setzero_ps();
      for (int t = 0; t < p.nt; t += 2) {
        const bool pair = t + 1 < p.nt;
        const __m512i v0 = load32(p.v + static_cast<int64_t>(t) * p.v_stride + c, n);
        const __m512i v1 = pair ? load32(p.v + static_cast<int64_t>(t + 1) * p.v_stride + c, n) : _mm512_setzero_si512();
        const __m512bh lo = as_bh(_mm512_unpacklo_epi16(v0, v1)), hi = as_bh(_mm512_unpackhi_epi16(v0, v1));
        for (int r = 0; r < kRowTile; ++r) {
          const uint32_t w = pr[r][t] | (pair ? static_cast<uint32_t>(pr[r][t + 1]) << 16 : 0u);
          const __m512bh wv = as_bh(_mm512_set1_epi32(static_cast<int>(w)));
          lo_acc[r] = _mm512_dpbf16_ps(lo_acc[r], lo, wv);
          hi_acc[r] = _mm512_dpbf16_ps(hi_acc[r], hi, wv);
        }
      }
      const __mmask16 m0 = static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1);
      const __mmask16 m1 = static_cast<__mmask16>(n >= 32 ? 0xffff : n <= 16 ? 0 : (1u << (n - 16)) - 1);
      for (int r = 0; r < rows; ++r) {
        float* o = p.o + static_cast<int64_t>(i0 + r) * p.o_stride + c;
        const __m512 a = _mm512_permutex2var_ps(lo_acc[r], first, hi_acc[r]);
        const __m512 b = _mm512_permutex2var_ps(lo_acc[r], second, hi_acc[r]);
        _mm512_mask_storeu_ps(o, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, o), a));
        if (m1) _mm512_mask_storeu_ps(o + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, o + 16), b));
      }
    }
  }
}

}  // namespace afd::cpu
