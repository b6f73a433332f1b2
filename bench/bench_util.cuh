// Helpers of afd-bench-moe-gpu: synthetic data on the device, event timing, and a per-stage breakdown of the
// FFN layer.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

#include "moe_gpu/ffn_layer.h"
#include "util/error.h"

namespace afd::bench {

using gpu::bf16;


static __global__ void fill_kernel(bf16* p, int64_t n, uint64_t seed, float scale, float offset) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    p[i] = __float2bfloat16_rn(offset + scale * (static_cast<float>(z >> 40) / 16777216.0f * 2.0f - 1.0f));
  }
}
inline void fill(bf16* p, int64_t n, uint64_t seed, float scale, float offset = 0.0f) {
  fill_kernel<<<4096, 256>>>(p, n, seed, scale, offset);
  AFD_CUDA_CHECK(cudaGetLastError());
}

// Random e4m3 bytes (no NaN codes) and fp32 values in [lo, hi), reproducible from the seed.
static __global__ void fill_fp8_kernel(uint8_t* p, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
    const uint8_t b = static_cast<uint8_t>(z >> 56);
    p[i] = (b & 0x7f) == 0x7f ? b ^ 1 : b;
  }
}
static __global__ void fill_f32_kernel(float* p, int64_t n, uint64_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
    p[i] = lo + (hi - lo) * (static_cast<float>(z >> 40) / 16777216.0f);
  }
}
inline void fill_fp8(uint8_t* p, int64_t n, uint64_t seed) {
  fill_fp8_kernel<<<4096, 256>>>(p, n, seed);
  AFD_CUDA_CHECK(cudaGetLastError());
}
inline void fill_f32(float* p, int64_t n, uint64_t seed, float lo, float hi) {
  fill_f32_kernel<<<4096, 256>>>(p, n, seed, lo, hi);
  AFD_CUDA_CHECK(cudaGetLastError());
}

// Median of `reps` timings (ms) of fn() on `s`, after `warm` untimed runs.
inline double time_ms(cudaStream_t s, int warm, int reps, const std::function<void()>& fn) {
  for (int i = 0; i < warm; ++i) fn();
  cudaEvent_t a, b;
  AFD_CUDA_CHECK(cudaEventCreate(&a));
  AFD_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> t(reps);
  for (int i = 0; i < reps; ++i) {
    AFD_CUDA_CHECK(cudaEventRecord(a, s));
    fn();
    AFD_CUDA_CHECK(cudaEventRecord(b, s));
    AFD_CUDA_CHECK(cudaEventSynchronize(b));
    AFD_CUDA_CHECK(cudaEventElapsedTime(&t[i], a, b));
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[reps / 2];
}

// Per-stage times of the layer (default tile, stream launches, no graph): events recorded between stages, the
// median over 30 runs of each interval (launch gaps included).
inline void stage_breakdown(const ModelConfig& c, const gpu::FfnLayerDev& L, const gpu::FfnWorkspace& ws,
                     cublasHandle_t blas, const bf16* x0, int n, cudaStream_t s) {
  struct Ctx {
    cudaStream_t s;
    std::vector<cudaEvent_t> ev;
    std::vector<const char*> names;
    size_t used = 0;
  } ctx{s, std::vector<cudaEvent_t>(16), {}, 0};
  for (auto& e : ctx.ev) AFD_CUDA_CHECK(cudaEventCreate(&e));
  const gpu::StageMarks marks{[](void* p, const char* stage) {
                                auto* c = static_cast<Ctx*>(p);
                                AFD_CUDA_CHECK(cudaEventRecord(c->ev[c->used++], c->s));
                                c->names.push_back(stage);
                              },
                              &ctx};
  std::vector<std::vector<float>> t;
  for (int rep = 0; rep < 33; ++rep) {
    ctx.used = 0;
    ctx.names.assign(1, "copy_x");
    AFD_CUDA_CHECK(cudaEventRecord(ctx.ev[ctx.used++], s));
    AFD_CUDA_CHECK(cudaMemcpyAsync(ws.x, x0, static_cast<size_t>(n) * c.hidden_size * 2, cudaMemcpyDeviceToDevice, s));
    AFD_CUDA_CHECK(cudaEventRecord(ctx.ev[ctx.used++], s));
    gpu::run_ffn_layer(c, L, ws, blas, ws.x, n, s, nullptr, &marks);
    AFD_CUDA_CHECK(cudaStreamSynchronize(s));
    if (rep < 3) continue;
    t.resize(ctx.used - 1);
    for (size_t i = 0; i + 1 < ctx.used; ++i) {
      float ms;
      AFD_CUDA_CHECK(cudaEventElapsedTime(&ms, ctx.ev[i], ctx.ev[i + 1]));
      t[i].push_back(ms * 1000.0f);
    }
  }
  std::printf("    stages (us):");
  for (size_t i = 0; i < t.size(); ++i) {
    std::sort(t[i].begin(), t[i].end());
    std::printf(" %s %.1f", ctx.names[i], t[i][t[i].size() / 2]);
  }
  std::printf("\n");
  for (auto& e : ctx.ev) cudaEventDestroy(e);
}

}  // namespace afd::bench
