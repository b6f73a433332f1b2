// float8_e4m3fn -> bf16, AVX2 + F16C (compiled with -mavx2 -mfma -mf16c): 8 values per step. The e4m3 magnitude
// shifted left by 7 is an fp16 with the same mantissa and an exponent 8 too small (bias 7 vs 15), subnormals
// included; F16C widens it exactly (whatever MXCSR's DAZ says), x 2^8 rescales it, and the top half of the fp32 is
// the bf16 (exact: 3 mantissa bits). NaN codes are patched; the sign is ORed back.
#include <immintrin.h>

#include "cpu/attn_kernels.h"

namespace afd::cpu {

void fp8_to_bf16_avx2(const uint8_t* src, uint16_t* dst, int64_t n) {
  const __m128i mag_mask = _mm_set1_epi16(0x7f), sign_mask = _mm_set1_epi16(0x80), nan = _mm_set1_epi16(0x7fc0);
  const __m256 scale = _mm256_set1_ps(256.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i w = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i)));
    const __m128i mag = _mm_and_si128(w, mag_mask);
    const __m256 f = _mm256_mul_ps(_mm256_cvtph_ps(_mm_slli_epi16(mag, 7)), scale);
    const __m256i top = _mm256_srli_epi32(_mm256_castps_si256(f), 16);
    __m128i r = _mm_packus_epi32(_mm256_castsi256_si128(top), _mm256_extracti128_si256(top, 1));
    r = _mm_blendv_epi8(r, nan, _mm_cmpeq_epi16(mag, mag_mask));
    r = _mm_or_si128(r, _mm_slli_epi16(_mm_and_si128(w, sign_mask), 8));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), r);
  }
  if (i < n) fp8_to_bf16_scalar(src + i, dst + i, n - i);
}

}  // namespace afd::cpu
