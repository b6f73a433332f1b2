// float8_e4m3fn -> bf16 for the fp8 KV cache, scalar (a 256-entry table) and AVX2 / AVX-512 (this file holds only
// the scalar one; the others sit in fp8_convert_avx2.cpp / fp8_convert_avx512.cpp with their ISA flags).
// Every e4m3 value is a bf16 value, so the conversion is exact; 0x7f / 0xff (NaN) -> bf16 NaN 0x7fc0 (sign kept).
#include <array>

#include "cpu/attn_kernels.h"
#include "util/numeric.h"

namespace afd::cpu {

void fp8_to_bf16_scalar(const uint8_t* src, uint16_t* dst, int64_t n) {
  static const std::array<uint16_t, 256> table = [] {
    std::array<uint16_t, 256> t{};
    for (int i = 0; i < 256; ++i) {
      const float f = fp8_e4m3_to_f32(static_cast<uint8_t>(i));
      t[i] = f == f ? f32_to_bf16(f) : static_cast<uint16_t>((i & 0x80) << 8 | 0x7fc0);
    }
    return t;
  }();
  for (int64_t i = 0; i < n; ++i) dst[i] = table[src[i]];
}

}  // namespace afd::cpu
