#include "model/ref_weights.h"

#include <cstdlib>
#include <filesystem>

#include "model/safetensors.h"
#include "model/weight_reader.h"
#include "util/error.h"

namespace afd {

namespace {

// One pass over the names the model needs: first to size the progress bar, then to read.
class Loader {
 public:
  Loader(const st::Checkpoint& ck, const ModelConfig& cfg, Progress* p) : ck_(ck), cfg_(cfg), r_(ck, cfg, p) {}

  std::vector<float> vec(const std::string& name, int64_t n) { return r_.read(name, {n}); }
  std::vector<float> vec2(const std::string& name, int64_t rows, int64_t cols) { return r_.read(name, {rows, cols}); }

  RefLinear linear(const std::string& prefix, int out, int in, bool bias) {
    RefLinear l;
    l.out = out;
    l.in = in;
    l.w = r_.read(prefix + ".weight", {out, in});
    if (bias) l.b = r_.read(prefix + ".bias", {out});
    return l;
  }

  RefMlp mlp(const std::string& p, const char* g, const char* u, const char* d, int width, bool bias) {
    const int h = cfg_.hidden_size;
    return {linear(p + "." + g, width, h, bias), linear(p + "." + u, width, h, bias),
            linear(p + "." + d, h, width, bias)};
  }

  // Routed experts, per-expert tensors as published or the fused 3-D layout transformers 5 can write.
  std::vector<RefMlp> experts(const std::string& p, bool mixtral_names) {
    const int E = cfg_.n_routed_experts, I = cfg_.moe_intermediate_size, h = cfg_.hidden_size;
    const char* g = mixtral_names ? "w1" : "gate_proj";
    const char* u = mixtral_names ? "w3" : "up_proj";
    const char* d = mixtral_names ? "w2" : "down_proj";
    std::vector<RefMlp> out(E);
    const std::string per_expert = p + ".experts.0." + g + ".weight";
    if (ck_.find(per_expert) || !ck_.find(p + ".experts.gate_up_proj")) {
      for (int e = 0; e < E; ++e)
        out[e] = mlp(p + ".experts." + std::to_string(e), g, u, d, I, cfg_.mlp_bias);
      return out;
    }
    for (int e = 0; e < E; ++e) {
      std::vector<float> gu = r_.read_slab(p + ".experts.gate_up_proj", e, E, 2 * I, h);
      RefMlp& m = out[e];
      m.gate = {I, h, std::vector<float>(gu.begin(), gu.begin() + static_cast<int64_t>(I) * h), {}};
      m.up = {I, h, std::vector<float>(gu.begin() + static_cast<int64_t>(I) * h, gu.end()), {}};
      m.down = {h, I, r_.read_slab(p + ".experts.down_proj", e, E, h, I), {}};
    }
    return out;
  }

 private:
  const st::Checkpoint& ck_;
  const ModelConfig& cfg_;
  WeightReader r_;
};

// Bytes the load will read: every tensor except the MTP layers stored at index >= num_layers.
uint64_t bytes_to_read(const st::Checkpoint& ck, const ModelConfig& cfg) {
  uint64_t total = 0;
  const std::string prefix = "model.layers.";
  for (const auto* t : ck.all()) {
    if (t->name.rfind(prefix, 0) == 0) {
      const char* digits = t->name.c_str() + prefix.size();
      char* end = nullptr;
      const long long layer = std::strtoll(digits, &end, 10);
      if (end != digits && layer >= cfg.num_layers) continue;
    }
    total += t->nbytes;
  }
  return total;
}

}  // namespace

std::shared_ptr<const RefWeights> load_ref_weights(const std::string& dir, bool show_progress) {
  namespace fs = std::filesystem;
  auto w = std::make_shared<RefWeights>();
  w->dir = dir;
  w->cfg = load_model_config((fs::path(dir) / "config.json").string());
  const ModelConfig& c = w->cfg;
  st::Checkpoint ck(dir);
  std::unique_ptr<Progress> progress;
  if (show_progress)
    progress = std::make_unique<Progress>("loading " + fs::path(dir).filename().string(), bytes_to_read(ck, c));
  Loader L(ck, c, progress.get());

  const int h = c.hidden_size, H = c.num_heads;
  w->embed = L.vec2("model.embed_tokens.weight", c.vocab_size, h);
  w->final_norm = L.vec("model.norm.weight", h);
  if (ck.find("lm_head.weight") || !c.tie_word_embeddings)
    w->lm_head = L.linear("lm_head", c.vocab_size, h, false);
  else
    w->lm_head = {c.vocab_size, h, w->embed, {}};

  w->layers.resize(c.num_layers);
  for (int l = 0; l < c.num_layers; ++l) {
    RefLayer& y = w->layers[l];
    const std::string p = "model.layers." + std::to_string(l);
    y.input_norm = L.vec(p + ".input_layernorm.weight", h);
    y.post_norm = L.vec(p + ".post_attention_layernorm.weight", h);
    const std::string a = p + ".self_attn";
    const bool ab = c.attention_bias;
    if (c.is_mla()) {
      const int qk = c.qk_head_dim();
      if (c.q_lora_rank > 0) {
        y.q_a = L.linear(a + ".q_a_proj", c.q_lora_rank, h, ab);
        y.q_a_norm = L.vec(a + ".q_a_layernorm.weight", c.q_lora_rank);
        y.q_b = L.linear(a + ".q_b_proj", H * qk, c.q_lora_rank, false);
      } else {
        y.q_proj = L.linear(a + ".q_proj", H * qk, h, false);
      }
      y.kv_a = L.linear(a + ".kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_dim, h, ab);
      y.kv_a_norm = L.vec(a + ".kv_a_layernorm.weight", c.kv_lora_rank);
      y.kv_b = L.linear(a + ".kv_b_proj", H * (c.qk_nope_dim + c.v_head_dim), c.kv_lora_rank, false);
      y.o_proj = L.linear(a + ".o_proj", h, H * c.v_head_dim, ab);
    } else {
      const int hd = c.head_dim, KV = c.num_kv_heads;
      y.q_proj = L.linear(a + ".q_proj", H * hd, h, ab);
      y.k_proj = L.linear(a + ".k_proj", KV * hd, h, ab);
      y.v_proj = L.linear(a + ".v_proj", KV * hd, h, ab);
      y.o_proj = L.linear(a + ".o_proj", h, H * hd, ab);
      if (c.qk_norm) {
        y.q_norm = L.vec(a + ".q_norm.weight", hd);
        y.k_norm = L.vec(a + ".k_norm.weight", hd);
      }
    }
    y.moe = c.is_moe_layer(l);
    if (!y.moe) {
      y.dense = L.mlp(p + ".mlp", "gate_proj", "up_proj", "down_proj", c.intermediate_size, c.mlp_bias);
      continue;
    }
    // Mixtral checkpoints name the block block_sparse_moe (w1/w3/w2); transformers 5 renames it to mlp.
    const bool mixtral_names = c.arch == Arch::kMixtral && !ck.find(p + ".mlp.gate.weight");
    const std::string m = p + (mixtral_names ? ".block_sparse_moe" : ".mlp");
    y.router = L.vec2(m + ".gate.weight", c.n_routed_experts, h);
    if (c.arch == Arch::kDeepSeekV3) y.router_bias = L.vec(m + ".gate.e_score_correction_bias", c.n_routed_experts);
    y.experts = L.experts(m, mixtral_names);
    if (c.n_shared_experts > 0) {
      y.has_shared = true;
      y.shared = L.mlp(m + ".shared_experts", "gate_proj", "up_proj", "down_proj", c.shared_intermediate(),
                       c.mlp_bias);
    }
  }
  if (progress) progress->finish();
  return w;
}

}  // namespace afd
