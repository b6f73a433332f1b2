#include "cuda/ffn_elementwise.cuh"
#include "util/error.h"

namespace afd::cuda {

namespace {

__device__ __forceinline__ float rbf(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// One block per row, 16-byte loads (dim % 8 == 0); fp32 statistics with a fixed reduction order (deterministic).
__global__ void rmsnorm_kernel(RmsNormParams p) {
  __shared__ float part[32];
  const int row = blockIdx.x, chunks = p.dim / 8;
  const uint4* x = reinterpret_cast<const uint4*>(p.x + static_cast<int64_t>(row) * p.dim);
  float s = 0.0f;
  for (int i = threadIdx.x; i < chunks; i += blockDim.x) {
    const uint4 v = x[i];
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = __bfloat1622float2(h[j]);
      s += f.x * f.x + f.y * f.y;
    }
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x < 32) {
    s = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (threadIdx.x == 0) part[0] = s;
  }
  __syncthreads();
  const float r = rsqrtf(part[0] / static_cast<float>(p.dim) + p.eps);
  const uint4* w = reinterpret_cast<const uint4*>(p.w);
  uint4* y = reinterpret_cast<uint4*>(p.y + static_cast<int64_t>(row) * p.dim);
  for (int i = threadIdx.x; i < chunks; i += blockDim.x) {
    const uint4 v = x[i], wv = w[i];
    uint4 o;
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
    const __nv_bfloat162* hw = reinterpret_cast<const __nv_bfloat162*>(&wv);
    __nv_bfloat162* ho = reinterpret_cast<__nv_bfloat162*>(&o);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = __bfloat1622float2(h[j]), g = __bfloat1622float2(hw[j]);
      ho[j] = __floats2bfloat162_rn(g.x * rbf(f.x * r), g.y * rbf(f.y * r));
    }
    y[i] = o;
  }
}

constexpr int kMaxTopK = 16;
constexpr int kCombineThreads = 128, kCombineCols = kCombineThreads * 8;  // 8 columns (16 B) per thread

// Block (column slice, token). The token's k rows and weights are read once into registers, so the k expert-row
// loads of a thread (16 B each) are independent.
__global__ void combine_kernel(CombineParams p) {
  const int t = blockIdx.y;
  int64_t rows[kMaxTopK];
  float wts[kMaxTopK];
  if (p.y && !p.routed_sum) {
#pragma unroll
    for (int j = 0; j < kMaxTopK; ++j)
      if (j < p.k) {
        rows[j] = static_cast<int64_t>(p.slot_row[t * p.k + j]) * p.hidden;
        wts[j] = p.weights[t * p.k + j];
      }
  }
  const int d = blockIdx.x * kCombineCols + 8 * threadIdx.x;
  if (d >= p.hidden) return;
  const int64_t o = static_cast<int64_t>(t) * p.hidden + d;
  float f[8];
  auto unpack = [](const uint4& v, float* out) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 x = __bfloat1622float2(h[i]);
      out[2 * i] = x.x;
      out[2 * i + 1] = x.y;
    }
  };
  if (p.routed_sum || p.y) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (p.routed_sum) {
      const float4* r = reinterpret_cast<const float4*>(p.routed_sum + o);
      const float4 a = r[0], b = r[1];
      acc[0] = a.x, acc[1] = a.y, acc[2] = a.z, acc[3] = a.w, acc[4] = b.x, acc[5] = b.y, acc[6] = b.z, acc[7] = b.w;
    } else {
      float y[8];
#pragma unroll
      for (int j = 0; j < kMaxTopK; ++j) {
        if (j >= p.k) break;
        unpack(*reinterpret_cast<const uint4*>(p.y + rows[j] + d), y);
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[i] += p.round_products ? rbf(y[i] * wts[j]) : y[i] * wts[j];
      }
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) f[i] = rbf(acc[i]);
    if (p.extra) {
      float e[8];
      unpack(*reinterpret_cast<const uint4*>(p.extra + o), e);
#pragma unroll
      for (int i = 0; i < 8; ++i) f[i] = rbf(f[i] + e[i]);
    }
  } else {
    unpack(*reinterpret_cast<const uint4*>(p.extra + o), f);
  }
  uint4* xo = reinterpret_cast<uint4*>(p.x + o);
  float x[8];
  unpack(*xo, x);
  uint4 out;
  __nv_bfloat162* ho = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
  for (int i = 0; i < 4; ++i) ho[i] = __floats2bfloat162_rn(x[2 * i] + f[2 * i], x[2 * i + 1] + f[2 * i + 1]);
  *xo = out;
}

// Block (column slice, token), as combine_kernel; slots of experts held elsewhere (-1) are skipped.
__global__ void partial_kernel(PartialCombineParams p) {
  const int t = blockIdx.y;
  const int d = blockIdx.x * kCombineCols + 8 * threadIdx.x;
  if (d >= p.hidden) return;
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int j = 0; j < p.k; ++j) {
    const int r = p.slot_row[t * p.k + j];
    if (r < 0) continue;
    const float w = p.weights[t * p.k + j];
    const uint4 v = *reinterpret_cast<const uint4*>(p.y + static_cast<int64_t>(r) * p.hidden + d);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 x = __bfloat1622float2(h[i]);
      acc[2 * i] += p.round_products ? rbf(x.x * w) : x.x * w;
      acc[2 * i + 1] += p.round_products ? rbf(x.y * w) : x.y * w;
    }
  }
  float4* out = reinterpret_cast<float4*>(p.out + static_cast<int64_t>(t) * p.hidden + d);
  out[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
  out[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
}

}  // namespace

void rmsnorm_bf16_bf16(const RmsNormParams& p, cudaStream_t stream) {
  AFD_CHECK(p.dim % 8 == 0, "dim ", p.dim);
  if (p.rows == 0) return;
  rmsnorm_kernel<<<p.rows, 128, 0, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

void combine_residual_bf16(const CombineParams& p, cudaStream_t stream) {
  AFD_CHECK((p.y || p.extra || p.routed_sum) && p.hidden % 8 == 0 && p.k <= kMaxTopK);
  if (p.tokens == 0) return;
  combine_kernel<<<dim3((p.hidden + kCombineCols - 1) / kCombineCols, p.tokens), kCombineThreads, 0, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

void combine_partial_f32(const PartialCombineParams& p, cudaStream_t stream) {
  AFD_CHECK(p.y && p.out && p.hidden % 8 == 0 && p.k <= kMaxTopK);
  if (p.tokens == 0) return;
  partial_kernel<<<dim3((p.hidden + kCombineCols - 1) / kCombineCols, p.tokens), kCombineThreads, 0, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace afd::cuda
