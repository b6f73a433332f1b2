// RoPE tables and layouts: the worked constants of MODEL_SPEC.md 2.7 and 3, and the equivalence of the layouts.
#include <catch2/catch.hpp>
#include <cmath>
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "model/config.h"
#include "model/rope.h"

using namespace afd;

namespace {
ModelConfig full_v3(double mscale) {
  nlohmann::json j = {{"model_type", "deepseek_v3"}, {"vocab_size", 129280}, {"hidden_size", 7168},
                      {"num_hidden_layers", 61}, {"num_attention_heads", 128}, {"num_key_value_heads", 128},
                      {"q_lora_rank", 1536}, {"kv_lora_rank", 512}, {"qk_nope_head_dim", 128},
                      {"qk_rope_head_dim", 64}, {"v_head_dim", 128}, {"intermediate_size", 18432},
                      {"moe_intermediate_size", 2048}, {"n_routed_experts", 256}, {"num_experts_per_tok", 8},
                      {"max_position_embeddings", 163840}, {"rope_theta", 10000},
                      {"rope_scaling", {{"type", "yarn"}, {"factor", 40}, {"mscale", mscale},
                                        {"mscale_all_dim", mscale}, {"original_max_position_embeddings", 4096},
                                        {"beta_fast", 32}, {"beta_slow", 1}}}};
  return parse_model_config(j, "v3.json");
}
}  // namespace

TEST_CASE("YaRN constants of DeepSeek-V3 and V2", "[rope]") {
  const ModelConfig v3 = full_v3(1.0);
  CHECK(v3.softmax_scale() == Approx(0.13523378).epsilon(1e-6));
  const RopeTable t = make_rope_table(v3.rope, 64);
  CHECK(t.attention_scaling == 1.0f);
  // low = 10, high = 23: original frequencies up to i = 10, divided by 40 from i = 23.
  for (int i = 0; i < 32; ++i) {
    const double orig = 1.0 / std::pow(10000.0, 2.0 * i / 64);
    if (i <= 10) CHECK(t.inv_freq[i] == Approx(orig).epsilon(1e-5));
    if (i >= 23) CHECK(t.inv_freq[i] == Approx(orig / 40).epsilon(1e-5));
    if (i > 10 && i < 23) {
      CHECK(t.inv_freq[i] < orig);
      CHECK(t.inv_freq[i] > orig / 40);
    }
  }
  const ModelConfig v2 = full_v3(0.707);
  CHECK(v2.softmax_scale() == Approx(0.11472139).epsilon(1e-6));
}

TEST_CASE("the three RoPE layouts give the same q.k", "[rope]") {
  RopeConfig r;
  r.theta = 10000;
  const int d = 16;
  const RopeTable t = make_rope_table(r, d);
  auto q = test::random_floats(d, 1), k = test::random_floats(d, 2);
  // rotate_half on (x[i], x[i+d/2]) pairs equals the interleaved layouts on the same pairs re-ordered.
  std::vector<float> qi(d), ki(d);
  for (int i = 0; i < d / 2; ++i) {
    qi[2 * i] = q[i], qi[2 * i + 1] = q[i + d / 2];
    ki[2 * i] = k[i], ki[2 * i + 1] = k[i + d / 2];
  }
  auto dot = [](const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
  };
  const int pq = 37, pk = 11;
  auto q1 = q, k1 = k, q2 = qi, k2 = ki, q3 = qi, k3 = ki;
  apply_rope_f32(RopeLayout::kRotateHalf, t, pq, q1.data(), d);
  apply_rope_f32(RopeLayout::kRotateHalf, t, pk, k1.data(), d);
  apply_rope_f32(RopeLayout::kInterleavedOut, t, pq, q2.data(), d);
  apply_rope_f32(RopeLayout::kInterleavedOut, t, pk, k2.data(), d);
  apply_rope_f32(RopeLayout::kComplex, t, pq, q3.data(), d);
  apply_rope_f32(RopeLayout::kComplex, t, pk, k3.data(), d);
  CHECK(dot(q1, k1) == Approx(dot(q2, k2)).epsilon(1e-5));
  CHECK(dot(q1, k1) == Approx(dot(q3, k3)).epsilon(1e-5));
  // de-interleaved output equals rotate_half output element for element
  for (int i = 0; i < d; ++i) CHECK(q2[i] == Approx(q1[i]).margin(1e-6));
  // relative position only: shifting both positions keeps q.k
  auto q4 = q, k4 = k;
  apply_rope_f32(RopeLayout::kRotateHalf, t, pq + 5, q4.data(), d);
  apply_rope_f32(RopeLayout::kRotateHalf, t, pk + 5, k4.data(), d);
  CHECK(dot(q4, k4) == Approx(dot(q1, k1)).epsilon(1e-4));
}
