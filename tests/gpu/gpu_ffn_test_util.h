// Shared by the GpuFfn tests: the models they run, bf16 inputs that are random and never zero, and the reference
// routing of a token computed the way ReferenceModel::ffn_half does (fp32 norm and router).
#pragma once

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../test_util.h"
#include "model/reference.h"
#include "model/router.h"
#include "model/weights.h"
#include "moe_gpu/gpu_ffn.h"
#include "util/numeric.h"

namespace afd::test {

inline std::vector<std::string> gpu_test_models() {
  return {"dsv3_tiny", "dsv2lite_tiny", "qwen3moe_tiny", "dsv3_fp8_tiny", "mixtral_tiny", "mixtral_swa_tiny",
          "pystdlib-moe"};
}

// Both weight sets of a model: fp32 for the reference, bf16 (FFN + head parts) for the GPU.
struct ModelPair {
  std::shared_ptr<const RefWeights> ref_w;
  std::shared_ptr<const Bf16Weights> bf_w;
  std::unique_ptr<ReferenceModel> ref;
  explicit ModelPair(const std::string& name) {
    const std::string dir = fixture_model(name);
    ref_w = load_ref_weights(dir, false);
    bf_w = load_weights<uint16_t>(dir, kWeightsFfn | kWeightsHead, false);
    ref = std::make_unique<ReferenceModel>(ref_w);
  }
};

// [n, dim] bf16 bits with |value| in [0.05, 1.5] and random sign: never zero, as bf16 values exactly.
inline std::vector<uint16_t> random_bf16(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mag(0.05f, 1.5f);
  std::vector<uint16_t> v(count);
  for (auto& x : v) x = f32_to_bf16((rng() & 1) ? mag(rng) : -mag(rng));
  return v;
}

inline std::vector<float> to_f32(const std::vector<uint16_t>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = bf16_to_f32(v[i]);
  return f;
}

// The experts the fp32 reference picks for token row x (sorted ids).
inline std::vector<int> reference_experts(const RefWeights& w, int layer, const float* x) {
  const ModelConfig& c = w.cfg;
  const FfnLayer<float>& L = w.ffn[layer];
  std::vector<float> xn(c.hidden_size), logits(c.n_routed_experts), wts(c.top_k);
  ref_rmsnorm(x, L.post_norm.data(), c.hidden_size, c.rms_norm_eps, xn.data());
  ref_linear(xn.data(), 1, L.router, logits.data());
  std::vector<int> idx(c.top_k);
  route_token_f32(c, logits.data(), L.router_bias.empty() ? nullptr : L.router_bias.data(), idx.data(),
                  wts.data());
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace afd::test
