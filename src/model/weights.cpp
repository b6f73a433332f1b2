#include "model/weights.h"

#include <cstdlib>
#include <filesystem>
#include <type_traits>

#include "model/safetensors.h"
#include "model/weight_reader.h"
#include "util/error.h"

namespace afd {

namespace {

template <typename T>
class Loader {
 public:
  Loader(const st::Checkpoint& ck, const ModelConfig& cfg, Progress* p, const LoadOptions& opt)
      : ck_(ck), cfg_(cfg), r_(ck, cfg, p), keep_fp8_(opt.keep_fp8_experts && std::is_same_v<T, uint16_t> &&
                                                      cfg.fp8 && cfg.fp8_block_cols == 128) {}

  std::vector<T> vec(const std::string& name, int64_t n) { return r_.template read<T>(name, {n}); }
  std::vector<T> mat(const std::string& name, int64_t rows, int64_t cols) {
    return r_.template read<T>(name, {rows, cols});
  }

  Linear<T> linear(const std::string& prefix, int out, int in, bool bias) {
    Linear<T> l;
    l.out = out;
    l.in = in;
    l.w = r_.template read<T>(prefix + ".weight", {out, in});
    if (bias) l.b = r_.template read<T>(prefix + ".bias", {out});
    return l;
  }

  Mlp<T> mlp(const std::string& p, const char* g, const char* u, const char* d, int width, bool bias) {
    const int h = cfg_.hidden_size;
    return {linear(p + "." + g, width, h, bias), linear(p + "." + u, width, h, bias),
            linear(p + "." + d, h, width, bias)};
  }

  // A routed expert's matrix: kept as fp8 when asked and stored so (no bias), else as linear().
  Linear<T> expert_linear(const std::string& prefix, int out, int in, bool bias) {
    if (keep_fp8_ && !bias) {
      Linear<T> l;
      l.out = out;
      l.in = in;
      if (r_.read_fp8(prefix + ".weight", out, in, l.q8, l.s8)) return l;
    }
    return linear(prefix, out, in, bias);
  }

  // Routed experts, per-expert tensors as published or the fused 3-D layout transformers 5 can write.
  std::vector<Mlp<T>> experts(const std::string& p, bool mixtral_names) {
    const int E = cfg_.n_routed_experts, I = cfg_.moe_intermediate_size, h = cfg_.hidden_size;
    const char* g = mixtral_names ? "w1" : "gate_proj";
    const char* u = mixtral_names ? "w3" : "up_proj";
    const char* d = mixtral_names ? "w2" : "down_proj";
    std::vector<Mlp<T>> out(E);
    const std::string per_expert = p + ".experts.0." + g + ".weight";
    if (ck_.find(per_expert) || !ck_.find(p + ".experts.gate_up_proj")) {
      for (int e = 0; e < E; ++e) {
        const std::string x = p + ".experts." + std::to_string(e) + ".";
        out[e] = {expert_linear(x + g, I, h, cfg_.mlp_bias), expert_linear(x + u, I, h, cfg_.mlp_bias),
                  expert_linear(x + d, h, I, cfg_.mlp_bias)};
      }
      return out;
    }
    const int64_t half = static_cast<int64_t>(I) * h;
    for (int e = 0; e < E; ++e) {
      std::vector<T> gu = r_.template read_slab<T>(p + ".experts.gate_up_proj", e, E, 2 * I, h);
      Mlp<T>& m = out[e];
      m.gate = {I, h, std::vector<T>(gu.begin(), gu.begin() + half), {}, {}, {}};
      m.up = {I, h, std::vector<T>(gu.begin() + half, gu.end()), {}, {}, {}};
      m.down = {h, I, r_.template read_slab<T>(p + ".experts.down_proj", e, E, h, I), {}, {}, {}};
    }
    return out;
  }

  AttnLayer<T> attn_layer(int l) {
    const ModelConfig& c = cfg_;
    const int h = c.hidden_size, H = c.num_heads;
    const std::string p = "model.layers." + std::to_string(l);
    const std::string a = p + ".self_attn";
    const bool ab = c.attention_bias;
    AttnLayer<T> y;
    y.input_norm = vec(p + ".input_layernorm.weight", h);
    if (c.is_mla()) {
      const int qk = c.qk_head_dim();
      if (c.q_lora_rank > 0) {
        y.q_a = linear(a + ".q_a_proj", c.q_lora_rank, h, ab);
        y.q_a_norm = vec(a + ".q_a_layernorm.weight", c.q_lora_rank);
        y.q_b = linear(a + ".q_b_proj", H * qk, c.q_lora_rank, false);
      } else {
        y.q_proj = linear(a + ".q_proj", H * qk, h, false);
      }
      y.kv_a = linear(a + ".kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_dim, h, ab);
      y.kv_a_norm = vec(a + ".kv_a_layernorm.weight", c.kv_lora_rank);
      y.kv_b = linear(a + ".kv_b_proj", H * (c.qk_nope_dim + c.v_head_dim), c.kv_lora_rank, false);
      y.o_proj = linear(a + ".o_proj", h, H * c.v_head_dim, ab);
    } else {
      const int hd = c.head_dim, KV = c.num_kv_heads;
      y.q_proj = linear(a + ".q_proj", H * hd, h, ab);
      y.k_proj = linear(a + ".k_proj", KV * hd, h, ab);
      y.v_proj = linear(a + ".v_proj", KV * hd, h, ab);
      y.o_proj = linear(a + ".o_proj", h, H * hd, ab);
      if (c.qk_norm) {
        y.q_norm = vec(a + ".q_norm.weight", hd);
        y.k_norm = vec(a + ".k_norm.weight", hd);
      }
    }
    return y;
  }

  FfnLayer<T> ffn_layer(int l) {
    const ModelConfig& c = cfg_;
    const int h = c.hidden_size;
    const std::string p = "model.layers." + std::to_string(l);
    FfnLayer<T> y;
    y.post_norm = vec(p + ".post_attention_layernorm.weight", h);
    y.moe = c.is_moe_layer(l);
    if (!y.moe) {
      y.dense = mlp(p + ".mlp", "gate_proj", "up_proj", "down_proj", c.intermediate_size, c.mlp_bias);
      return y;
    }
    // Mixtral checkpoints name the block block_sparse_moe (w1/w3/w2); transformers 5 renames it to mlp.
    const bool mixtral_names = c.arch == Arch::kMixtral && !ck_.find(p + ".mlp.gate.weight");
    const std::string m = p + (mixtral_names ? ".block_sparse_moe" : ".mlp");
    y.router = linear(m + ".gate", c.n_routed_experts, h, false);
    if (c.arch == Arch::kDeepSeekV3)
      y.router_bias = r_.template read<float>(m + ".gate.e_score_correction_bias", {c.n_routed_experts});
    y.experts = experts(m, mixtral_names);
    if (c.n_shared_experts > 0) {
      y.has_shared = true;
      y.shared = mlp(m + ".shared_experts", "gate_proj", "up_proj", "down_proj", c.shared_intermediate(), c.mlp_bias);
    }
    return y;
  }

 private:
  const st::Checkpoint& ck_;
  const ModelConfig& cfg_;
  WeightReader r_;
  bool keep_fp8_;  // fp8 routed experts stay fp8 (per-expert tensors; the fused 3-D layout is dequantised)
};

// Bytes the load will read: tensors of the requested parts, MTP layers (index >= num_layers) excluded.
uint64_t bytes_to_read(const st::Checkpoint& ck, const ModelConfig& cfg, unsigned parts) {
  uint64_t total = 0;
  const std::string prefix = "model.layers.";
  for (const auto* t : ck.all()) {
    const std::string& n = t->name;
    bool want;
    if (n.rfind(prefix, 0) == 0) {
      const char* digits = n.c_str() + prefix.size();
      char* end = nullptr;
      const long long layer = std::strtoll(digits, &end, 10);
      if (end != digits && layer >= cfg.num_layers) continue;
      const bool attn = n.find(".self_attn.") != std::string::npos || n.find(".input_layernorm.") != std::string::npos;
      want = (parts & (attn ? kWeightsAttn : kWeightsFfn)) != 0;
    } else if (n.rfind("model.embed_tokens.", 0) == 0) {
      want = (parts & kWeightsEmbed) || ((parts & kWeightsHead) && cfg.tie_word_embeddings && !ck.find("lm_head.weight"));
    } else {
      want = (parts & kWeightsHead) != 0;
    }
    if (want) total += t->nbytes;
  }
  return total;
}

}  // namespace

template <typename T>
std::shared_ptr<const Weights<T>> load_weights(const std::string& dir, unsigned parts, bool show_progress,
                                               const LoadOptions& opt) {
  namespace fs = std::filesystem;
  auto w = std::make_shared<Weights<T>>();
  w->dir = dir;
  w->parts = parts;
  w->cfg = load_model_config((fs::path(dir) / "config.json").string());
  const ModelConfig& c = w->cfg;
  st::Checkpoint ck(dir);
  std::unique_ptr<Progress> progress;
  if (show_progress)
    progress = std::make_unique<Progress>("loading " + fs::path(dir).filename().string(), bytes_to_read(ck, c, parts));
  Loader<T> L(ck, c, progress.get(), opt);
  const int h = c.hidden_size;
  if (parts & kWeightsEmbed) w->embed = L.mat("model.embed_tokens.weight", c.vocab_size, h);
  if (parts & kWeightsHead) {
    w->final_norm = L.vec("model.norm.weight", h);
    if (ck.find("lm_head.weight") || !c.tie_word_embeddings)
      w->lm_head = L.linear("lm_head", c.vocab_size, h, false);
    else
      w->lm_head = L.linear("model.embed_tokens", c.vocab_size, h, false);
  }
  for (int l = 0; l < c.num_layers; ++l) {
    if (parts & kWeightsAttn) w->attn.push_back(L.attn_layer(l));
    if (parts & kWeightsFfn) w->ffn.push_back(L.ffn_layer(l));
  }
  if (progress) progress->finish();
  return w;
}

template std::shared_ptr<const Weights<float>> load_weights<float>(const std::string&, unsigned, bool,
                                                                   const LoadOptions&);
template std::shared_ptr<const Weights<uint16_t>> load_weights<uint16_t>(const std::string&, unsigned, bool,
                                                                         const LoadOptions&);

}  // namespace afd
