#include "cuda/moe_permute.cuh"
#include "util/error.h"

namespace afd::cuda {

namespace {

constexpr int kThreads = 1024;  // one thread per expert in the scan: experts <= 1024

__global__ void __launch_bounds__(kThreads) permute_kernel(PermuteParams p) {
  __shared__ int cnt[kThreads], rows[kThreads], tiles[kThreads];
  const int e = threadIdx.x, n = p.tokens * p.k;
  cnt[e] = 0;
  __syncthreads();
  for (int i = e; i < n; i += kThreads) {
    const int le = p.ids[i] - p.expert_lo;
    if (le >= 0 && le < p.experts) atomicAdd(&cnt[le], 1);
  }
  __syncthreads();
  const int c = cnt[e];  // 0 for e >= experts
  rows[e] = c;
  tiles[e] = (c + p.tile_rows - 1) / p.tile_rows;
  __syncthreads();
  for (int o = 1; o < kThreads; o <<= 1) {  // Hillis-Steele inclusive scans of rows and tiles
    const int r = e >= o ? rows[e - o] : 0, t = e >= o ? tiles[e - o] : 0;
    __syncthreads();
    rows[e] += r;
    tiles[e] += t;
    __syncthreads();
  }
  if (e < p.experts) {
    p.group_offset[e + 1] = rows[e];
    p.tile_offset[e + 1] = tiles[e];
  }
  if (e == 0) {
    p.group_offset[0] = 0;
    p.tile_offset[0] = 0;
  }
  cnt[e] = rows[e] - c;  // now the cursor: next free row of expert e
  __syncthreads();
  for (int i = e; i < n; i += kThreads) {
    const int le = p.ids[i] - p.expert_lo;
    if (le < 0 || le >= p.experts) {
      p.slot_row[i] = -1;
      continue;
    }
    const int r = atomicAdd(&cnt[le], 1);
    p.row_token[r] = i / p.k;
    p.slot_row[i] = r;
  }
}

}  // namespace

void moe_permute(const PermuteParams& p, cudaStream_t stream) {
  AFD_CHECK(p.experts > 0 && p.experts <= kThreads && p.tile_rows > 0);
  permute_kernel<<<1, kThreads, 0, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace afd::cuda
