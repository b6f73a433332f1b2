// Expert routing on the GPU, the same decisions as route_token_f32 (src/model/router.cpp, MODEL_SPEC.md 2.5, 3, 5,
// 6) given the same logits: ties go to the lower expert (and group) index everywhere.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace afd::cuda {

enum class RouteKind : int {
  kSigmoidGroupTopk = 0,   // DeepSeek-V3: sigmoid + bias for choice, group score = sum of top-2, -inf mask
  kSoftmaxGreedy = 1,      // DeepSeek-V2 greedy
  kSoftmaxGroupGreedy = 2, // DeepSeek-V2 group_limited_greedy: group score = max, 0.0 mask
  kSoftmaxTopk = 3,        // Qwen3-MoE / Mixtral
};

struct RouteParams {
  const float* logits;             // [tokens, experts] fp32 router logits, or null when logits_bf16 is given
  const __nv_bfloat16* logits_bf16;// [tokens, experts] bf16 router logits (Qwen3-MoE, Mixtral)
  const float* bias;               // [experts] e_score_correction_bias, or null
  int32_t* ids;                    // [tokens, k] out: chosen experts, best first
  float* weights;                  // [tokens, k] out: routing weights (scaling applied)
  int tokens, experts, k;          // experts <= 1024, k <= 16
  RouteKind kind;
  int n_group, topk_group;         // groups <= 32; ignored by the non-group kinds
  bool norm_topk;                  // renormalise the top-k weights (1e-20 added to the sum for kSigmoidGroupTopk)
  float scale;                     // routed_scaling_factor (kSigmoidGroupTopk, kSoftmax*Greedy)
  bool round_weights_bf16;         // Qwen3-MoE: weights cast to bf16 after renormalisation
};

void route_topk_f32(const RouteParams& p, cudaStream_t stream);

}  // namespace afd::cuda
