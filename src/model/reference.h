// The float32 reference forward pass: the oracle every fast path (CPU attention, GPU experts, the pipeline)
// is tested against. Straightforward loops, no rounding to bf16 anywhere: it reproduces what transformers computes
// in float32 (fixtures/README.md). MLA runs in the expanded form (MODEL_SPEC.md 2.3), caching K/V per head.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/weights.h"

namespace afd {

// Per-layer K and V of every position seen so far, expanded per kv head.
struct RefKvCache {
  int len = 0;                            // positions cached (advanced by forward())
  std::vector<std::vector<float>> k, v;   // [layer][len * kv_heads * qk_dim], [layer][len * kv_heads * v_dim]
};

class ReferenceModel {
 public:
  explicit ReferenceModel(std::shared_ptr<const RefWeights> w);

  const ModelConfig& config() const { return w_->cfg; }
  const RefWeights& weights() const { return *w_; }
  RefKvCache new_cache() const;

  // Runs `ids` [n] at positions cache.len .. cache.len+n-1 and appends them to the cache. Returns logits
  // [n, vocab] when all_logits, else [1, vocab] for the last position.
  // route_margin (optional): the smallest routing margin (route_token_f32) of the last position over the MoE
  // layers: how close the reference's expert choice for that position came to a tie.
  std::vector<float> forward(const int32_t* ids, int n, RefKvCache& cache, bool all_logits,
                             float* route_margin = nullptr) const;

  // The pieces, for testing fast paths half-layer by half-layer. `x` [n, hidden] is the residual stream,
  // updated in place: x += Attn(input_norm(x)) / x += FFN(post_norm(x)).
  void embed(const int32_t* ids, int n, float* x) const;
  void attention_half(int layer, float* x, int n, RefKvCache& cache) const;  // appends n positions to layer's cache
  // last_margin (optional): min'ed with the routing margin of position n - 1 (MoE layers).
  void ffn_half(int layer, float* x, int n, float* last_margin = nullptr) const;
  std::vector<float> logits(const float* x, int n) const;  // final norm + lm_head, [n, vocab]

 private:
  std::shared_ptr<const RefWeights> w_;
  struct Rope;
  std::shared_ptr<const Rope> rope_;
};

// y[n, out] = x[n, in] W^T (+ b)
void ref_linear(const float* x, int n, const RefLinear& l, float* y);
// y = w * (x / rms(x)) over `dim`, float32.
void ref_rmsnorm(const float* x, const float* w, int dim, float eps, float* y);

}  // namespace afd
