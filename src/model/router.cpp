#include "model/router.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "util/error.h"

namespace afd {

void topk_indices(const float* v, int n, int k, int* out) {
  AFD_CHECK(k <= n);
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [v](int a, int b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  std::copy(order.begin(), order.begin() + k, out);
}

namespace {

void softmax_inplace(std::vector<float>& p) {
  const float mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (float& x : p) {
    x = std::exp(x - mx);
    sum += x;
  }
  for (float& x : p) x = static_cast<float>(x / sum);
}

constexpr float kInf = std::numeric_limits<float>::infinity();

// v[order[k - 1]] - v[order[k]] for v sorted descending (k < n), +inf when k >= n or the next one is masked (-inf
// or `masked`).
float gap_after(const float* v, int n, int k, float masked) {
  if (k >= n) return kInf;
  std::vector<int> order(k + 1);
  topk_indices(v, n, k + 1, order.data());
  const float next = v[order[k]];
  return next == masked || next == -kInf ? kInf : v[order[k - 1]] - next;
}

// Masks every expert outside the `topk_group` best groups with `fill`. `group_score(g)` scores group g. `gap`
// (optional): the gap between the last kept group's score and the best dropped one's.
template <typename GroupScore>
void mask_groups(const ModelConfig& c, std::vector<float>& scores, float fill, GroupScore group_score,
                 float* gap = nullptr) {
  const int G = c.n_group, per = c.n_routed_experts / G;
  std::vector<float> gs(G);
  for (int g = 0; g < G; ++g) gs[g] = group_score(g, per);
  std::vector<int> keep(c.topk_group);
  topk_indices(gs.data(), G, c.topk_group, keep.data());
  for (int g = 0; g < G; ++g)
    if (std::find(keep.begin(), keep.end(), g) == keep.end())
      std::fill(scores.begin() + g * per, scores.begin() + (g + 1) * per, fill);
  if (gap) *gap = gap_after(gs.data(), G, c.topk_group, -kInf);
}

}  // namespace

void route_token_f32(const ModelConfig& c, const float* logits, const float* bias, int* idx, float* w, float* margin) {
  const int E = c.n_routed_experts, k = c.top_k;
  std::vector<float> p(logits, logits + E);
  float group_gap = kInf;
  switch (c.router) {
    case RouterKind::kSigmoidGroupTopk: {
      for (float& x : p) x = 1.0f / (1.0f + std::exp(-x));
      std::vector<float> sc(E);
      for (int e = 0; e < E; ++e) sc[e] = p[e] + (bias ? bias[e] : 0.0f);
      const std::vector<float> unmasked = sc;
      mask_groups(
          c, sc, -kInf,
          [&](int g, int per) {
            int top2[2];
            topk_indices(unmasked.data() + g * per, per, 2, top2);
            return unmasked[g * per + top2[0]] + unmasked[g * per + top2[1]];
          },
          margin ? &group_gap : nullptr);
      topk_indices(sc.data(), E, k, idx);
      if (margin) *margin = std::min(group_gap, gap_after(sc.data(), E, k, -kInf));
      float sum = 0;
      for (int i = 0; i < k; ++i) sum += (w[i] = p[idx[i]]);
      for (int i = 0; i < k; ++i) {
        if (c.norm_topk_prob) w[i] /= (sum + 1e-20f);
        w[i] *= static_cast<float>(c.routed_scaling_factor);
      }
      return;
    }
    case RouterKind::kSoftmaxGroupGreedy:
    case RouterKind::kSoftmaxGreedy: {
      softmax_inplace(p);
      if (c.router == RouterKind::kSoftmaxGroupGreedy) {
        const std::vector<float> unmasked = p;
        mask_groups(
            c, p, 0.0f,
            [&](int g, int per) {
              return *std::max_element(unmasked.begin() + g * per, unmasked.begin() + (g + 1) * per);
            },
            margin ? &group_gap : nullptr);
      }
      topk_indices(p.data(), E, k, idx);
      if (margin) *margin = std::min(group_gap, gap_after(p.data(), E, k, c.router == RouterKind::kSoftmaxGroupGreedy ? 0.0f : -kInf));
      for (int i = 0; i < k; ++i) w[i] = p[idx[i]] * static_cast<float>(c.routed_scaling_factor);
      return;
    }
    case RouterKind::kSoftmaxTopk: {
      softmax_inplace(p);
      topk_indices(p.data(), E, k, idx);
      if (margin) *margin = gap_after(p.data(), E, k, -kInf);
      float sum = 0;
      for (int i = 0; i < k; ++i) sum += (w[i] = p[idx[i]]);
      if (c.norm_topk_prob)
        for (int i = 0; i < k; ++i) w[i] /= sum;
      return;
    }
  }
}

}  // namespace afd
