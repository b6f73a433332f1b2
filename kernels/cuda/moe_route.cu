#include <cfloat>

#include "cuda/moe_route.cuh"
#include "util/error.h"

namespace afd::cuda {

namespace {

constexpr int kTokensPerBlock = 4;  // one warp per token
constexpr int kMaxK = 16;

// (v, i) beats (bv, bi): larger value, then lower index.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

__device__ __forceinline__ void warp_best(float& v, int& i) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (better(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

// Warp per token. Shared memory per warp: s[E] (the scores the weights come from) and c[E] (the scores that choose).
// Expert e belongs to lane e % 32; lane-local bit e / 32 of `taken` marks it chosen.
__global__ void route_kernel(RouteParams p) {
  extern __shared__ float sm[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int t = blockIdx.x * kTokensPerBlock + warp;
  if (t >= p.tokens) return;  // whole warps leave; no block-wide barrier follows
  const int E = p.experts;
  float* s = sm + warp * 2 * E;
  float* c = s + E;
  auto logit = [&](int e) {
    const int64_t o = static_cast<int64_t>(t) * E + e;
    return p.logits ? p.logits[o] : __bfloat162float(p.logits_bf16[o]);
  };
  if (p.kind == RouteKind::kSigmoidGroupTopk) {
    for (int e = lane; e < E; e += 32) {
      const float v = 1.0f / (1.0f + expf(-logit(e)));
      s[e] = v;
      c[e] = v + (p.bias ? p.bias[e] : 0.0f);
    }
  } else {  // softmax over all experts; the sum in double as the reference does
    float mx = -FLT_MAX;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, logit(e));
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    double sum = 0.0;
    for (int e = lane; e < E; e += 32) {
      const float v = expf(logit(e) - mx);
      s[e] = v;
      sum += v;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    for (int e = lane; e < E; e += 32) c[e] = s[e] = static_cast<float>(s[e] / sum);
  }
  __syncwarp();

  const bool grouped = (p.kind == RouteKind::kSigmoidGroupTopk || p.kind == RouteKind::kSoftmaxGroupGreedy) &&
                       p.n_group > 1;
  if (grouped) {
    const int G = p.n_group, per = E / G;
    float gs = -INFINITY;  // lane g holds group g's score
    if (lane < G) {
      if (p.kind == RouteKind::kSigmoidGroupTopk) {  // sum of the two largest (as a multiset)
        float m1 = -INFINITY, m2 = -INFINITY;
        for (int e = lane * per; e < (lane + 1) * per; ++e) {
          const float v = c[e];
          if (v > m1) {
            m2 = m1;
            m1 = v;
          } else if (v > m2) {
            m2 = v;
          }
        }
        gs = m1 + m2;
      } else {
        for (int e = lane * per; e < (lane + 1) * per; ++e) gs = fmaxf(gs, c[e]);
      }
    }
    unsigned keep = 0, gtaken = 0;
    for (int j = 0; j < p.topk_group; ++j) {
      float v = (lane < G && !(gtaken >> lane & 1u)) ? gs : -INFINITY;
      int i = (lane < G && !(gtaken >> lane & 1u)) ? lane : 0x7fffffff;
      warp_best(v, i);
      keep |= 1u << i;
      gtaken |= 1u << i;
    }
    const float fill = p.kind == RouteKind::kSigmoidGroupTopk ? -INFINITY : 0.0f;
    __syncwarp();
    for (int e = lane; e < E; e += 32)
      if (!(keep >> (e / per) & 1u)) c[e] = fill;
    __syncwarp();
  }

  uint32_t taken = 0;
  float w[kMaxK];
  int idx[kMaxK];
  for (int j = 0; j < p.k; ++j) {
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int e = lane, slot = 0; e < E; e += 32, ++slot)
      if (!(taken >> slot & 1u) && better(c[e], e, bv, bi)) {
        bv = c[e];
        bi = e;
      }
    warp_best(bv, bi);
    if ((bi & 31) == lane) taken |= 1u << (bi >> 5);
    idx[j] = bi;
    // The weight comes from the unbiased score (V3) or the (masked, for group_limited_greedy) probability.
    w[j] = p.kind == RouteKind::kSoftmaxGroupGreedy ? c[bi] : s[bi];
  }
  if (lane != 0) return;
  float sum = 0.0f;
  for (int j = 0; j < p.k; ++j) sum += w[j];
  for (int j = 0; j < p.k; ++j) {
    float v = w[j];
    switch (p.kind) {
      case RouteKind::kSigmoidGroupTopk:
        if (p.norm_topk) v /= (sum + 1e-20f);
        v *= p.scale;
        break;
      case RouteKind::kSoftmaxGreedy:
      case RouteKind::kSoftmaxGroupGreedy:
        v *= p.scale;
        break;
      case RouteKind::kSoftmaxTopk:
        if (p.norm_topk) v /= sum;
        if (p.round_weights_bf16) v = __bfloat162float(__float2bfloat16_rn(v));
        break;
    }
    p.ids[t * p.k + j] = idx[j];
    p.weights[t * p.k + j] = v;
  }
}

}  // namespace

void route_topk_f32(const RouteParams& p, cudaStream_t stream) {
  AFD_CHECK(p.experts > 0 && p.experts <= 1024 && p.k > 0 && p.k <= kMaxK && p.k <= p.experts);
  AFD_CHECK(p.n_group >= 1 && p.n_group <= 32 && p.experts % p.n_group == 0);
  AFD_CHECK((p.logits != nullptr) != (p.logits_bf16 != nullptr));
  if (p.tokens == 0) return;
  const int blocks = (p.tokens + kTokensPerBlock - 1) / kTokensPerBlock;
  const size_t smem = kTokensPerBlock * 2 * p.experts * sizeof(float);
  route_kernel<<<blocks, kTokensPerBlock * 32, smem, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace afd::cuda
