// Float32 weights of a whole model in the layout the reference forward reads. Loaded from an HF checkpoint
// directory (config.json + safetensors), per-expert or fused 3-D expert tensors, bf16/f16/f32/fp8.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/config.h"

namespace afd {

struct RefLinear {
  int out = 0, in = 0;
  std::vector<float> w;  // [out, in] row-major: y = x W^T (+ b)
  std::vector<float> b;  // [out] or empty
};

struct RefMlp {  // gated SiLU MLP: down(silu(gate x) * up x)
  RefLinear gate, up, down;
};

struct RefLayer {
  std::vector<float> input_norm, post_norm;  // [hidden]
  // MLA (DeepSeek): q = q_proj x, or q_b(q_a_norm(q_a x)); ckv = kv_a x; kv = kv_b(kv_a_norm(ckv[:lora]))
  RefLinear q_proj, q_a, q_b, kv_a, kv_b;
  std::vector<float> q_a_norm, kv_a_norm;
  // GQA (Qwen3-MoE, Mixtral)
  RefLinear k_proj, v_proj;
  std::vector<float> q_norm, k_norm;  // [head_dim], Qwen3 only
  RefLinear o_proj;

  bool moe = false;
  RefMlp dense;                        // !moe
  std::vector<float> router;           // [E, hidden]
  std::vector<float> router_bias;      // [E] DeepSeek-V3 e_score_correction_bias, else empty
  std::vector<RefMlp> experts;         // [E]
  bool has_shared = false;
  RefMlp shared;                       // width n_shared_experts * moe_intermediate_size
};

struct RefWeights {
  ModelConfig cfg;
  std::string dir;
  std::vector<float> embed;       // [vocab, hidden]
  std::vector<float> final_norm;  // [hidden]
  RefLinear lm_head;              // [vocab, hidden]
  std::vector<RefLayer> layers;
};

// Loads `dir` (config.json and the safetensors it holds). Errors name the file and tensor.
std::shared_ptr<const RefWeights> load_ref_weights(const std::string& dir, bool show_progress = true);

}  // namespace afd
