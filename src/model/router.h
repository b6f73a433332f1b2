// Expert routing, float32 reference (MODEL_SPEC.md 2.5, 3, 5, 6). Ties between equal scores go to the lower
// expert index, everywhere (top-k of experts and of groups).
#pragma once

#include "model/config.h"

namespace afd {

// `logits` [E]: the router GEMM output for one token. `bias` [E]: DeepSeek-V3 e_score_correction_bias (else null).
// Writes the chosen experts `idx` [top_k] and their weights `w` [top_k] (scaling factors applied).
// `margin` (optional): how far the choice is from changing, in the router's selection scores (sigmoid + bias or
// softmax probabilities): the smaller of the gap between the last chosen expert and the best unchosen one and, for
// group-limited routers, the gap between the last kept group and the best dropped one (+inf when nothing competes).
void route_token_f32(const ModelConfig& cfg, const float* logits, const float* bias, int* idx, float* w,
                     float* margin = nullptr);

// Indices of the k largest values of v[0..n), larger first, ties to the lower index.
void topk_indices(const float* v, int n, int k, int* out);

}  // namespace afd
