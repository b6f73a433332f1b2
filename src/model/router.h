// Expert routing, float32 reference (MODEL_SPEC.md 2.5, 3, 5, 6). Ties between equal scores go to the lower
// expert index, everywhere (top-k of experts and of groups).
#pragma once

#include "model/config.h"

namespace afd {

// `logits` [E]: the router GEMM output for one token. `bias` [E]: DeepSeek-V3 e_score_correction_bias (else null).
// Writes the chosen experts `idx` [top_k] and their weights `w` [top_k] (scaling factors applied).
void route_token_f32(const ModelConfig& cfg, const float* logits, const float* bias, int* idx, float* w);

// Indices of the k largest values of v[0..n), larger first, ties to the lower index.
void topk_indices(const float* v, int n, int k, int* out);

}  // namespace afd
