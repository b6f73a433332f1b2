// Routing against hand-worked cases: group limiting with negative scores, ties to the lower index, scaling.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "model/router.h"

using namespace afd;

namespace {
ModelConfig v3_cfg() {
  ModelConfig c;
  c.arch = Arch::kDeepSeekV3;
  c.router = RouterKind::kSigmoidGroupTopk;
  c.n_routed_experts = 8;
  c.top_k = 2;
  c.n_group = 4;
  c.topk_group = 2;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  return c;
}
float logit(float p) { return std::log(p / (1 - p)); }  // inverse sigmoid
}  // namespace

TEST_CASE("top-k breaks ties toward the lower index", "[router]") {
  const float v[] = {0.5f, 0.9f, 0.9f, 0.1f, 0.9f};
  int out[3];
  topk_indices(v, 5, 3, out);
  CHECK(out[0] == 1);
  CHECK(out[1] == 2);
  CHECK(out[2] == 4);
}

TEST_CASE("DeepSeek-V3 router: masked groups never win, even with negative bias-corrected scores", "[router]") {
  ModelConfig c = v3_cfg();
  // sigmoid scores; the bias makes groups 0 and 1 (experts 0..3) negative but group 0 still best by pair sum.
  const std::vector<float> s = {0.30f, 0.29f, 0.20f, 0.10f, 0.90f, 0.05f, 0.80f, 0.01f};
  const std::vector<float> bias = {-0.1f, -0.1f, -0.5f, -0.5f, -1.0f, -1.0f, -1.0f, -1.0f};
  // sc = {.2,.19,-.3,-.4,-.1,-.95,-.2,-.99}; group sums: g0 .39, g1 -.7, g2 -1.05, g3 -1.19 -> keep g0, g1
  std::vector<float> lg(8);
  for (int e = 0; e < 8; ++e) lg[e] = logit(s[e]);
  int idx[2];
  float w[2];
  route_token_f32(c, lg.data(), bias.data(), idx, w);
  CHECK(idx[0] == 0);
  CHECK(idx[1] == 1);
  // weights are the original sigmoid scores, renormalised, times 2.5
  CHECK(w[0] == Approx(0.30 / 0.59 * 2.5).epsilon(1e-5));
  CHECK(w[1] == Approx(0.29 / 0.59 * 2.5).epsilon(1e-5));
}

TEST_CASE("DeepSeek-V2 group_limited_greedy masks with 0 and scales without renormalising", "[router]") {
  ModelConfig c = v3_cfg();
  c.arch = Arch::kDeepSeekV2;
  c.router = RouterKind::kSoftmaxGroupGreedy;
  c.topk_group = 1;
  c.routed_scaling_factor = 16.0;
  const std::vector<float> lg = {0.0f, 3.0f, 2.9f, 2.8f, 1.0f, 1.0f, 0.0f, 0.0f};
  // group max: g0 3.0 (expert 1), g1 2.9 -> only group 0 kept: experts 1 then 0.
  int idx[2];
  float w[2];
  route_token_f32(c, lg.data(), nullptr, idx, w);
  CHECK(idx[0] == 1);
  CHECK(idx[1] == 0);
  double sum = 0;
  for (float x : lg) sum += std::exp(x);
  CHECK(w[0] == Approx(std::exp(3.0) / sum * 16).epsilon(1e-5));
  CHECK(w[1] == Approx(std::exp(0.0) / sum * 16).epsilon(1e-5));
}

TEST_CASE("softmax top-k renormalises only when asked", "[router]") {
  ModelConfig c;
  c.router = RouterKind::kSoftmaxTopk;
  c.n_routed_experts = 4;
  c.top_k = 2;
  const std::vector<float> lg = {1.0f, 2.0f, 0.5f, 2.0f};
  int idx[2];
  float w[2];
  c.norm_topk_prob = true;
  route_token_f32(c, lg.data(), nullptr, idx, w);
  CHECK(idx[0] == 1);
  CHECK(idx[1] == 3);
  CHECK(w[0] == Approx(0.5f));
  c.norm_topk_prob = false;
  route_token_f32(c, lg.data(), nullptr, idx, w);
  const double sum = std::exp(1.0) + 2 * std::exp(2.0) + std::exp(0.5);
  CHECK(w[0] == Approx(std::exp(2.0) / sum).epsilon(1e-5));
}

// The routing margin (how close a choice came to changing) that the engine tests use to recognise router near ties:
// the expert gap for plain top-k, and the smaller of the group and expert gaps for group-limited routers.
TEST_CASE("route_token_f32 reports how far each choice is from a tie", "[router]") {
  int idx[2];
  float w[2], margin = -1;
  ModelConfig c;
  c.router = RouterKind::kSoftmaxTopk;
  c.n_routed_experts = 4;
  c.top_k = 2;
  const std::vector<float> lg = {1.0f, 2.0f, 0.5f, 1.5f};  // chosen 1, 3; the best unchosen is 0
  route_token_f32(c, lg.data(), nullptr, idx, w, &margin);
  const double sum = std::exp(1.0) + std::exp(2.0) + std::exp(0.5) + std::exp(1.5);
  CHECK(margin == Approx((std::exp(1.5) - std::exp(1.0)) / sum).epsilon(1e-5));

  ModelConfig g = v3_cfg();
  g.arch = Arch::kDeepSeekV2;
  g.router = RouterKind::kSoftmaxGroupGreedy;
  g.n_group = 2;  // groups {0..3} and {4..7}
  g.topk_group = 1;
  // Group maxima 3.0 (group 0) and 2.9 (group 1): group 0 is kept by a small gap; inside it experts 0 (3.0) and
  // 1 (2.0) are chosen over 2 (1.0) by a larger one.
  const std::vector<float> lg2 = {3.0f, 2.0f, 1.0f, 0.0f, 2.9f, 0.0f, 0.0f, 0.0f};
  route_token_f32(g, lg2.data(), nullptr, idx, w, &margin);
  double s2 = 0;
  for (float x : lg2) s2 += std::exp(x);
  const double group_gap = (std::exp(3.0) - std::exp(2.9)) / s2, expert_gap = (std::exp(2.0) - std::exp(1.0)) / s2;
  REQUIRE(group_gap < expert_gap);
  CHECK(idx[0] == 0);
  CHECK(idx[1] == 1);
  CHECK(margin == Approx(group_gap).epsilon(1e-4));
  // A clear group choice leaves the expert gap.
  const std::vector<float> lg3 = {3.0f, 2.0f, 1.0f, 0.0f, 0.1f, 0.0f, 0.0f, 0.0f};
  route_token_f32(g, lg3.data(), nullptr, idx, w, &margin);
  double s3 = 0;
  for (float x : lg3) s3 += std::exp(x);
  CHECK(margin == Approx((std::exp(2.0) - std::exp(1.0)) / s3).epsilon(1e-4));
}
