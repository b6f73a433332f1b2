#include <curand_kernel.h>

#include "cuda/sample.cuh"
#include "util/error.h"

namespace afd::cuda {

namespace {

constexpr int kThreads = 1024;

// Monotone 16-bit key of a bf16 value: a < b  <=>  key(a) < key(b) (NaN-free input).
__device__ __forceinline__ uint32_t key_of(__nv_bfloat16 v) {
  const uint32_t b = __bfloat16_as_ushort(v);
  return (b & 0x8000u) ? (~b & 0xffffu) : (b | 0x8000u);
}

// Fixed-order block reductions (every thread gets the result).
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T* buf) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if ((threadIdx.x & 31) == 0) buf[threadIdx.x >> 5] = v;
  __syncthreads();
  v = buf[0];
  for (int w = 1; w < kThreads / 32; ++w) v = op(v, buf[w]);
  return v;
}

// One block per row. Thread t owns the contiguous ids [t*chunk, (t+1)*chunk).
__global__ void __launch_bounds__(kThreads) sample_kernel(SampleParams p) {
  __shared__ float fbuf[32];
  __shared__ int ibuf[32];
  __shared__ float scan[kThreads];
  const int row = blockIdx.x;
  const RowSampling rp = p.rows_params[row];
  const __nv_bfloat16* l = p.logits + static_cast<int64_t>(row) * p.vocab;
  const int chunk = (p.vocab + kThreads - 1) / kThreads;
  const int lo = min(p.vocab, static_cast<int>(threadIdx.x) * chunk), hi = min(p.vocab, lo + chunk);
  auto fmax_op = [](float a, float b) { return fmaxf(a, b); };
  auto fadd_op = [](float a, float b) { return a + b; };
  auto iadd_op = [](int a, int b) { return a + b; };

  // Largest logit, lowest id among equals (also the greedy answer).
  float bv = -INFINITY;
  int bi = p.vocab;
  for (int i = lo; i < hi; ++i) {
    const float v = __bfloat162float(l[i]);
    if (v > bv) {
      bv = v;
      bi = i;
    }
  }
  const float mx = block_reduce(bv, fmax_op, fbuf);
  const int arg = block_reduce(bv == mx ? bi : p.vocab, [](int a, int b) { return min(a, b); }, ibuf);
  if (rp.temperature == 0.0f) {
    if (threadIdx.x == 0) p.out_ids[row] = arg;
    return;
  }
  const float inv_t = 1.0f / rp.temperature;
  // top-k cut: the largest key tk with count(key >= tk) >= K (binary search on 16-bit keys).
  uint32_t tk = 0;
  const int K = rp.top_k > 0 ? min(rp.top_k, p.vocab) : p.vocab;
  if (K < p.vocab) {
    uint32_t a = 0, b = 0xffff;  // invariant: count(key >= a) >= K
    while (a < b) {
      const uint32_t mid = (a + b + 1) >> 1;
      int cnt = 0;
      for (int i = lo; i < hi; ++i) cnt += key_of(l[i]) >= mid;
      if (block_reduce(cnt, iadd_op, ibuf) >= K) a = mid; else b = mid - 1;
    }
    tk = a;
  }
  auto mass_above = [&](uint32_t cut) {
    float m = 0.0f;
    for (int i = lo; i < hi; ++i)
      if (key_of(l[i]) >= cut) m += expf((__bfloat162float(l[i]) - mx) * inv_t);
    return block_reduce(m, fadd_op, fbuf);
  };
  uint32_t cut = tk;
  if (rp.top_p < 1.0f) {  // the largest cut >= tk whose mass reaches top_p of the top-k mass
    const float need = rp.top_p * mass_above(tk);
    uint32_t a = tk, b = 0xffff;  // invariant: mass(key >= a) >= need
    while (a < b) {
      const uint32_t mid = (a + b + 1) >> 1;
      if (mass_above(mid) >= need) a = mid; else b = mid - 1;
    }
    cut = a;
  }
  // Inverse CDF over the candidates in id order: per-thread sums, then an exclusive scan across threads.
  float mine = 0.0f;
  for (int i = lo; i < hi; ++i)
    if (key_of(l[i]) >= cut) mine += expf((__bfloat162float(l[i]) - mx) * inv_t);
  scan[threadIdx.x] = mine;
  __syncthreads();
  for (int o = 1; o < kThreads; o <<= 1) {
    const float v = threadIdx.x >= static_cast<unsigned>(o) ? scan[threadIdx.x - o] : 0.0f;
    __syncthreads();
    scan[threadIdx.x] += v;
    __syncthreads();
  }
  const float total = scan[kThreads - 1];
  curandStatePhilox4_32_10_t st;
  curand_init(rp.seed, rp.step, 0, &st);
  const float r = curand_uniform(&st) * total;  // (0, total]
  const float before = threadIdx.x ? scan[threadIdx.x - 1] : 0.0f;  // exclusive prefix: ranges tile (0, total]
  if (threadIdx.x == 0) ibuf[0] = -1;
  __syncthreads();
  if (mine > 0.0f && r > before && r <= scan[threadIdx.x]) {
    float acc = before;
    int pick = -1, last = -1;
    for (int i = lo; i < hi; ++i) {
      if (key_of(l[i]) < cut) continue;
      last = i;
      acc += expf((__bfloat162float(l[i]) - mx) * inv_t);
      if (acc >= r) {
        pick = i;
        break;
      }
    }
    atomicMax(&ibuf[0], pick >= 0 ? pick : last);  // at most one thread's range holds r (ranges are disjoint)
  }
  __syncthreads();
  if (threadIdx.x == 0) p.out_ids[row] = ibuf[0] >= 0 ? ibuf[0] : arg;  // r beyond rounding: the top token
}

__global__ void to_f32_kernel(ToF32Params p) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p.out[i] = __bfloat162float(p.in[i]);
}

}  // namespace

void sample_bf16(const SampleParams& p, cudaStream_t stream) {
  if (p.rows == 0) return;
  AFD_CHECK(p.vocab > 0);
  sample_kernel<<<p.rows, kThreads, 0, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

void bf16_to_f32(const ToF32Params& p, cudaStream_t stream) {
  if (p.n == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>((p.n + 255) / 256, 8192));
  to_f32_kernel<<<blocks, 256, 0, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace afd::cuda
