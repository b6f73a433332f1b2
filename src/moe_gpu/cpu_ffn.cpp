#include "moe_gpu/cpu_ffn.h"

#include <algorithm>
#include <cmath>

#include "model/router.h"
#include "util/error.h"
#include "util/numeric.h"

namespace afd {

namespace {
inline float rb(float v) { return round_bf16(v); }
inline float silu(float g) { return g / (1.0f + std::exp(-g)); }

// Scratch grows on demand; new float elements are NaN so that reading a value nobody wrote shows up in tests.
void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n, std::nanf(""));
}
}  // namespace

struct CpuFfn::LayerOps {
  bool moe = false;
  MlpOps dense, shared;
  bool has_shared = false;
  cpu::DnnlLinear router;
  std::vector<MlpOps> experts;
};

CpuFfn::CpuFfn(std::shared_ptr<const Bf16Weights> w, cpu::LinearPrecision p) : w_(std::move(w)) {
  AFD_REQUIRE((w_->parts & kWeightsFfn) && (w_->parts & kWeightsHead),
              "the CPU FFN needs the FFN and head parts of the weights");
  AFD_REQUIRE(!has_fp8_experts(*w_), "the CPU FFN needs dequantised experts; ", w_->dir,
              " was loaded with its fp8 experts kept (LoadOptions::keep_fp8_experts is for the GPU FFN)");
  auto lin = [p](const Linear<uint16_t>& l) { return cpu::DnnlLinear(l.w, l.b, l.out, l.in, p); };
  auto mlp_ops = [&](const Mlp<uint16_t>& m) { return MlpOps{lin(m.gate), lin(m.up), lin(m.down)}; };
  for (const FfnLayer<uint16_t>& L : w_->ffn) {
    auto ops = std::make_unique<LayerOps>();
    ops->moe = L.moe;
    if (!L.moe) {
      ops->dense = mlp_ops(L.dense);
    } else {
      // The router GEMM runs in f32 on every CPU: DeepSeek computes it in fp32 of upcast inputs, and for
      // Qwen3/Mixtral the bf16 GEMM's output is reproduced by rounding the f32 result (MODEL_SPEC.md 7).
      ops->router = cpu::DnnlLinear(L.router.w, {}, L.router.out, L.router.in, cpu::LinearPrecision::kF32);
      for (const auto& e : L.experts) ops->experts.push_back(mlp_ops(e));
      ops->has_shared = L.has_shared;
      if (L.has_shared) ops->shared = mlp_ops(L.shared);
    }
    layers_.push_back(std::move(ops));
  }
  lm_head_ = lin(w_->lm_head);
}

CpuFfn::~CpuFfn() = default;

std::string CpuFfn::name() const {
  return std::string("cpu (oneDNN ") + (lm_head_.is_bf16() ? "bf16" : "f32") + " matmul, " + cpu::dnnl_isa_name() +
         ")";
}

// out[i] = bf16(w * bf16(x_i / rms(x_i)))  (transformers RMSNorm on bf16 input)
void CpuFfn::rmsnorm_rows(const uint16_t* x, const std::vector<uint16_t>& w, int n, float* out) const {
  const int h = config().hidden_size;
  const float eps = config().rms_norm_eps;
  for (int i = 0; i < n; ++i) {
    const uint16_t* xi = x + static_cast<size_t>(i) * h;
    float ss = 0.0f;
    for (int d = 0; d < h; ++d) {
      const float v = bf16_to_f32(xi[d]);
      ss += v * v;
    }
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(h) + eps);
    for (int d = 0; d < h; ++d) out[static_cast<size_t>(i) * h + d] = rb(bf16_to_f32(w[d]) * rb(bf16_to_f32(xi[d]) * r));
  }
}

// out[rows, hidden] = bf16(down(bf16(bf16(silu(bf16(gate x))) * bf16(up x))))
void CpuFfn::mlp(const MlpOps& m, const float* x, int rows, float* out) {
  const size_t width = static_cast<size_t>(m.gate.out());
  grow(gbuf_, rows * width);
  grow(ubuf_, rows * width);
  m.gate.forward(x, rows, gbuf_.data());
  m.up.forward(x, rows, ubuf_.data());
  for (size_t i = 0; i < rows * width; ++i) gbuf_[i] = rb(rb(silu(rb(gbuf_[i]))) * rb(ubuf_[i]));
  m.down.forward(gbuf_.data(), rows, out);
  const size_t total = static_cast<size_t>(rows) * m.down.out();
  for (size_t i = 0; i < total; ++i) out[i] = rb(out[i]);
}

void CpuFfn::ffn_half(int layer, uint16_t* x, int n) {
  const ModelConfig& c = config();
  AFD_CHECK(layer >= 0 && layer < c.num_layers, "layer ", layer);
  if (n == 0) return;
  const int h = c.hidden_size;
  const size_t nh = static_cast<size_t>(n) * h;
  const LayerOps& ops = *layers_[layer];
  const FfnLayer<uint16_t>& L = w_->ffn[layer];
  grow(xn_, nh);
  grow(acc_, nh);
  rmsnorm_rows(x, L.post_norm, n, xn_.data());
  if (!ops.moe) {
    mlp(ops.dense, xn_.data(), n, acc_.data());
  } else {
    const int E = c.n_routed_experts, k = c.top_k;
    grow(logits_, static_cast<size_t>(n) * E);
    ops.router.forward(xn_.data(), n, logits_.data());
    const bool bf16_router = c.arch == Arch::kQwen3Moe || c.arch == Arch::kMixtral;
    last_idx_.resize(static_cast<size_t>(n) * k);
    last_w_.resize(static_cast<size_t>(n) * k);
    const float* bias = L.router_bias.empty() ? nullptr : L.router_bias.data();
    for (int i = 0; i < n; ++i) {
      float* lg = &logits_[static_cast<size_t>(i) * E];
      if (bf16_router)
        for (int e = 0; e < E; ++e) lg[e] = rb(lg[e]);
      route_token_f32(c, lg, bias, &last_idx_[i * k], &last_w_[i * k]);
      if (c.arch == Arch::kQwen3Moe)  // Qwen3 casts the routing weights to the logits' dtype (bf16)
        for (int j = 0; j < k; ++j) last_w_[i * k + j] = rb(last_w_[i * k + j]);
    }
    // Group (token, slot) pairs by expert, run each expert once over its rows, accumulate in fp32.
    std::fill(acc_.begin(), acc_.begin() + nh, 0.0f);
    // Counting sort of the n*k (token, slot) pairs by expert: pairs of expert e are
    // order_[start_[e] .. start_[e+1]), each pair t meaning token t / k, slot t % k.
    start_.assign(E + 1, 0);
    for (int t = 0; t < n * k; ++t) ++start_[last_idx_[t] + 1];
    for (int e = 0; e < E; ++e) start_[e + 1] += start_[e];
    order_.resize(static_cast<size_t>(n) * k);
    fill_.assign(start_.begin(), start_.end() - 1);
    for (int t = 0; t < n * k; ++t) order_[fill_[last_idx_[t]]++] = t;
    for (int e = 0; e < E; ++e) {
      const int* pairs = order_.data() + start_[e];
      const int m = start_[e + 1] - start_[e];
      if (m == 0) continue;
      grow(rows_in_, static_cast<size_t>(m) * h);
      grow(rows_out_, static_cast<size_t>(m) * h);
      for (int r = 0; r < m; ++r)
        std::copy_n(&xn_[static_cast<size_t>(pairs[r] / k) * h], h, &rows_in_[static_cast<size_t>(r) * h]);
      mlp(ops.experts[e], rows_in_.data(), m, rows_out_.data());
      for (int r = 0; r < m; ++r) {
        const float wt = last_w_[pairs[r]];
        float* a = &acc_[static_cast<size_t>(pairs[r] / k) * h];
        const float* y = &rows_out_[static_cast<size_t>(r) * h];
        // Qwen3 multiplies in bf16 (bf16 products, fp32 sum); the others multiply in fp32.
        if (c.arch == Arch::kQwen3Moe)
          for (int d = 0; d < h; ++d) a[d] += rb(y[d] * wt);
        else
          for (int d = 0; d < h; ++d) a[d] += y[d] * wt;
      }
    }
    for (size_t i = 0; i < nh; ++i) acc_[i] = rb(acc_[i]);
    if (ops.has_shared) {
      grow(shared_, nh);
      mlp(ops.shared, xn_.data(), n, shared_.data());
      for (size_t i = 0; i < nh; ++i) acc_[i] = rb(acc_[i] + shared_[i]);
    }
  }
  for (size_t i = 0; i < nh; ++i) x[i] = f32_to_bf16(bf16_to_f32(x[i]) + acc_[i]);
}

void CpuFfn::logits(const uint16_t* x, int n, float* out) {
  if (n == 0) return;
  grow(xn_, static_cast<size_t>(n) * config().hidden_size);
  rmsnorm_rows(x, w_->final_norm, n, xn_.data());
  lm_head_.forward(xn_.data(), n, out);
  const size_t total = static_cast<size_t>(n) * config().vocab_size;
  for (size_t i = 0; i < total; ++i) out[i] = rb(out[i]);  // bf16 logits, as the bf16 model produces them
}

void CpuFfn::sample(const uint16_t* x, int n, const SamplingParams* params, const uint64_t* step, int32_t* out_ids) {
  const int V = config().vocab_size;
  grow(sample_logits_, static_cast<size_t>(n) * V);
  logits(x, n, sample_logits_.data());
  for (int i = 0; i < n; ++i)
    out_ids[i] = sample_token(&sample_logits_[static_cast<size_t>(i) * V], V, params[i], step[i]);
}

}  // namespace afd
