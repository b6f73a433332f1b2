// Device pieces shared by the grouped GEMM kernels (grouped_gemm.cu, grouped_gemm_ws.cu): the swizzled
// shared-memory stage layout, which rows a block owns, and the epilogues that store an accumulator tile.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "cuda/grouped_gemm.cuh"

namespace afd::cuda::tile {

constexpr int kBK = 64;  // k per pipeline stage: one 128-byte shared-memory row per tile row

// Shared memory holds, per stage, BM rows of A then BN rows of W, each row kBK bf16 = 8 chunks of 16 B. Chunk c of
// row r is stored at chunk position c ^ (r & 7), so the 8 rows an ldmatrix phase reads hit 8 different bank groups.
// With the stage 1024-byte aligned this is exactly the hardware's 128-byte swizzle (wgmma descriptors, TMA).
__device__ __forceinline__ int swz(int r, int c) { return r * 8 + (c ^ (r & 7)); }

// 16 e4m3 values times `scale`, rounded to bf16 (e4m3 -> half is exact, half -> float exact, one fp32 multiply:
// the loader's bf16(fp32(q) * s)), as two 16-byte chunks. (Measured on an H100: building the fp32 from the e4m3
// bits with integer ops and a 2^120-scaled FMUL, equal bits, was 10-25% slower in the layer than these cvts.)
__device__ __forceinline__ void fp8x16_to_bf16(uint4 q, float scale, uint4& lo, uint4& hi) {
  const uint32_t in[4] = {q.x, q.y, q.z, q.w};
  uint32_t out[8];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const __half2_raw hr = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(in[i] >> (16 * h)), __NV_E4M3);
      const float2 f = __half22float2(__half2(hr));
      const __nv_bfloat162 b = __floats2bfloat162_rn(f.x * scale, f.y * scale);
      out[2 * i + h] = *reinterpret_cast<const uint32_t*>(&b);
    }
  lo = make_uint4(out[0], out[1], out[2], out[3]);
  hi = make_uint4(out[4], out[5], out[6], out[7]);
}

struct Rows {
  int group, begin, count;  // W group, first C row, rows (<= BM); count = 0: this block has no rows
};

// The rows M tile `tile` of the flattened (group, tile) list owns.
template <int BM>
__device__ __forceinline__ Rows locate(const GroupedGemmParams& p, int tile) {
  if (!p.group_offset) {
    const int begin = tile * BM;
    return {0, begin, begin >= p.m ? 0 : min(BM, p.m - begin)};
  }
  if (tile >= p.tile_offset[p.groups]) return {0, 0, 0};
  int lo = 0, hi = p.groups - 1;  // largest g with tile_offset[g] <= tile (empty groups share offsets)
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (p.tile_offset[mid] <= tile) lo = mid; else hi = mid - 1;
  }
  const int begin = p.group_offset[lo] + (tile - p.tile_offset[lo]) * BM;
  return {lo, begin, min(BM, p.group_offset[lo + 1] - begin)};
}

// Stores a warp's accumulators: acc[i][j][q] is tile row wm0 + 16i + lane/4 (+8 for q >= 2), tile column
// wn0 + 8j + 2(lane%4) (+1 for odd q), the m16n8 fragment of mma.sync and of wgmma alike. With silu_mul, n8 tiles
// (j, j+1) hold the 8 gate and the 8 up columns of features col0/2 .. col0/2 + 7 (col0 % 16 == 0) and C gets
// bf16(bf16(silu(G)) * U) with G and U rounded to bf16 first (MODEL_SPEC.md 1).
template <int MI, int NI>
__device__ __forceinline__ void store(const GroupedGemmParams& p, const float (&acc)[MI][NI][4], const Rows& rows,
                                      int n0, int wm0, int wn0, int lane) {
  if (p.silu_mul) {
    const int half = p.n / 2;
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
      for (int j = 0; j < NI; j += 2) {
        const int col0 = n0 + wn0 + j * 8;
        if (col0 >= p.n) continue;
        const int f = col0 / 2 + 2 * (lane & 3);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = wm0 + i * 16 + (lane >> 2) + h * 8;
          if (r >= rows.count) continue;
          float a[2];
#pragma unroll
          for (int q = 0; q < 2; ++q) {
            const float g = __bfloat162float(__float2bfloat16_rn(acc[i][j][2 * h + q]));
            const float u = __bfloat162float(__float2bfloat16_rn(acc[i][j + 1][2 * h + q]));
            a[q] = __bfloat162float(__float2bfloat16_rn(g / (1.0f + expf(-g)))) * u;
          }
          *reinterpret_cast<__nv_bfloat162*>(p.c + static_cast<int64_t>(rows.begin + r) * half + f) =
              __floats2bfloat162_rn(a[0], a[1]);
        }
      }
    return;
  }
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j) {
      const int col = n0 + wn0 + j * 8 + 2 * (lane & 3);
      if (col >= p.n) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = wm0 + i * 16 + (lane >> 2) + h * 8;
        if (r < rows.count)
          *reinterpret_cast<__nv_bfloat162*>(p.c + static_cast<int64_t>(rows.begin + r) * p.n + col) =
              __floats2bfloat162_rn(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
      }
    }
}

}  // namespace afd::cuda::tile
