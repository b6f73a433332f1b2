#include "model/config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/rope.h"
#include "util/error.h"

namespace afd {

using nlohmann::json;

namespace {

// Field access with messages that name the file and the field.
class Fields {
 public:
  Fields(const json& j, const std::string& src) : j_(j), src_(src) {}

  bool has(const char* k) const { return j_.contains(k) && !j_[k].is_null(); }

  int req_int(const char* k, int min_value = 1) const {
    AFD_REQUIRE(has(k), src_, ": missing field ", k);
    return check_int(k, j_[k], min_value);
  }
  int opt_int(const char* k, int dflt, int min_value = 0) const {
    return has(k) ? check_int(k, j_[k], min_value) : dflt;
  }
  double opt_num(const char* k, double dflt) const {
    if (!has(k)) return dflt;
    AFD_REQUIRE(j_[k].is_number(), src_, ": field ", k, " must be a number, not ", j_[k].dump());
    return j_[k].get<double>();
  }
  bool opt_bool(const char* k, bool dflt) const {
    if (!has(k)) return dflt;
    AFD_REQUIRE(j_[k].is_boolean(), src_, ": field ", k, " must be true or false, not ", j_[k].dump());
    return j_[k].get<bool>();
  }
  std::string opt_str(const char* k, const std::string& dflt) const {
    if (!has(k)) return dflt;
    AFD_REQUIRE(j_[k].is_string(), src_, ": field ", k, " must be a string, not ", j_[k].dump());
    return j_[k].get<std::string>();
  }

 private:
  int check_int(const char* k, const json& v, int min_value) const {
    AFD_REQUIRE(v.is_number_integer(), src_, ": field ", k, " must be an integer, not ", v.dump());
    const int64_t x = v.get<int64_t>();
    AFD_REQUIRE(x >= min_value && x < (int64_t{1} << 31), src_, ": field ", k, " = ", x, " is out of range (min ",
                min_value, ")");
    return static_cast<int>(x);
  }
  const json& j_;
  const std::string& src_;
};

void parse_rope(const json& j, const std::string& src, double default_theta, ModelConfig& c) {
  Fields f(j, src);
  RopeConfig& r = c.rope;
  r.theta = f.opt_num("rope_theta", default_theta);
  // transformers 5 writes rope_parameters (rope_type, rope_theta, ...); published checkpoints use rope_scaling.
  const char* key = f.has("rope_parameters") ? "rope_parameters" : (f.has("rope_scaling") ? "rope_scaling" : nullptr);
  if (key) {
    const json& rs = j[key];
    AFD_REQUIRE(rs.is_object(), src, ": field ", key, " must be an object, not ", rs.dump());
    const std::string where = src + " (" + key + ")";
    Fields rf(rs, where);
    r.type = rf.opt_str("rope_type", rf.opt_str("type", "default"));
    r.theta = rf.opt_num("rope_theta", r.theta);
    if (r.type == "yarn") {
      r.original_max_position = rf.opt_int("original_max_position_embeddings", 0, 1);
      AFD_REQUIRE(r.original_max_position > 0, where, ": yarn needs original_max_position_embeddings");
      r.factor = rf.opt_num("factor", 0.0);
      if (r.factor == 0.0) r.factor = static_cast<double>(c.max_position_embeddings) / r.original_max_position;
      r.beta_fast = rf.opt_num("beta_fast", 32.0);
      r.beta_slow = rf.opt_num("beta_slow", 1.0);
      r.mscale = rf.opt_num("mscale", 0.0);
      r.mscale_all_dim = rf.opt_num("mscale_all_dim", 0.0);
      r.attention_factor = rf.opt_num("attention_factor", 0.0);
      r.truncate = rf.opt_bool("truncate", true);
    } else if (r.type == "linear") {
      r.factor = rf.opt_num("factor", 1.0);
    } else {
      AFD_REQUIRE(r.type == "default", where, ": rope type '", r.type,
                  "' is not supported (supported: default, linear, yarn)");
    }
    AFD_REQUIRE(r.factor > 0.0, where, ": factor must be positive");
  }
  AFD_REQUIRE(r.theta > 0.0, src, ": rope_theta must be positive");
}

std::vector<int> int_list(const json& j, const char* k, const std::string& src) {
  std::vector<int> out;
  if (!j.contains(k) || j[k].is_null()) return out;
  if (j[k].is_number_integer()) return {j[k].get<int>()};
  AFD_REQUIRE(j[k].is_array(), src, ": field ", k, " must be an integer or a list of integers");
  for (const auto& v : j[k]) {
    AFD_REQUIRE(v.is_number_integer(), src, ": field ", k, " must hold integers, not ", v.dump());
    out.push_back(v.get<int>());
  }
  return out;
}

void parse_deepseek(const json& j, const std::string& src, ModelConfig& c) {
  Fields f(j, src);
  const bool v3 = c.arch == Arch::kDeepSeekV3;
  c.num_kv_heads = f.opt_int("num_key_value_heads", c.num_heads, 1);
  c.q_lora_rank = f.opt_int("q_lora_rank", 0, 1);
  c.kv_lora_rank = f.req_int("kv_lora_rank");
  c.qk_nope_dim = f.req_int("qk_nope_head_dim");
  c.qk_rope_dim = f.req_int("qk_rope_head_dim");
  c.v_head_dim = f.req_int("v_head_dim");
  AFD_REQUIRE(c.qk_rope_dim % 2 == 0, src, ": field qk_rope_head_dim = ", c.qk_rope_dim, " must be even");
  c.head_dim = c.qk_rope_dim;
  c.rope_dim = c.qk_rope_dim;
  c.intermediate_size = f.req_int("intermediate_size");
  c.moe_intermediate_size = f.req_int("moe_intermediate_size");
  c.n_routed_experts = f.req_int("n_routed_experts");
  c.top_k = f.req_int("num_experts_per_tok");
  c.n_shared_experts = f.opt_int("n_shared_experts", 0);
  c.n_group = f.opt_int("n_group", v3 ? 8 : 1, 1);
  c.topk_group = f.opt_int("topk_group", v3 ? 4 : 1, 1);
  c.norm_topk_prob = f.opt_bool("norm_topk_prob", v3);
  c.routed_scaling_factor = f.opt_num("routed_scaling_factor", v3 ? 2.5 : 1.0);
  c.first_k_dense_replace = f.opt_int("first_k_dense_replace", v3 ? 3 : 0);
  c.mlp_bias = f.opt_bool("mlp_bias", false);
  if (v3) {
    c.router = RouterKind::kSigmoidGroupTopk;
    c.rope_layout = f.opt_bool("rope_interleave", true) ? RopeLayout::kInterleavedOut : RopeLayout::kRotateHalf;
  } else {
    const std::string m = f.opt_str("topk_method", "greedy");
    if (m == "greedy")
      c.router = RouterKind::kSoftmaxGreedy;
    else if (m == "group_limited_greedy")
      c.router = RouterKind::kSoftmaxGroupGreedy;
    else
      fail(src, ": field topk_method = '", m, "' is not supported for deepseek_v2 (greedy, group_limited_greedy)");
    c.rope_layout = RopeLayout::kComplex;
  }
  if (j.contains("quantization_config") && !j["quantization_config"].is_null()) {
    const json& q = j["quantization_config"];
    const std::string where = src + " (quantization_config)";
    AFD_REQUIRE(q.is_object(), where, ": must be an object");
    Fields qf(q, where);
    const std::string method = qf.opt_str("quant_method", "");
    AFD_REQUIRE(method == "fp8", where, ": quant_method '", method, "' is not supported (fp8)");
    const std::string fmt = qf.opt_str("fmt", "e4m3");
    AFD_REQUIRE(fmt == "e4m3", where, ": fmt '", fmt, "' is not supported (e4m3)");
    c.fp8 = true;
    if (qf.has("weight_block_size")) {
      const auto b = int_list(q, "weight_block_size", where);
      AFD_REQUIRE(b.size() == 2 && b[0] > 0 && b[1] > 0, where, ": weight_block_size must be [rows, cols]");
      c.fp8_block_rows = b[0];
      c.fp8_block_cols = b[1];
    }
  }
}

void parse_gqa(const json& j, const std::string& src, ModelConfig& c) {
  Fields f(j, src);
  c.num_kv_heads = f.opt_int("num_key_value_heads", c.num_heads, 1);
  c.head_dim = f.opt_int("head_dim", 0, 1);
  if (c.head_dim == 0) {
    AFD_REQUIRE(c.hidden_size % c.num_heads == 0, src, ": hidden_size ", c.hidden_size,
                " is not divisible by num_attention_heads ", c.num_heads, " and head_dim is not given");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  AFD_REQUIRE(c.head_dim % 2 == 0, src, ": field head_dim = ", c.head_dim, " must be even");
  c.rope_dim = c.head_dim;
  c.rope_layout = RopeLayout::kRotateHalf;
  c.router = RouterKind::kSoftmaxTopk;
  c.top_k = f.req_int("num_experts_per_tok");
  const char* experts_key = f.has("num_experts") ? "num_experts" : "num_local_experts";
  c.n_routed_experts = f.req_int(experts_key);
  if (c.arch == Arch::kQwen3Moe) {
    c.qk_norm = true;
    c.moe_intermediate_size = f.req_int("moe_intermediate_size");
    c.intermediate_size = f.opt_int("intermediate_size", 0, 0);
    c.norm_topk_prob = f.opt_bool("norm_topk_prob", false);
    c.decoder_sparse_step = f.opt_int("decoder_sparse_step", 1, 1);
    c.mlp_only_layers = int_list(j, "mlp_only_layers", src);
    for (int l : c.mlp_only_layers)
      AFD_REQUIRE(l >= 0 && l < c.num_layers, src, ": mlp_only_layers holds ", l, ", not a layer index");
    const bool use_sw = f.opt_bool("use_sliding_window", false);
    c.sliding_window = use_sw ? f.opt_int("sliding_window", 0, 1) : 0;
  } else {
    c.moe_intermediate_size = f.req_int("intermediate_size");  // per expert
    c.intermediate_size = c.moe_intermediate_size;
    c.norm_topk_prob = true;
    c.sliding_window = f.opt_int("sliding_window", 0, 1);
  }
  for (int l = 0; l < c.num_layers; ++l)
    AFD_REQUIRE(c.is_moe_layer(l) || c.intermediate_size > 0, src, ": layer ", l,
                " is a dense MLP layer but intermediate_size is not set");
}

}  // namespace

bool ModelConfig::is_moe_layer(int layer) const {
  switch (arch) {
    case Arch::kDeepSeekV3:
    case Arch::kDeepSeekV2:
      return layer >= first_k_dense_replace;
    case Arch::kQwen3Moe:
      for (int l : mlp_only_layers)
        if (l == layer) return false;
      return n_routed_experts > 0 && (layer + 1) % decoder_sparse_step == 0;
    case Arch::kMixtral:
      return true;
  }
  return true;
}

float ModelConfig::softmax_scale() const {
  double s = 1.0 / std::sqrt(static_cast<double>(qk_head_dim()));
  if (is_mla() && rope.type != "default" && rope.mscale_all_dim != 0.0) {
    const double m = yarn_get_mscale(rope.factor, rope.mscale_all_dim);
    s *= m * m;
  }
  return static_cast<float>(s);
}

const char* ModelConfig::arch_name() const {
  switch (arch) {
    case Arch::kDeepSeekV3: return "deepseek_v3";
    case Arch::kDeepSeekV2: return "deepseek_v2";
    case Arch::kQwen3Moe: return "qwen3_moe";
    case Arch::kMixtral: return "mixtral";
  }
  return "?";
}

ModelConfig parse_model_config(const json& j, const std::string& src) {
  AFD_REQUIRE(j.is_object(), src, ": config is not a JSON object");
  Fields f(j, src);
  ModelConfig c;
  c.source = src;
  AFD_REQUIRE(f.has("model_type"), src, ": missing field model_type");
  c.model_type = f.opt_str("model_type", "");
  double default_theta = 10000.0;
  float default_eps = 1e-6f;
  if (c.model_type == "deepseek_v3") {
    c.arch = Arch::kDeepSeekV3;
  } else if (c.model_type == "deepseek_v2") {
    c.arch = Arch::kDeepSeekV2;
  } else if (c.model_type == "qwen3_moe") {
    c.arch = Arch::kQwen3Moe;
  } else if (c.model_type == "mixtral") {
    c.arch = Arch::kMixtral;
    default_theta = 1e6;
    default_eps = 1e-5f;
  } else {
    fail(src, ": field model_type = '", c.model_type,
         "' is not supported (deepseek_v3, deepseek_v2, qwen3_moe, mixtral)");
  }
  c.vocab_size = f.req_int("vocab_size");
  c.hidden_size = f.req_int("hidden_size");
  c.num_layers = f.req_int("num_hidden_layers");
  c.num_heads = f.req_int("num_attention_heads");
  c.max_position_embeddings = f.opt_int("max_position_embeddings", 4096, 1);
  c.rms_norm_eps = static_cast<float>(f.opt_num("rms_norm_eps", default_eps));
  AFD_REQUIRE(c.rms_norm_eps > 0.0f, src, ": field rms_norm_eps must be positive");
  c.attention_bias = f.opt_bool("attention_bias", false);
  c.tie_word_embeddings = f.opt_bool("tie_word_embeddings", false);
  const std::string act = f.opt_str("hidden_act", "silu");
  AFD_REQUIRE(act == "silu", src, ": field hidden_act = '", act, "' is not supported (silu)");
  c.bos_token_id = f.opt_int("bos_token_id", -1, 0);
  c.eos_token_ids = int_list(j, "eos_token_id", src);

  if (c.is_mla())
    parse_deepseek(j, src, c);
  else
    parse_gqa(j, src, c);
  parse_rope(j, src, default_theta, c);

  AFD_REQUIRE(c.num_heads % c.num_kv_heads == 0, src, ": num_attention_heads ", c.num_heads,
              " is not a multiple of num_key_value_heads ", c.num_kv_heads);
  AFD_REQUIRE(c.top_k <= c.n_routed_experts, src, ": num_experts_per_tok ", c.top_k, " exceeds the ",
              c.n_routed_experts, " routed experts");
  AFD_REQUIRE(c.n_routed_experts % c.n_group == 0, src, ": n_routed_experts ", c.n_routed_experts,
              " is not a multiple of n_group ", c.n_group);
  AFD_REQUIRE(c.topk_group <= c.n_group, src, ": topk_group ", c.topk_group, " exceeds n_group ", c.n_group);
  if (c.router == RouterKind::kSigmoidGroupTopk || c.router == RouterKind::kSoftmaxGroupGreedy)
    AFD_REQUIRE(c.top_k <= c.topk_group * (c.n_routed_experts / c.n_group), src, ": num_experts_per_tok ", c.top_k,
                " exceeds the experts in topk_group ", c.topk_group, " groups");
  if (c.router == RouterKind::kSigmoidGroupTopk && c.n_group > 1)
    AFD_REQUIRE(c.n_routed_experts / c.n_group >= 2, src, ": n_group ", c.n_group,
                " leaves fewer than 2 experts per group (the group score sums the top 2)");
  for (int e : c.eos_token_ids)
    AFD_REQUIRE(e >= 0 && e < c.vocab_size, src, ": eos_token_id ", e, " is outside the vocabulary");
  AFD_REQUIRE(c.bos_token_id < c.vocab_size, src, ": bos_token_id ", c.bos_token_id, " is outside the vocabulary");
  if (c.rope.type == "yarn")
    AFD_REQUIRE(c.rope.beta_fast > 0 && c.rope.beta_slow > 0, src, ": yarn beta_fast/beta_slow must be positive");
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  std::ifstream in(path);
  AFD_REQUIRE(in.good(), path, ": cannot open");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    fail(path, ": malformed JSON (", e.what(), ")");
  }
  return parse_model_config(j, path);
}

}  // namespace afd
