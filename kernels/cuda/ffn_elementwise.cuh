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
  const float* routed_sum;      // [tokens, hidden] fp32 sum_j y_j * w_j already formed (expert parallelism: the
                                // reduced partial sums of every GPU); when set, y/slot_row/weights are not read
};
// routed = bf16(sum_j y_j * w_j); ffn = extra ? bf16(routed + extra) : routed (dense: ffn = extra); x = bf16(x + ffn)
void combine_residual_bf16(const CombineParams& p, cudaStream_t stream);

// One GPU's share of the routed sum under expert parallelism: out[t] = sum over the j with slot_row[t*k+j] >= 0 of
// y_j * w_j (fp32; products rounded to bf16 first when round_products), the slots of other GPUs' experts being -1.
// Summed over the GPUs (in any order) this is CombineParams::routed_sum, equal to the one-GPU sum up to fp32
// summation order.
struct PartialCombineParams {
  const __nv_bfloat16* y;       // [rows, hidden] this GPU's expert outputs in permuted order
  const int32_t* slot_row;      // [tokens, k] row of y, or -1 for an expert this GPU does not hold
  const float* weights;         // [tokens, k]
  float* out;                   // [tokens, hidden]
  int tokens, hidden, k;
  bool round_products;
};
void combine_partial_f32(const PartialCombineParams& p, cudaStream_t stream);

}  // namespace afd::cuda
