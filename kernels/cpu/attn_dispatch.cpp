#include "cpu/attn_kernels.h"
#include "cpu/attn_pack.h"

namespace afd::cpu {

const AttnKernels* kernels_for(Isa isa) {
  static const AttnKernels kTable[kNumIsas] = {
      {Isa::kScalar, qk_bf16_scalar, pv_bf16_scalar, softmax_f32_scalar, qk_kpacked_scalar, pv_vpacked_scalar,
       qk_qpacked_scalar, pack_v_scalar, fp8_to_bf16_scalar},
      {Isa::kAvx2, qk_bf16_avx2, pv_bf16_avx2, softmax_f32_avx2, qk_kpacked_avx2, pv_vpacked_avx2, qk_qpacked_avx2,
       pack_v_avx2, fp8_to_bf16_avx2},
      {Isa::kAvx512Bf16, qk_bf16_avx512, pv_bf16_avx512, softmax_f32_avx512, qk_kpacked_avx512, pv_vpacked_avx512,
       qk_qpacked_avx512, pack_v_pairs, fp8_to_bf16_avx512},
      {Isa::kAmx, qk_bf16_amx, pv_bf16_amx, softmax_f32_avx512, qk_kpacked_amx, pv_vpacked_amx, qk_qpacked_amx,
       pack_v_pairs, fp8_to_bf16_avx512},
  };
  if (!cpu_supports(isa)) return nullptr;
  return &kTable[static_cast<int>(isa)];
}

}  // namespace afd::cpu
