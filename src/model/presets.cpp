#include "model/presets.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace afd {

using nlohmann::json;

namespace {

json deepseek_v3() {
  return {{"model_type", "deepseek_v3"}, {"vocab_size", 129280}, {"hidden_size", 7168}, {"num_hidden_layers", 61},
          {"num_attention_heads", 128}, {"num_key_value_heads", 128}, {"q_lora_rank", 1536}, {"kv_lora_rank", 512},
          {"qk_nope_head_dim", 128}, {"qk_rope_head_dim", 64}, {"v_head_dim", 128}, {"intermediate_size", 18432},
          {"moe_intermediate_size", 2048}, {"first_k_dense_replace", 3}, {"n_routed_experts", 256},
          {"num_experts_per_tok", 8}, {"n_shared_experts", 1}, {"n_group", 8}, {"topk_group", 4},
          {"norm_topk_prob", true}, {"routed_scaling_factor", 2.5}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000},
          {"rope_scaling",
           {{"type", "yarn"}, {"factor", 40}, {"mscale", 1.0}, {"mscale_all_dim", 1.0},
            {"original_max_position_embeddings", 4096}, {"beta_fast", 32}, {"beta_slow", 1}}},
          {"max_position_embeddings", 163840}, {"bos_token_id", 0}, {"eos_token_id", 1},
          {"quantization_config",
           {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
            {"weight_block_size", {128, 128}}}}};
}

json deepseek_v2(bool lite) {
  json rope = {{"type", "yarn"}, {"factor", 40}, {"mscale", 0.707}, {"mscale_all_dim", 0.707},
               {"original_max_position_embeddings", 4096}, {"beta_fast", 32}, {"beta_slow", 1}};
  json c = {{"model_type", "deepseek_v2"}, {"vocab_size", 102400}, {"kv_lora_rank", 512}, {"qk_nope_head_dim", 128},
            {"qk_rope_head_dim", 64}, {"v_head_dim", 128}, {"first_k_dense_replace", 1}, {"n_shared_experts", 2},
            {"norm_topk_prob", false}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000}, {"rope_scaling", rope},
            {"max_position_embeddings", 163840}, {"bos_token_id", 100000}, {"eos_token_id", 100001}};
  if (lite) {
    c.update({{"hidden_size", 2048}, {"num_hidden_layers", 27}, {"num_attention_heads", 16},
              {"num_key_value_heads", 16}, {"q_lora_rank", nullptr}, {"intermediate_size", 10944},
              {"moe_intermediate_size", 1408}, {"n_routed_experts", 64}, {"num_experts_per_tok", 6},
              {"topk_method", "greedy"}, {"n_group", 1}, {"topk_group", 1}, {"routed_scaling_factor", 1.0}});
  } else {
    c.update({{"hidden_size", 5120}, {"num_hidden_layers", 60}, {"num_attention_heads", 128},
              {"num_key_value_heads", 128}, {"q_lora_rank", 1536}, {"intermediate_size", 12288},
              {"moe_intermediate_size", 1536}, {"n_routed_experts", 160}, {"num_experts_per_tok", 6},
              {"topk_method", "group_limited_greedy"}, {"n_group", 8}, {"topk_group", 3},
              {"routed_scaling_factor", 16.0}});
  }
  return c;
}

json qwen3_30b_a3b() {
  return {{"model_type", "qwen3_moe"}, {"vocab_size", 151936}, {"hidden_size", 2048}, {"num_hidden_layers", 48},
          {"num_attention_heads", 32}, {"num_key_value_heads", 4}, {"head_dim", 128}, {"rope_theta", 1000000.0},
          {"rms_norm_eps", 1e-6}, {"num_experts", 128}, {"num_experts_per_tok", 8}, {"moe_intermediate_size", 768},
          {"intermediate_size", 6144}, {"norm_topk_prob", true}, {"decoder_sparse_step", 1},
          {"mlp_only_layers", json::array()}, {"max_position_embeddings", 40960}, {"bos_token_id", 151643},
          {"eos_token_id", 151645}};
}

json mixtral_8x7b() {
  return {{"model_type", "mixtral"}, {"vocab_size", 32000}, {"hidden_size", 4096}, {"num_hidden_layers", 32},
          {"num_attention_heads", 32}, {"num_key_value_heads", 8}, {"intermediate_size", 14336},
          {"num_local_experts", 8}, {"num_experts_per_tok", 2}, {"rms_norm_eps", 1e-5}, {"rope_theta", 1000000.0},
          {"max_position_embeddings", 32768}, {"bos_token_id", 1}, {"eos_token_id", 2}};
}

}  // namespace

std::vector<std::string> preset_names() {
  return {"deepseek-v3", "deepseek-v2", "deepseek-v2-lite", "qwen3-30b-a3b", "mixtral-8x7b"};
}

json preset_config(const std::string& name) {
  if (name == "deepseek-v3") return deepseek_v3();
  if (name == "deepseek-v2") return deepseek_v2(false);
  if (name == "deepseek-v2-lite") return deepseek_v2(true);
  if (name == "qwen3-30b-a3b") return qwen3_30b_a3b();
  if (name == "mixtral-8x7b") return mixtral_8x7b();
  std::string list;
  for (const auto& n : preset_names()) list += (list.empty() ? "" : ", ") + n;
  fail("unknown architecture preset '", name, "' (", list, ")");
}

}  // namespace afd
