#include <cuda_fp8.h>

#include "cuda/fp8_dequant.cuh"
#include "util/error.h"

namespace afd::cuda {

namespace {
// One thread per element; a grid-stride loop so any size fits one launch.
__global__ void dequant_fp8_e4m3_bf16_kernel(Fp8DequantParams p) {
  const int64_t n = p.rows * p.cols;
  const int64_t scale_cols = (p.cols + p.block_cols - 1) / p.block_cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / p.cols, c = i % p.cols;
    __nv_fp8_e4m3 v;
    v.__x = p.q[i];
    const float s = p.scale[(r / p.block_rows) * scale_cols + c / p.block_cols];
    p.out[i] = __float2bfloat16_rn(static_cast<float>(v) * s);
  }
}
}  // namespace

void dequant_fp8_e4m3_bf16(const Fp8DequantParams& p, cudaStream_t stream) {
  AFD_CHECK(p.rows >= 0 && p.cols >= 0 && p.block_rows > 0 && p.block_cols > 0);
  const int64_t n = p.rows * p.cols;
  if (n == 0) return;
  constexpr int kThreads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535));
  dequant_fp8_e4m3_bf16_kernel<<<blocks, kThreads, 0, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace afd::cuda
