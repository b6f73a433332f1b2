// The elementwise stages of the FFN half-layer, with the bf16 rounding points of MODEL_SPEC.md sections 1, 2.5, 5
// and 7: RMSNorm, and the weighted expert combine with shared experts and the residual add. (SiLU·mul is fused
// into the gate/up GEMM's epilogue, cuda/grouped_gemm.cuh.)
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace afd::cuda {

struct RmsNormParams {
  const __nv_bfloat16* x;   // [rows, dim] input
  const __nv_bfloat16* w;   // [dim] norm weight
  __nv_bfloat16* y;         // [rows, dim] out: bf16(w * bf16(x * rsqrt(mean(x^2) + eps)))
  int rows, dim;
  float eps;
};
void rmsnorm_bf16_bf16(const RmsNormParams& p, cudaStream_t stream);

struct CombineParams {
  __nv_bfloat16* x;             // [tokens, hidden] residual stream, updated in place: x = bf16(x + ffn)
  const __nv_bfloat16* y;       // [tokens * k, hidden] expert outputs in permuted order; null for a dense layer
  const int32_t* slot_row;      // [tokens, k] row of y holding token t's j-th expert output
  const float* weights;         // [tokens, k] routing weights
  const __nv_bfloat16* extra;   // [tokens, hidden] shared-expert output (MoE) or dense MLP output; null = none
  int tokens, hidden, k;
  bool round_products;          // Qwen3-MoE: bf16(y * w) before the fp32 sum over k; else fp32 products
};
// routed = bf16(sum_j y_j * w_j); ffn = extra ? bf16(routed + extra) : routed (dense: ffn = extra); x = bf16(x + ffn)
void combine_residual_bf16(const CombineParams& p, cudaStream_t stream);

}  // namespace afd::cuda
