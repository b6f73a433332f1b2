#include <cuda_fp8.h>

#include <atomic>

#include "cuda/grouped_gemm.cuh"
#include "cuda/mma_util.cuh"
#include "util/error.h"

namespace afd::cuda {

namespace {

constexpr int kBK = 64;  // k per pipeline stage: one 128-byte shared-memory row per tile row

// Shared memory holds, per stage, BM rows of A then BN rows of W, each row kBK bf16 = 8 chunks of 16 B. Chunk c of
// row r is stored at chunk position c ^ (r & 7), so the 8 rows an ldmatrix phase reads hit 8 different bank groups.
// With fp8 weights a stage holds BN rows of kBK bytes (4 chunks, unswizzled) and their scales instead, and one
// bf16 W tile after the stages receives each stage's rows converted and scaled, in the bf16 layout, before the
// MMAs read it.
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

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool kFp8>
__global__ void __launch_bounds__(WARPS_M* WARPS_N * 32)
    grouped_gemm_bf16_bf16_kernel(GroupedGemmParams p) {
  constexpr int kThreads = WARPS_M * WARPS_N * 32;
  constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // warp tile
  constexpr int MI = WM / 16, NI = WN / 8;             // mma tiles per warp
  static_assert(NI % 2 == 0, "B fragments are loaded two n8 tiles at a time");
  constexpr int kBRowChunks = kFp8 ? kBK / 16 : 8;      // 16-B chunks per W row per stage
  // fp8: each stage also carries its BN rows' scales (BN floats), so no global load sits between a stage's
  // arrival and its conversion.
  constexpr int kStageChunks = BM * 8 + BN * kBRowChunks + (kFp8 ? BN / 4 : 0);
  // 16-B chunks per thread per stage; A may have fewer chunks than threads (BM = 16 with 8 warps).
  constexpr int kAChunks = (BM * 8 + kThreads - 1) / kThreads, kBChunks = BN * kBRowChunks / kThreads;
  static_assert(kBChunks * kThreads == BN * kBRowChunks && (BM * 8 % kThreads == 0 || kAChunks == 1),
                "uneven tile split");
  extern __shared__ uint4 smem[];

  // Which rows this block owns: M tile blockIdx.y of the flattened (group, tile) list.
  int g = 0, row_begin, rows;
  const int tile = blockIdx.y;
  if (p.group_offset) {
    if (tile >= p.tile_offset[p.groups]) return;
    int lo = 0, hi = p.groups - 1;  // largest g with tile_offset[g] <= tile (empty groups share offsets)
    while (lo < hi) {
      const int mid = (lo + hi + 1) >> 1;
      if (p.tile_offset[mid] <= tile) lo = mid; else hi = mid - 1;
    }
    g = lo;
    row_begin = p.group_offset[g] + (tile - p.tile_offset[g]) * BM;
    rows = min(BM, p.group_offset[g + 1] - row_begin);
  } else {
    row_begin = tile * BM;
    if (row_begin >= p.m) return;
    rows = min(BM, p.m - row_begin);
  }
  const int n0 = blockIdx.x * BN;

  // Per-thread source rows, fixed for the whole k loop (chunk index i -> row i/8, column chunk i%8).
  const __nv_bfloat16* a_src[kAChunks];
  bool a_ok[kAChunks];
#pragma unroll
  for (int i = 0; i < kAChunks; ++i) {
    const int r = (threadIdx.x + i * kThreads) >> 3;
    a_ok[i] = r < rows;
    int ar = row_begin + (a_ok[i] ? r : 0);
    if (p.a_rows && a_ok[i]) ar = p.a_rows[ar];
    a_src[i] = p.a + static_cast<int64_t>(a_ok[i] ? ar : 0) * p.k;
  }
  // W rows: chunk index i -> row i / kBRowChunks, column chunk i % kBRowChunks (byte pointers, bf16 or fp8).
  const char* b_src[kBChunks];
  const float* b_scale[kBChunks];  // fp8: the row's scales
  bool b_ok[kBChunks];
  const int64_t row_bytes = kFp8 ? p.k : static_cast<int64_t>(p.k) * 2;
  const char* wbase = kFp8 ? reinterpret_cast<const char*>(p.w8 + static_cast<int64_t>(g) * p.w_stride)
                           : reinterpret_cast<const char*>(p.w + static_cast<int64_t>(g) * p.w_stride);
  const int scale_cols = (p.k + kFp8ScaleCols - 1) / kFp8ScaleCols;
#pragma unroll
  for (int i = 0; i < kBChunks; ++i) {
    const int r = (threadIdx.x + i * kThreads) / kBRowChunks;
    b_ok[i] = n0 + r < p.n;
    b_src[i] = wbase + (b_ok[i] ? n0 + r : 0) * row_bytes;
    b_scale[i] = kFp8 ? p.w8_scale + static_cast<int64_t>(g) * p.w8_scale_stride +
                            static_cast<int64_t>(b_ok[i] ? n0 + r : 0) * scale_cols
                      : nullptr;
  }
  uint4* const sbf = smem + STAGES * kStageChunks;  // fp8: the converted bf16 W tile
  auto load_stage = [&](int stage, int k0) {
    uint4* sa = smem + stage * kStageChunks;
    uint4* sb = sa + BM * 8;
#pragma unroll
    for (int i = 0; i < kAChunks; ++i) {
      const int idx = threadIdx.x + i * kThreads, r = idx >> 3, c = idx & 7, kk = k0 + c * 8;
      if (idx >= BM * 8) break;
      const bool ok = a_ok[i] && kk < p.k;
      ptx::cp_async_16(sa + swz(r, c), ok ? a_src[i] + kk : p.a, ok ? 16 : 0);
    }
#pragma unroll
    for (int i = 0; i < kBChunks; ++i) {
      const int idx = threadIdx.x + i * kThreads, r = idx / kBRowChunks, c = idx % kBRowChunks;
      if constexpr (kFp8) {
        const int kk = k0 + c * 16;  // k % 16 == 0: a chunk is all inside k or all past it
        const bool ok = b_ok[i] && kk < p.k;
        ptx::cp_async_16(sb + idx, ok ? b_src[i] + kk : wbase, ok ? 16 : 0);
        if (c == 0)
          ptx::cp_async_4(reinterpret_cast<float*>(sb + BN * kBRowChunks) + r,
                          ok ? b_scale[i] + k0 / kFp8ScaleCols : p.w8_scale, ok ? 4 : 0);
      } else {
        const int kk = k0 + c * 8;
        const bool ok = b_ok[i] && kk < p.k;
        ptx::cp_async_16(sb + swz(r, c), ok ? b_src[i] + 2 * kk : wbase, ok ? 16 : 0);
      }
    }
  };
  // fp8: converts this thread's own chunks of `stage` (its cp.async writes, complete after its wait) into sbf;
  // the row's scale was copied with the row's chunk 0, possibly by another thread (visible after the barrier).
  auto convert_stage = [&](int stage, uint4* out) {
    const uint4* sb = smem + stage * kStageChunks + BM * 8;
    const float* scales = reinterpret_cast<const float*>(sb + BN * kBRowChunks);
#pragma unroll
    for (int i = 0; i < kBChunks; ++i) {
      const int idx = threadIdx.x + i * kThreads, r = idx / kBRowChunks, c = idx % kBRowChunks;
      const float scale = scales[r];
      uint4 lo, hi;
      fp8x16_to_bf16(sb[idx], scale, lo, hi);
      out[swz(r, 2 * c)] = lo;
      out[swz(r, 2 * c + 1)] = hi;
    }
  };

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm0 = (warp / WARPS_N) * WM, wn0 = (warp % WARPS_N) * WN;
  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

  const int ktiles = (p.k + kBK - 1) / kBK;
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) load_stage(s, s * kBK);
    ptx::cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    ptx::cp_async_wait<STAGES - 2>();
    __syncthreads();  // stage kt landed for every thread; every warp is done with stage kt-1 (refilled next)
    const int nk = kt + STAGES - 1;
    if (nk < ktiles) load_stage(nk % STAGES, nk * kBK);
    ptx::cp_async_commit();
    const uint4* sa = smem + (kt % STAGES) * kStageChunks;
    const uint4* sb = sa + BM * 8;
    if constexpr (kFp8) {
      // Every warp finished reading sbf (stage kt-1) before the barrier above. (Converting one stage ahead into
      // two alternating tiles, one barrier per stage, measured 4-5% slower on an H100.)
      convert_stage(kt % STAGES, sbf);
      __syncthreads();
      sb = sbf;
    }
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t af[MI][4], bf[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const int r = wm0 + i * 16 + (lane & 15);
        ptx::ldmatrix_x4(af[i], sa + swz(r, ks * 2 + (lane >> 4)));
      }
#pragma unroll
      for (int j = 0; j < NI; j += 2) {
        const int r = wn0 + j * 8 + (lane & 7) + ((lane >> 4) << 3);
        uint32_t t[4];
        ptx::ldmatrix_x4(t, sb + swz(r, ks * 2 + ((lane >> 3) & 1)));
        bf[j][0] = t[0];
        bf[j][1] = t[1];
        bf[j + 1][0] = t[2];
        bf[j + 1][1] = t[3];
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) ptx::mma_bf16_16816(acc[i][j], af[i], bf[j]);
    }
  }
  ptx::cp_async_wait<0>();

  if (p.silu_mul) {
    // Tile pair (j, j+1) holds 8 gate and the 8 up columns of features col0/2 .. col0/2 + 7 (col0 % 16 == 0).
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
          if (r >= rows) continue;
          float a[2];
#pragma unroll
          for (int q = 0; q < 2; ++q) {
            const float g = __bfloat162float(__float2bfloat16_rn(acc[i][j][2 * h + q]));
            const float u = __bfloat162float(__float2bfloat16_rn(acc[i][j + 1][2 * h + q]));
            a[q] = __bfloat162float(__float2bfloat16_rn(g / (1.0f + expf(-g)))) * u;
          }
          *reinterpret_cast<__nv_bfloat162*>(p.c + static_cast<int64_t>(row_begin + r) * half + f) =
              __floats2bfloat162_rn(a[0], a[1]);
        }
      }
    return;
  }

  // Epilogue: accumulator (i, j, q) is row wm0 + 16i + lane/4 (+8 for q >= 2), column wn0 + 8j + 2(lane%4) (+1).
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j) {
      const int col = n0 + wn0 + j * 8 + 2 * (lane & 3);
      if (col >= p.n) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = wm0 + i * 16 + (lane >> 2) + h * 8;
        if (r < rows)
          *reinterpret_cast<__nv_bfloat162*>(p.c + static_cast<int64_t>(row_begin + r) * p.n + col) =
              __floats2bfloat162_rn(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
      }
    }
}

// fp8 weights: two more stages in flight (a stage carries half the weight bytes), plus the bf16 W tile.
template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES_BF16, bool kFp8>
void launch_as(const GroupedGemmParams& p, cudaStream_t stream) {
  constexpr int STAGES = kFp8 ? STAGES_BF16 + 2 : STAGES_BF16;
  auto kernel = grouped_gemm_bf16_bf16_kernel<BM, BN, WARPS_M, WARPS_N, STAGES, kFp8>;
  constexpr int kSmem = (STAGES * (BM * 8 + (kFp8 ? BN * (kBK / 16) + BN / 4 : BN * 8)) + (kFp8 ? BN * 8 : 0)) * 16;
  // The shared-memory limit is raised once per device (bit d of `configured`).
  static std::atomic<uint64_t> configured{0};
  int dev = 0;
  AFD_CUDA_CHECK(cudaGetDevice(&dev));
  const uint64_t bit = uint64_t{1} << (dev & 63);
  if (!(configured.load() & bit)) {
    AFD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    configured.fetch_or(bit);
  }
  const dim3 grid((p.n + BN - 1) / BN, p.max_tiles);
  kernel<<<grid, WARPS_M * WARPS_N * 32, kSmem, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES>
void launch(const GroupedGemmParams& p, cudaStream_t stream) {
  if (p.w8)
    launch_as<BM, BN, WARPS_M, WARPS_N, STAGES, true>(p, stream);
  else
    launch_as<BM, BN, WARPS_M, WARPS_N, STAGES, false>(p, stream);
}

}  // namespace

int gemm_tile_rows(GemmTile t) {
  switch (t) {
    case GemmTile::kM16: case GemmTile::kM16N64: case GemmTile::kM16N256: return 16;
    case GemmTile::kM64: return 64;
    case GemmTile::kM128: case GemmTile::kM128N256: return 128;
  }
  return 128;
}

const char* gemm_tile_name(GemmTile t) {
  switch (t) {
    case GemmTile::kM16: return "16x128";
    case GemmTile::kM16N64: return "16x64";
    case GemmTile::kM16N256: return "16x256";
    case GemmTile::kM64: return "64x128";
    case GemmTile::kM128: return "128x128";
    case GemmTile::kM128N256: return "128x256";
  }
  return "?";
}

// Measured on an H100 (bench/RESULTS.md: the whole MoE layer with every tile, five runs): with <= 16 rows per
// expert the 16-row tiles stream weights at 0.95-0.97 of the copy rate (V3) and 16x64 is never worse than the others
// by more than noise; from 24 to 64 rows 64x128 and 16x64 tie; at 128-384 rows 64x128 and 128x256 are within
// run-to-run noise (up to 10%) of each other, 128x256 more often ahead. 128x128 is never best.
// fp8 weights (bench/RESULTS.md, "Weight-only fp8 experts"): at 24 rows per expert (V2-Lite, 256 tokens) the
// 64x128 tile ran 0.68x the bf16 layer; 16-row tiles stream each expert's e4m3 bytes twice there, which is the
// bf16 tile's byte count, so they are used up to kFp8M16Rows rows.
constexpr double kFp8M16Rows = 32;
GemmTile gemm_tile_for_rows(double rows_per_group, bool fp8_weights) {
  if (rows_per_group <= 16 || (fp8_weights && rows_per_group <= kFp8M16Rows)) return GemmTile::kM16N64;
  if (rows_per_group < 128) return GemmTile::kM64;
  return GemmTile::kM128N256;
}

void grouped_gemm_bf16_bf16(const GroupedGemmParams& p, cudaStream_t stream) {
  AFD_CHECK(p.n % 8 == 0 && p.k % 8 == 0, "n ", p.n, " and k ", p.k, " must be multiples of 8");
  AFD_CHECK(p.max_tiles > 0 && p.max_tiles <= 65535, "max_tiles ", p.max_tiles);
  AFD_CHECK(p.group_offset == nullptr || p.tile_offset != nullptr);
  AFD_CHECK(!p.silu_mul || p.n % 16 == 0, "the SiLU·mul epilogue needs n % 16 == 0, not ", p.n);
  AFD_CHECK(!p.w8 || (p.k % 16 == 0 && p.w8_scale != nullptr), "fp8 weights need k % 16 == 0 (k ", p.k,
            ") and scales");
  switch (p.tile) {
    case GemmTile::kM16: return launch<16, 128, 1, 4, 4>(p, stream);
    case GemmTile::kM16N64: return launch<16, 64, 1, 4, 4>(p, stream);
    case GemmTile::kM16N256: return launch<16, 256, 1, 8, 3>(p, stream);
    case GemmTile::kM64: return launch<64, 128, 2, 2, 4>(p, stream);
    case GemmTile::kM128: return launch<128, 128, 2, 4, 3>(p, stream);
    case GemmTile::kM128N256: return launch<128, 256, 2, 4, 3>(p, stream);
  }
}

}  // namespace afd::cuda
