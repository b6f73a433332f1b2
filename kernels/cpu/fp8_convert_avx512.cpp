// float8_e4m3fn -> bf16, AVX-512 (F, BW, VL; the AVX-512 and AMX tables): 16 values per step, the AVX2 method
// (fp8_convert_avx2.cpp) on 512-bit registers, the fp32 -> 16-bit narrowing by vpmovdw.
#include <immintrin.h>

#include "cpu/attn_kernels.h"

namespace afd::cpu {

void fp8_to_bf16_avx512(const uint8_t* src, uint16_t* dst, int64_t n) {
  const __m256i mag_mask = _mm256_set1_epi16(0x7f), sign_mask = _mm256_set1_epi16(0x80), nan = _mm256_set1_epi16(0x7fc0);
  const __m512 scale = _mm512_set1_ps(256.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    const __m256i mag = _mm256_and_si256(w, mag_mask);
    const __m512 f = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_slli_epi16(mag, 7)), scale);
    __m256i r = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(f), 16));
    r = _mm256_mask_mov_epi16(r, _mm256_cmpeq_epi16_mask(mag, mag_mask), nan);
    r = _mm256_or_si256(r, _mm256_slli_epi16(_mm256_and_si256(w, sign_mask), 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), r);
  }
  if (i < n) fp8_to_bf16_scalar(src + i, dst + i, n - i);
}

}  // namespace afd::cpu
