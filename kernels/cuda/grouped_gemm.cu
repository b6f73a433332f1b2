#include <atomic>

#include "cuda/grouped_gemm.cuh"
#include "cuda/grouped_gemm_tile.cuh"
#include "cuda/grouped_gemm_ws.cuh"
#include "cuda/mma_util.cuh"
#include "cuda/smem_limit.h"
#include "cuda/wgmma.cuh"
#include "util/error.h"

namespace afd::cuda {

namespace {

using tile::kBK;
using tile::swz;

// With fp8 weights a stage holds BN rows of kBK bytes (4 chunks, unswizzled) and their scales instead of the bf16
// W rows, and one bf16 W tile after the stages receives each stage's rows converted and scaled, in the bf16
// layout, before the MMAs read it.

// kWgmma: the MMAs are Hopper warpgroup MMAs (wgmma m64n256k16) reading both tiles straight from the swizzled
// stages (the swizzle above is the hardware's 128-byte swizzle when stages start 1024-byte aligned); warp w then owns
// rows 16w .. 16w + 15 of the tile and every column, in mma.sync's fragment layout, so the epilogues are shared.
template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool kFp8, bool kWgmma>
__global__ void __launch_bounds__(WARPS_M* WARPS_N * 32)
    grouped_gemm_bf16_bf16_kernel(GroupedGemmParams p) {
  constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static_assert(!kWgmma || (BM == 16 * WARPS_M && WARPS_N == 1 && BN == 256 && BM % 64 == 0),
                "wgmma tiles: one m64n256 per warpgroup");
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
  extern __shared__ uint4 smem_raw[];
  // 1024-byte aligned (the launch adds the slack): wgmma's swizzle is on absolute address bits.
  uint4* const smem = reinterpret_cast<uint4*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});

  // Which rows this block owns: M tile blockIdx.y of the flattened (group, tile) list.
  const tile::Rows own = tile::locate<BM>(p, blockIdx.y);
  if (own.count == 0) return;
  const int g = own.group, row_begin = own.begin, rows = own.count;
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
      tile::fp8x16_to_bf16(sb[idx], scale, lo, hi);
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
  if constexpr (kWgmma) {
    // Each stage: publish the landed stage to the async proxy, issue its wgmmas, refill the stage the previous
    // iteration read (its wgmmas completed before the barrier) while these run, then wait for them. (Keeping one
    // stage's wgmmas in flight, or 128x128 tiles two blocks per SM, measured no faster on an H200.)
    float(&d)[BN / 2] = *reinterpret_cast<float(*)[BN / 2]>(&acc[0][0][0]);
    const uint32_t a_off = (warp / 4) * 64 * 128;  // this warpgroup's 64 rows
    for (int kt = 0; kt < ktiles; ++kt) {
      ptx::cp_async_wait<STAGES - 2>();
      wgmma::fence_proxy_async();
      __syncthreads();  // stage kt landed for every thread; every warpgroup is done with stage kt-1
      const uint4* sa = smem + (kt % STAGES) * kStageChunks;
      const uint4* sb = sa + BM * 8;
      if constexpr (kFp8) {
        convert_stage(kt % STAGES, sbf);
        wgmma::fence_proxy_async();
        __syncthreads();
        sb = sbf;
      }
      const uint32_t a_addr = ptx::smem_addr(sa) + a_off, b_addr = ptx::smem_addr(sb);
      wgmma::fence();
#pragma unroll
      for (int ks = 0; ks < kBK / 16; ++ks)
        wgmma::mma<BN>(d, wgmma::desc_k_major_sw128(a_addr + ks * 32), wgmma::desc_k_major_sw128(b_addr + ks * 32));
      wgmma::commit();
      const int nk = kt + STAGES - 1;
      if (nk < ktiles) load_stage(nk % STAGES, nk * kBK);
      ptx::cp_async_commit();
      wgmma::wait<0>();
    }
  } else
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

  tile::store<MI, NI>(p, acc, own, n0, wm0, wn0, lane);
}

// fp8 weights: two more stages in flight (a stage carries half the weight bytes), plus the bf16 W tile; the wgmma
// tile's stages already fill shared memory, so it keeps its count.
template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES_BF16, bool kFp8, bool kWgmma>
void launch_as(const GroupedGemmParams& p, cudaStream_t stream) {
  constexpr int STAGES = kFp8 && !kWgmma ? STAGES_BF16 + 2 : STAGES_BF16;
  auto kernel = grouped_gemm_bf16_bf16_kernel<BM, BN, WARPS_M, WARPS_N, STAGES, kFp8, kWgmma>;
  constexpr int kSmem =
      (STAGES * (BM * 8 + (kFp8 ? BN * (kBK / 16) + BN / 4 : BN * 8)) + (kFp8 ? BN * 8 : 0)) * 16 + 1024;
  static_assert(kSmem <= 227 * 1024, "tile exceeds shared memory");
  static std::atomic<uint64_t> configured{0};
  raise_smem_limit_once(configured, reinterpret_cast<const void*>(kernel), kSmem);
  const dim3 grid((p.n + BN - 1) / BN, p.max_tiles);
  kernel<<<grid, WARPS_M * WARPS_N * 32, kSmem, stream>>>(p);
  AFD_CUDA_CHECK(cudaGetLastError());
}

template <int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool kWgmma = false>
void launch(const GroupedGemmParams& p, cudaStream_t stream) {
  if (p.w8)
    launch_as<BM, BN, WARPS_M, WARPS_N, STAGES, true, kWgmma>(p, stream);
  else
    launch_as<BM, BN, WARPS_M, WARPS_N, STAGES, false, kWgmma>(p, stream);
}

}  // namespace

int gemm_tile_rows(GemmTile t) {
  switch (t) {
    case GemmTile::kM16: case GemmTile::kM16N64: case GemmTile::kM16N256: return 16;
    case GemmTile::kM64: return 64;
    case GemmTile::kM128: case GemmTile::kM128N256: case GemmTile::kM128N256Wgmma:
    case GemmTile::kM128N256WgmmaFp8: return 128;
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
    case GemmTile::kM128N256Wgmma: return "128x256wg";
    case GemmTile::kM128N256WgmmaFp8: return "128x256wg8";
  }
  return "?";
}

bool gemm_tile_available(GemmTile t) {
  if (t != GemmTile::kM128N256Wgmma && t != GemmTile::kM128N256WgmmaFp8) return true;
#ifdef AFD_CUDA_WGMMA
  static std::atomic<int8_t> known[64] = {};  // per device: 0 unknown, 1 no, 2 yes
  int dev = 0;
  AFD_CUDA_CHECK(cudaGetDevice(&dev));
  std::atomic<int8_t>& k = known[dev & 63];
  if (k.load() == 0) {
    int major = 0, minor = 0;
    AFD_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    AFD_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    k.store(major == 9 && minor == 0 ? 2 : 1);
  }
  return k.load() == 2;
#else
  return false;
#endif
}

// Measured on an H100 (bench/RESULTS.md: the whole MoE layer with every tile, five runs): with <= 16 rows per
// expert the 16-row tiles stream weights at 0.95-0.97 of the copy rate (V3) and 16x64 is never worse than the others
// by more than noise; from 24 to 64 rows 64x128 and 16x64 tie; at 128-384 rows 64x128 and 128x256 are within
// run-to-run noise (up to 10%) of each other, 128x256 more often ahead. 128x128 is never best. On an H200 the
// wgmma tile (warp-specialised, TMA) takes 0.61-0.67x the 128x256 mma.sync tile's layer time at 128-384 rows, beats
// 64x128 at 24 rows (V2-Lite, 256 tokens: 0.333 vs 0.340-0.351 ms bf16, 0.493-0.497 vs 0.529-0.531 ms for fp8 on
// 16x64) and loses to the 16-row tiles at <= 16 rows with fp8 (bench/RESULTS.md, "wgmma"). So: 16-row tiles up to
// 16 rows, the wgmma tile beyond wherever the build and GPU have it.
// fp8 weights (bench/RESULTS.md, "Weight-only fp8 experts"): at 24 rows per expert (V2-Lite, 256 tokens) the
// 64x128 tile ran 0.68x the bf16 layer; 16-row tiles stream each expert's e4m3 bytes twice there, which is the
// bf16 tile's byte count, so they are used up to kFp8M16Rows rows.
constexpr double kFp8M16Rows = 32;
GemmTile gemm_tile_for_rows(double rows_per_group, bool fp8_weights) {
  if (rows_per_group <= 16) return GemmTile::kM16N64;
  if (gemm_tile_available(GemmTile::kM128N256Wgmma)) return GemmTile::kM128N256Wgmma;
  if (fp8_weights && rows_per_group <= kFp8M16Rows) return GemmTile::kM16N64;
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
    case GemmTile::kM128N256Wgmma:
    case GemmTile::kM128N256WgmmaFp8:
      // bf16 weights: the warp-specialised TMA kernel; fp8 weights: the warp-specialised fp8 kernel for the Fp8
      // tile, else the block-synchronous one (every thread converts each stage; bench/RESULTS.md, "wgmma").
      AFD_CHECK(gemm_tile_available(p.tile), "the wgmma tile needs an sm_90a build on a compute capability 9.0 GPU");
      if (grouped_gemm_ws_supported(p)) {
        if (!p.w8) return grouped_gemm_ws(p, stream);
        if (p.tile == GemmTile::kM128N256WgmmaFp8) return grouped_gemm_ws_fp8(p, stream);
      }
      return launch<128, 256, 8, 1, 4, true>(p, stream);
  }
}

}  // namespace afd::cuda
