// Model weights in the layout afd's compute paths read, loaded from an HF checkpoint directory (config.json +
// safetensors; per-expert or fused 3-D expert tensors; bf16/f16/f32/fp8). One template, two element types:
//   Weights<float>    (RefWeights)  : the float32 reference forward; fp8 dequantised in fp32.
//   Weights<uint16_t> (Bf16Weights) : bf16 bits for the fast paths; fp8 dequantised as bf16(fp32(q) * scale).
// Parts can be loaded separately, so a process that hosts only the FFN side never reads attention weights.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"

namespace afd {

template <typename T>
struct Linear {
  int out = 0, in = 0;
  std::vector<T> w;  // [out, in] row-major: y = x W^T (+ b)
  std::vector<T> b;  // [out] or empty
  // Kept fp8 (LoadOptions::keep_fp8_experts, routed experts only): then w is empty and
  // W[i][j] = fp32(q8[i][j]) * s8[i / fp8_block_rows][j / fp8_block_cols] (e4m3 bytes, fp32 block scales).
  std::vector<uint8_t> q8;  // [out, in]
  std::vector<float> s8;    // [ceil(out / block_rows), ceil(in / block_cols)]
  bool is_fp8() const { return !q8.empty(); }
};

template <typename T>
struct Mlp {  // gated SiLU MLP: down(silu(gate x) * up x)
  Linear<T> gate, up, down;
};

template <typename T>
struct AttnLayer {
  std::vector<T> input_norm;  // [hidden]
  // MLA (DeepSeek): q = q_proj x, or q_b(q_a_norm(q_a x)); ckv = kv_a x; kv = kv_b(kv_a_norm(ckv[:lora]))
  Linear<T> q_proj, q_a, q_b, kv_a, kv_b;
  std::vector<T> q_a_norm, kv_a_norm;
  // GQA (Qwen3-MoE, Mixtral)
  Linear<T> k_proj, v_proj;
  std::vector<T> q_norm, k_norm;  // [head_dim], Qwen3 only
  Linear<T> o_proj;
};

template <typename T>
struct FfnLayer {
  std::vector<T> post_norm;  // [hidden]
  bool moe = false;
  Mlp<T> dense;                       // !moe
  Linear<T> router;                   // [E, hidden], no bias
  std::vector<float> router_bias;     // [E] DeepSeek-V3 e_score_correction_bias (fp32 in checkpoints), else empty
  std::vector<Mlp<T>> experts;        // [E]
  bool has_shared = false;
  Mlp<T> shared;                      // width n_shared_experts * moe_intermediate_size
};

enum WeightParts : unsigned { kWeightsEmbed = 1, kWeightsAttn = 2, kWeightsFfn = 4, kWeightsHead = 8, kWeightsAll = 15 };

template <typename T>
struct Weights {
  ModelConfig cfg;
  std::string dir;
  unsigned parts = 0;             // which WeightParts are loaded
  std::vector<T> embed;           // [vocab, hidden]                       (kWeightsEmbed)
  std::vector<AttnLayer<T>> attn; // [layers]                              (kWeightsAttn)
  std::vector<FfnLayer<T>> ffn;   // [layers]                              (kWeightsFfn)
  std::vector<T> final_norm;      // [hidden]                              (kWeightsHead)
  Linear<T> lm_head;              // [vocab, hidden]                       (kWeightsHead)
};

using RefLinear = Linear<float>;
using RefMlp = Mlp<float>;
using RefWeights = Weights<float>;
using Bf16Weights = Weights<uint16_t>;

struct LoadOptions {
  // Routed experts stored as F8_E4M3 with 128-column block scales stay fp8 (Linear::q8/s8) instead of being
  // dequantised: for the GPU FFN, which streams them as fp8 (half the bytes and memory). Other tensors, and fp8
  // experts with other column blocks, are dequantised as always.
  bool keep_fp8_experts = false;
};

// Loads the `parts` of `dir`. Errors name the file and tensor. Progress bar on a terminal when show_progress.
template <typename T>
std::shared_ptr<const Weights<T>> load_weights(const std::string& dir, unsigned parts = kWeightsAll,
                                               bool show_progress = true, const LoadOptions& opt = {});

// True when any routed expert of `w` is kept as fp8 (only a GPU FFN can run such weights).
template <typename T>
bool has_fp8_experts(const Weights<T>& w) {
  for (const auto& f : w.ffn)
    for (const auto& e : f.experts)
      if (e.gate.is_fp8() || e.up.is_fp8() || e.down.is_fp8()) return true;
  return false;
}

inline std::shared_ptr<const RefWeights> load_ref_weights(const std::string& dir, bool show_progress = true) {
  return load_weights<float>(dir, kWeightsAll, show_progress);
}

}  // namespace afd
