// The model architecture as data: every config.json field that changes the forward math (MODEL_SPEC.md),
// read from the Hugging Face config of deepseek_v3, deepseek_v2, qwen3_moe or mixtral and validated.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace afd {

enum class Arch { kDeepSeekV3, kDeepSeekV2, kQwen3Moe, kMixtral };

enum class RouterKind {
  kSigmoidGroupTopk,       // DeepSeek-V3 noaux_tc: sigmoid + correction bias, group score = sum of top-2
  kSoftmaxGreedy,          // DeepSeek-V2 "greedy": softmax over all, top-k, no renormalisation
  kSoftmaxGroupGreedy,     // DeepSeek-V2 "group_limited_greedy": group score = max, others masked with 0
  kSoftmaxTopk,            // Qwen3-MoE / Mixtral: softmax, top-k, optional renormalisation
};

enum class RopeLayout {
  kRotateHalf,       // NeoX pairs (i, i + d/2): Qwen3-MoE, Mixtral, DeepSeek-V3 with rope_interleave=false
  kInterleavedOut,   // pairs (2i, 2i+1), output de-interleaved: transformers DeepSeek-V3 (rope_interleave=true)
  kComplex,          // pairs (2i, 2i+1), output interleaved, fp32 math: transformers DeepSeek-V2
};

struct RopeConfig {
  std::string type = "default";  // "default", "linear" or "yarn"
  double theta = 10000.0;
  double factor = 1.0;
  int original_max_position = 0;
  double beta_fast = 32.0, beta_slow = 1.0;
  double mscale = 0.0, mscale_all_dim = 0.0;  // 0 = not set
  double attention_factor = 0.0;              // 0 = not set
  bool truncate = true;
};

struct ModelConfig {
  std::string source;  // the config.json path, for messages
  std::string model_type;
  Arch arch = Arch::kDeepSeekV3;

  int vocab_size = 0, hidden_size = 0, num_layers = 0;
  int num_heads = 0, num_kv_heads = 0;
  int head_dim = 0;  // GQA models: per-head width of q/k/v
  float rms_norm_eps = 1e-6f;
  int max_position_embeddings = 0;
  int sliding_window = 0;  // 0 = full causal attention
  bool attention_bias = false, mlp_bias = false;
  bool qk_norm = false;    // Qwen3-MoE per-head q_norm / k_norm
  bool tie_word_embeddings = false;

  // MLA (DeepSeek); q_lora_rank == 0 means a plain q_proj.
  int q_lora_rank = 0, kv_lora_rank = 0, qk_nope_dim = 0, qk_rope_dim = 0, v_head_dim = 0;

  RopeConfig rope;
  RopeLayout rope_layout = RopeLayout::kRotateHalf;
  int rope_dim = 0;  // width that RoPE rotates: head_dim (GQA) or qk_rope_dim (MLA)

  // FFN
  int intermediate_size = 0;      // dense MLP layers
  int moe_intermediate_size = 0;  // each routed expert (and one shared-expert unit)
  int n_routed_experts = 0, top_k = 0, n_shared_experts = 0;
  int n_group = 1, topk_group = 1;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  RouterKind router = RouterKind::kSoftmaxTopk;
  int first_k_dense_replace = 0;        // DeepSeek
  std::vector<int> mlp_only_layers;     // Qwen3-MoE
  int decoder_sparse_step = 1;          // Qwen3-MoE

  // FP8 block-scaled weights (DeepSeek-V3 release format)
  bool fp8 = false;
  int fp8_block_rows = 128, fp8_block_cols = 128;

  int bos_token_id = -1;
  std::vector<int> eos_token_ids;

  bool is_mla() const { return arch == Arch::kDeepSeekV3 || arch == Arch::kDeepSeekV2; }
  bool is_moe_layer(int layer) const;
  int qk_head_dim() const { return is_mla() ? qk_nope_dim + qk_rope_dim : head_dim; }
  int v_dim() const { return is_mla() ? v_head_dim : head_dim; }
  int shared_intermediate() const { return n_shared_experts * moe_intermediate_size; }
  // The attention softmax scale, YaRN mscale included (MODEL_SPEC.md 2.3).
  float softmax_scale() const;
  const char* arch_name() const;
};

// Parses and validates; errors name `source` and the offending field.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source);
ModelConfig load_model_config(const std::string& config_json_path);

}  // namespace afd
