#include "model/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/rope.h"
#include "model/router.h"
#include "util/error.h"

namespace afd {

struct ReferenceModel::Rope {
  RopeTable table;
};

namespace {

float dot(const float* a, const float* b, int n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

float silu(float g) { return g / (1.0f + std::exp(-g)); }

// out[n, hidden] = down(silu(gate x) * up x) for each of n rows
void mlp_rows(const RefMlp& m, const float* x, int n, float* out) {
  const int I = m.gate.out;
  std::vector<float> g(static_cast<size_t>(n) * I), u(g.size());
  ref_linear(x, n, m.gate, g.data());
  ref_linear(x, n, m.up, u.data());
  for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
  ref_linear(g.data(), n, m.down, out);
}

}  // namespace

void ref_linear(const float* x, int n, const RefLinear& l, float* y) {
  for (int o = 0; o < l.out; ++o) {
    const float* w = l.w.data() + static_cast<size_t>(o) * l.in;
    const float b = l.b.empty() ? 0.0f : l.b[o];
    for (int i = 0; i < n; ++i) y[static_cast<size_t>(i) * l.out + o] = dot(x + static_cast<size_t>(i) * l.in, w, l.in) + b;
  }
}

void ref_rmsnorm(const float* x, const float* w, int dim, float eps, float* y) {
  const float ms = dot(x, x, dim) / static_cast<float>(dim);
  const float r = 1.0f / std::sqrt(ms + eps);
  for (int i = 0; i < dim; ++i) y[i] = w[i] * (x[i] * r);
}

ReferenceModel::ReferenceModel(std::shared_ptr<const RefWeights> w) : w_(std::move(w)) {
  AFD_CHECK(w_->parts == kWeightsAll, "the reference forward needs every part of the weights");
  auto r = std::make_shared<Rope>();
  r->table = make_rope_table(w_->cfg.rope, w_->cfg.rope_dim);
  rope_ = r;
}

RefKvCache ReferenceModel::new_cache() const {
  RefKvCache c;
  c.k.resize(config().num_layers);
  c.v.resize(config().num_layers);
  return c;
}

void ReferenceModel::embed(const int32_t* ids, int n, float* x) const {
  const ModelConfig& c = config();
  for (int i = 0; i < n; ++i) {
    AFD_REQUIRE(ids[i] >= 0 && ids[i] < c.vocab_size, "token id ", ids[i], " is outside the vocabulary (",
                c.vocab_size, " ids)");
    std::copy_n(w_->embed.data() + static_cast<size_t>(ids[i]) * c.hidden_size, c.hidden_size,
                x + static_cast<size_t>(i) * c.hidden_size);
  }
}

void ReferenceModel::attention_half(int layer, float* x, int n, RefKvCache& cache) const {
  const ModelConfig& c = config();
  const AttnLayer<float>& L = w_->attn[layer];
  const int h = c.hidden_size, H = c.num_heads, KV = c.num_kv_heads;
  const int qk = c.qk_head_dim(), vd = c.v_dim();
  const int past = static_cast<int>(cache.k[layer].size() / (static_cast<size_t>(KV) * qk));
  AFD_CHECK(cache.v[layer].size() == static_cast<size_t>(past) * KV * vd);

  std::vector<float> xn(static_cast<size_t>(n) * h);
  for (int i = 0; i < n; ++i) ref_rmsnorm(x + i * h, L.input_norm.data(), h, c.rms_norm_eps, xn.data() + i * h);

  // q [n, H, qk]; new k [n, KV, qk]; new v [n, KV, vd]
  std::vector<float> q(static_cast<size_t>(n) * H * qk), k(static_cast<size_t>(n) * KV * qk),
      v(static_cast<size_t>(n) * KV * vd);
  if (c.is_mla()) {
    constexpr float kLatentEps = 1e-6f;  // q_a / kv_a layernorms use the constructor default, not rms_norm_eps
    if (c.q_lora_rank > 0) {
      std::vector<float> qa(static_cast<size_t>(n) * c.q_lora_rank);
      ref_linear(xn.data(), n, L.q_a, qa.data());
      for (int i = 0; i < n; ++i)
        ref_rmsnorm(&qa[i * c.q_lora_rank], L.q_a_norm.data(), c.q_lora_rank, kLatentEps, &qa[i * c.q_lora_rank]);
      ref_linear(qa.data(), n, L.q_b, q.data());
    } else {
      ref_linear(xn.data(), n, L.q_proj, q.data());
    }
    const int lora = c.kv_lora_rank, rd = c.qk_rope_dim, nope = c.qk_nope_dim;
    std::vector<float> ckv(static_cast<size_t>(n) * (lora + rd)), lat(static_cast<size_t>(n) * lora);
    ref_linear(xn.data(), n, L.kv_a, ckv.data());
    for (int i = 0; i < n; ++i) ref_rmsnorm(&ckv[i * (lora + rd)], L.kv_a_norm.data(), lora, kLatentEps, &lat[i * lora]);
    std::vector<float> kv(static_cast<size_t>(n) * H * (nope + vd));
    ref_linear(lat.data(), n, L.kv_b, kv.data());
    for (int i = 0; i < n; ++i) {
      float* kpe = &ckv[i * (lora + rd) + lora];
      apply_rope_f32(c.rope_layout, rope_->table, past + i, kpe, rd);
      for (int hh = 0; hh < H; ++hh) {
        float* qh = &q[(static_cast<size_t>(i) * H + hh) * qk];
        apply_rope_f32(c.rope_layout, rope_->table, past + i, qh + nope, rd);
        const float* kvh = &kv[(static_cast<size_t>(i) * H + hh) * (nope + vd)];
        float* kh = &k[(static_cast<size_t>(i) * KV + hh) * qk];
        std::copy_n(kvh, nope, kh);
        std::copy_n(kpe, rd, kh + nope);
        std::copy_n(kvh + nope, vd, &v[(static_cast<size_t>(i) * KV + hh) * vd]);
      }
    }
  } else {
    ref_linear(xn.data(), n, L.q_proj, q.data());
    ref_linear(xn.data(), n, L.k_proj, k.data());
    ref_linear(xn.data(), n, L.v_proj, v.data());
    for (int i = 0; i < n; ++i) {
      for (int hh = 0; hh < H; ++hh) {
        float* qh = &q[(static_cast<size_t>(i) * H + hh) * qk];
        if (c.qk_norm) ref_rmsnorm(qh, L.q_norm.data(), qk, c.rms_norm_eps, qh);
        apply_rope_f32(c.rope_layout, rope_->table, past + i, qh, qk);
      }
      for (int hh = 0; hh < KV; ++hh) {
        float* kh = &k[(static_cast<size_t>(i) * KV + hh) * qk];
        if (c.qk_norm) ref_rmsnorm(kh, L.k_norm.data(), qk, c.rms_norm_eps, kh);
        apply_rope_f32(c.rope_layout, rope_->table, past + i, kh, qk);
      }
    }
  }
  cache.k[layer].insert(cache.k[layer].end(), k.begin(), k.end());
  cache.v[layer].insert(cache.v[layer].end(), v.begin(), v.end());

  // Causal attention (plus sliding window when set) of each new position over the cache.
  const float scale = c.softmax_scale();
  const int group = H / KV;
  const float* K = cache.k[layer].data();
  const float* V = cache.v[layer].data();
  std::vector<float> o(static_cast<size_t>(n) * H * vd), p(static_cast<size_t>(past + n));
  for (int i = 0; i < n; ++i) {
    const int qpos = past + i;
    const int first = c.sliding_window > 0 ? std::max(0, qpos - c.sliding_window + 1) : 0;
    for (int hh = 0; hh < H; ++hh) {
      const int kvh = hh / group;
      const float* qh = &q[(static_cast<size_t>(i) * H + hh) * qk];
      float mx = -std::numeric_limits<float>::infinity();
      for (int t = first; t <= qpos; ++t) {
        p[t] = dot(qh, K + (static_cast<size_t>(t) * KV + kvh) * qk, qk) * scale;
        mx = std::max(mx, p[t]);
      }
      float sum = 0.0f;
      for (int t = first; t <= qpos; ++t) sum += (p[t] = std::exp(p[t] - mx));
      float* oh = &o[(static_cast<size_t>(i) * H + hh) * vd];
      std::fill_n(oh, vd, 0.0f);
      for (int t = first; t <= qpos; ++t) {
        const float pt = p[t] / sum;
        const float* vt = V + (static_cast<size_t>(t) * KV + kvh) * vd;
        for (int d = 0; d < vd; ++d) oh[d] += pt * vt[d];
      }
    }
  }
  std::vector<float> out(static_cast<size_t>(n) * h);
  ref_linear(o.data(), n, L.o_proj, out.data());
  for (size_t i = 0; i < out.size(); ++i) x[i] += out[i];
}

void ReferenceModel::ffn_half(int layer, float* x, int n, float* last_margin) const {
  const ModelConfig& c = config();
  const FfnLayer<float>& L = w_->ffn[layer];
  const int h = c.hidden_size;
  std::vector<float> xn(static_cast<size_t>(n) * h), out(static_cast<size_t>(n) * h, 0.0f);
  for (int i = 0; i < n; ++i) ref_rmsnorm(x + i * h, L.post_norm.data(), h, c.rms_norm_eps, xn.data() + i * h);
  if (!L.moe) {
    mlp_rows(L.dense, xn.data(), n, out.data());
  } else {
    const int E = c.n_routed_experts, k = c.top_k;
    std::vector<float> logits(E), y(h);
    std::vector<int> idx(k);
    std::vector<float> wts(k);
    for (int i = 0; i < n; ++i) {
      const float* xi = xn.data() + static_cast<size_t>(i) * h;
      for (int e = 0; e < E; ++e) logits[e] = dot(xi, L.router.w.data() + static_cast<size_t>(e) * h, h);
      float margin = 0;
      route_token_f32(c, logits.data(), L.router_bias.empty() ? nullptr : L.router_bias.data(), idx.data(),
                      wts.data(), &margin);
      if (last_margin && i == n - 1) *last_margin = std::min(*last_margin, margin);
      float* oi = out.data() + static_cast<size_t>(i) * h;
      for (int j = 0; j < k; ++j) {
        mlp_rows(L.experts[idx[j]], xi, 1, y.data());
        for (int d = 0; d < h; ++d) oi[d] += wts[j] * y[d];
      }
    }
    if (L.has_shared) {
      std::vector<float> s(static_cast<size_t>(n) * h);
      mlp_rows(L.shared, xn.data(), n, s.data());
      for (size_t i = 0; i < s.size(); ++i) out[i] += s[i];
    }
  }
  for (size_t i = 0; i < out.size(); ++i) x[i] += out[i];
}

std::vector<float> ReferenceModel::logits(const float* x, int n) const {
  const ModelConfig& c = config();
  std::vector<float> xn(static_cast<size_t>(n) * c.hidden_size), out(static_cast<size_t>(n) * c.vocab_size);
  for (int i = 0; i < n; ++i)
    ref_rmsnorm(x + i * c.hidden_size, w_->final_norm.data(), c.hidden_size, c.rms_norm_eps, &xn[i * c.hidden_size]);
  ref_linear(xn.data(), n, w_->lm_head, out.data());
  return out;
}

std::vector<float> ReferenceModel::forward(const int32_t* ids, int n, RefKvCache& cache, bool all_logits,
                                           float* route_margin) const {
  if (route_margin) *route_margin = std::numeric_limits<float>::infinity();
  const ModelConfig& c = config();
  AFD_REQUIRE(n > 0, "forward needs at least one token");
  std::vector<float> x(static_cast<size_t>(n) * c.hidden_size);
  embed(ids, n, x.data());
  for (int l = 0; l < c.num_layers; ++l) {
    attention_half(l, x.data(), n, cache);
    ffn_half(l, x.data(), n, route_margin);
  }
  cache.len += n;
  if (all_logits) return logits(x.data(), n);
  return logits(x.data() + static_cast<size_t>(n - 1) * c.hidden_size, 1);
}

}  // namespace afd
