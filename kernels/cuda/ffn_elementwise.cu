#include "cuda/ffn_elementwise.cuh"
#include "util/error.h"

namespace afd::cuda {

namespace {

__device__ __forceinline__ float rbf(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// One block per row; fp32 statistics with a fixed reduction order (deterministic).
__global__ void rmsnorm_kernel(RmsNormParams p) {
  __shared__ float part[32];
  const int row = blockIdx.x;
  const __nv_bfloat16* x = p.x + static_cast<int64_t>(row) * p.dim;
  float s = 0.0f;
  for (int i = threadIdx.x; i < p.dim; i += blockDim.x) {
    const float v = __bfloat162float(x[i]);
    s += v * v;
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
  __nv_bfloat16* y = p.y + static_cast<int64_t>(row) * p.dim;
  for (int i = threadIdx.x; i < p.dim; i += blockDim.x) {
    y[i] = __float2bfloat16_rn(__bfloat162float(p.w[i]) * rbf(__bfloat162float(x[i]) * r));
  }
}

__global__ void silu_mul_kernel(SiluMulParams p) {
  const int64_t pairs = static_cast<int64_t>(p.rows) * (p.width / 2);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < pairs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / (p.width / 2), c = (i % (p.width / 2)) * 2;
    const __nv_bfloat16* row = p.gu + r * 2 * p.width;
    const float2 g = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(row + c));
    const float2 u = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(row + p.width + c));
    const float a0 = rbf(rbf(g.x / (1.0f + expf(-g.x))) * u.x);
    const float a1 = rbf(rbf(g.y / (1.0f + expf(-g.y))) * u.y);
    *reinterpret_cast<__nv_bfloat162*>(p.out + r * p.width + c) = __floats2bfloat162_rn(a0, a1);
  }
}

// One block per token, threads over pairs of hidden columns (bf16x2 loads and stores).
__global__ void combine_kernel(CombineParams p) {
  const int t = blockIdx.x;
  for (int d = 2 * threadIdx.x; d < p.hidden; d += 2 * blockDim.x) {
    const int64_t o = static_cast<int64_t>(t) * p.hidden + d;
    float2 f;
    if (p.y) {
      float2 acc = make_float2(0.0f, 0.0f);
      for (int j = 0; j < p.k; ++j) {
        const float w = p.weights[t * p.k + j];
        const float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(
            p.y + static_cast<int64_t>(p.slot_row[t * p.k + j]) * p.hidden + d));
        acc.x += p.round_products ? rbf(y.x * w) : y.x * w;
        acc.y += p.round_products ? rbf(y.y * w) : y.y * w;
      }
      f = make_float2(rbf(acc.x), rbf(acc.y));
      if (p.extra) {
        const float2 e = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p.extra + o));
        f = make_float2(rbf(f.x + e.x), rbf(f.y + e.y));
      }
    } else {
      f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p.extra + o));
    }
    __nv_bfloat162* xo = reinterpret_cast<__nv_bfloat162*>(p.x + o);
    const float2 x = __bfloat1622float2(*xo);
    *xo = __floats2bfloat162_rn(x.x + f.x, x.y + f.y);
  }
}

int grid_for(int64_t n, int threads) {
  return static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 4 * 132 * 8));
}

}  // namespace

void rmsnorm_bf16_bf16(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return;
  rmsnorm_kernel<<<p.rows, 256, 0, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

void silu_mul_bf16_bf16(const SiluMulParams& p, cudaStream_t stream) {
  AFD_CHECK(p.width % 2 == 0);
  const int64_t pairs = static_cast<int64_t>(p.rows) * (p.width / 2);
  if (pairs == 0) return;
  silu_mul_kernel<<<grid_for(pairs, 256), 256, 0, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

void combine_residual_bf16(const CombineParams& p, cudaStream_t stream) {
  AFD_CHECK((p.y || p.extra) && p.hidden % 2 == 0);
  if (p.tokens == 0) return;
  combine_kernel<<<p.tokens, 256, 0, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace afd::cuda
