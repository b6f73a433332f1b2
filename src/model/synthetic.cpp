#include "model/synthetic.h"

#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>

#include "model/memory_plan.h"
#include "model/presets.h"
#include "util/error.h"
#include "util/numeric.h"
#include "util/progress.h"

namespace afd {

namespace {

// v[i] = value(i) for i < n on every core (value a pure function of i, so the result is reproducible).
template <typename T, typename F>
void parallel_fill(std::vector<T>& v, size_t n, F value) {
  v.resize(n);
  // Contiguous ranges, one per core (interleaved elements would put several threads on every cache line).
  const size_t threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (size_t i = n * t / threads, end = n * (t + 1) / threads; i < end; ++i) v[i] = value(i);
    });
  for (auto& th : pool) th.join();
}

// bf16 values uniform in [center - half_width, center + half_width), element i a function of (key, i).
void fill(std::vector<uint16_t>& v, size_t n, uint64_t key, float center, float half_width, Progress* bar) {
  parallel_fill(v, n, [&](size_t i) {
    const double u = static_cast<double>(splitmix64(key ^ splitmix64(i)) >> 11) * 0x1.0p-53;  // [0, 1)
    return f32_to_bf16(center + half_width * static_cast<float>(2 * u - 1));
  });
  if (bar) bar->add(n * 2);
}

// Random e4m3 codes (every code but the two NaNs), element i a function of (key, i).
void fill_fp8(std::vector<uint8_t>& v, size_t n, uint64_t key, Progress* bar) {
  parallel_fill(v, n, [&](size_t i) {
    const auto b = static_cast<uint8_t>(splitmix64(key ^ splitmix64(i)) >> 56);
    return static_cast<uint8_t>((b & 0x7f) == 0x7f ? b ^ 1 : b);
  });
  if (bar) bar->add(n);
}

class Gen {
 public:
  Gen(uint64_t seed, Progress* bar) : seed_(seed), bar_(bar) {}
  // Kept fp8 (Linear::q8/s8) in block_rows x block_cols blocks, every block scaled so |W| <= sqrt(3/in).
  Linear<uint16_t> fp8_linear(int out, int in, int block_rows, int block_cols) {
    Linear<uint16_t> l{out, in, {}, {}, {}, {}};
    fill_fp8(l.q8, static_cast<size_t>(out) * in, next(), bar_);
    const size_t blocks = static_cast<size_t>((out + block_rows - 1) / block_rows) * ((in + block_cols - 1) / block_cols);
    l.s8.assign(blocks, std::sqrt(3.0f / in) / 448.0f);
    return l;
  }
  Mlp<uint16_t> fp8_mlp(int h, int width, int br, int bc) {
    return {fp8_linear(width, h, br, bc), fp8_linear(width, h, br, bc), fp8_linear(h, width, br, bc)};
  }
  // uniform with std 1/sqrt(in): half width sqrt(3/in)
  Linear<uint16_t> linear(int out, int in) {
    Linear<uint16_t> l{out, in, {}, {}, {}, {}};
    fill(l.w, static_cast<size_t>(out) * in, next(), 0.0f, std::sqrt(3.0f / in), bar_);
    return l;
  }
  std::vector<uint16_t> norm(int n) {
    std::vector<uint16_t> v;
    fill(v, n, next(), 1.0f, 0.1f, bar_);
    return v;
  }
  Mlp<uint16_t> mlp(int h, int width) { return {linear(width, h), linear(width, h), linear(h, width)}; }

 private:
  uint64_t next() { return splitmix64(seed_ + ++counter_); }
  uint64_t seed_, counter_ = 0;
  Progress* bar_;
};

}  // namespace

ModelConfig synthetic_config(const SyntheticSpec& s) {
  nlohmann::json j = preset_config(s.preset);
  if (s.layers > 0) {
    AFD_REQUIRE(s.layers <= j["num_hidden_layers"].get<int>(), "synthetic ", s.preset, ": layers = ", s.layers,
                " exceeds the preset's ", j["num_hidden_layers"].get<int>());
    j["num_hidden_layers"] = s.layers;
  }
  return parse_model_config(j, "preset " + s.preset);
}

std::shared_ptr<const Bf16Weights> make_synthetic_weights(const SyntheticSpec& s, unsigned parts, bool show_progress,
                                                           const LoadOptions& opt) {
  auto w = std::make_shared<Bf16Weights>();
  w->cfg = synthetic_config(s);
  w->dir = "synthetic:" + s.preset;
  w->parts = parts;
  const ModelConfig& c = w->cfg;
  // The routed experts of an fp8 preset stay fp8 when asked, as a checkpoint's would (load_weights).
  const bool fp8 = opt.keep_fp8_experts && c.fp8 && c.fp8_block_cols == 128;
  PlanInputs in;
  in.fp8_experts = fp8;
  const MemoryPlan plan = plan_memory(c, in);
  int64_t need = 0;
  if (parts & kWeightsEmbed) need += plan.embed_bytes;
  if (parts & kWeightsAttn) need += plan.attn_bytes;
  if (parts & kWeightsFfn) need += plan.routed_bytes + plan.ffn_other_bytes;
  if (parts & kWeightsHead) need += plan.head_bytes;
  const int64_t avail = static_cast<int64_t>(sysconf(_SC_AVPHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  AFD_REQUIRE(need < avail, "synthetic ", s.preset, " with ", c.num_layers, " layers needs ", need >> 20,
              " MiB of host memory for its weights but only ", avail >> 20, " MiB are free; use fewer layers");
  std::unique_ptr<Progress> bar;
  if (show_progress) bar = std::make_unique<Progress>("synthesising " + s.preset, static_cast<uint64_t>(need));
  Gen g(s.seed, bar.get());
  const int h = c.hidden_size, H = c.num_heads;
  if (parts & kWeightsEmbed) w->embed = g.linear(c.vocab_size, h).w;
  for (int l = 0; l < c.num_layers; ++l) {
    if (parts & kWeightsAttn) {
      AttnLayer<uint16_t> a;
      a.input_norm = g.norm(h);
      if (c.is_mla()) {
        const int qk = c.qk_head_dim();
        if (c.q_lora_rank > 0) {
          a.q_a = g.linear(c.q_lora_rank, h);
          a.q_a_norm = g.norm(c.q_lora_rank);
          a.q_b = g.linear(H * qk, c.q_lora_rank);
        } else {
          a.q_proj = g.linear(H * qk, h);
        }
        a.kv_a = g.linear(c.kv_lora_rank + c.qk_rope_dim, h);
        a.kv_a_norm = g.norm(c.kv_lora_rank);
        a.kv_b = g.linear(H * (c.qk_nope_dim + c.v_head_dim), c.kv_lora_rank);
        a.o_proj = g.linear(h, H * c.v_head_dim);
      } else {
        a.q_proj = g.linear(H * c.head_dim, h);
        a.k_proj = g.linear(c.num_kv_heads * c.head_dim, h);
        a.v_proj = g.linear(c.num_kv_heads * c.head_dim, h);
        a.o_proj = g.linear(h, H * c.head_dim);
        if (c.qk_norm) {
          a.q_norm = g.norm(c.head_dim);
          a.k_norm = g.norm(c.head_dim);
        }
      }
      w->attn.push_back(std::move(a));
    }
    if (parts & kWeightsFfn) {
      FfnLayer<uint16_t> f;
      f.post_norm = g.norm(h);
      f.moe = c.is_moe_layer(l);
      if (!f.moe) {
        f.dense = g.mlp(h, c.intermediate_size);
      } else {
        f.router = g.linear(c.n_routed_experts, h);
        if (c.arch == Arch::kDeepSeekV3) {
          for (int e = 0; e < c.n_routed_experts; ++e) {  // small correction biases in [-0.01, 0.01]
            const int step = static_cast<int>(splitmix64(s.seed ^ (static_cast<uint64_t>(l) * 4096 + e)) % 201);
            f.router_bias.push_back(0.01f * static_cast<float>(step - 100) / 100.0f);
          }
        }
        for (int e = 0; e < c.n_routed_experts; ++e)
          f.experts.push_back(fp8 ? g.fp8_mlp(h, c.moe_intermediate_size, c.fp8_block_rows, c.fp8_block_cols)
                                  : g.mlp(h, c.moe_intermediate_size));
        f.has_shared = c.n_shared_experts > 0;
        if (f.has_shared) f.shared = g.mlp(h, c.shared_intermediate());
      }
      w->ffn.push_back(std::move(f));
    }
  }
  if (parts & kWeightsHead) {
    w->final_norm = g.norm(h);
    w->lm_head = g.linear(c.vocab_size, h);
  }
  if (bar) bar->finish();
  return w;
}

}  // namespace afd
