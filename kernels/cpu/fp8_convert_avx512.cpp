// float8_e4m3fn -> bf16, AVX-512 (F, BW, VL; the AVX-512 and AMX tables): 32 values per step in 16-bit lanes,
// integer operations only. A normal e4m3 magnitude (exponent field >= 1) is (e << 3 | m); shifted left by 4 it
// is bf16's (e << 7 | m << 4), and adding 120 << 7 rebiases the exponent (7 -> 127). The 7 subnormals (m x 2^-9)
// come from a table by vpermw, 0x7f (NaN) becomes bf16 NaN 0x7fc0, and the sign bit moves from bit 7 to bit 15.
#include <immintrin.h>

#include "cpu/attn_kernels.h"

namespace afd::cpu {

void fp8_to_bf16_avx512(const uint8_t* src, uint16_t* dst, int64_t n) {
  // bf16 of m x 2^-9 for m = 0..7 (0, 2^-9, 2^-8, 1.5 x 2^-8, 2^-7, 1.25 / 1.5 / 1.75 x 2^-7); lanes 8..31 unused.
  alignas(64) static const uint16_t kSub[32] = {0, 0x3b00, 0x3b80, 0x3bc0, 0x3c00, 0x3c20, 0x3c40, 0x3c60};
  const __m512i sub_table = _mm512_load_si512(kSub);
  const __m512i mag_mask = _mm512_set1_epi16(0x7f), sign_mask = _mm512_set1_epi16(0x80);
  const __m512i bias = _mm512_set1_epi16(120 << 7), nan = _mm512_set1_epi16(0x7fc0), eight = _mm512_set1_epi16(8);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    const __m512i mag = _mm512_and_si512(w, mag_mask);
    __m512i r = _mm512_add_epi16(_mm512_slli_epi16(mag, 4), bias);
    r = _mm512_mask_permutexvar_epi16(r, _mm512_cmplt_epu16_mask(mag, eight), mag, sub_table);
    r = _mm512_mask_mov_epi16(r, _mm512_cmpeq_epi16_mask(mag, mag_mask), nan);
    r = _mm512_or_si512(r, _mm512_slli_epi16(_mm512_and_si512(w, sign_mask), 8));
    _mm512_storeu_si512(dst + i, r);
  }
  if (i < n) fp8_to_bf16_scalar(src + i, dst + i, n - i);
}

}  // namespace afd::cpu
