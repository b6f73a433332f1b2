// The warp-specialised wgmma grouped GEMM with fp8 weights (GemmTile::kM128N256WgmmaFp8): grouped_gemm_ws.cu's
// 128x256 tile, two consumer warpgroups issuing m64n256k16 wgmmas from swizzled bf16 stages, and a producer
// warpgroup that gathers the A rows with cp.async as there, but takes the e4m3 W tiles by TMA into a ring of their
// own (kW8Slots tiles, up to that many stages ahead of the stage being filled) and converts each into its stage's
// bf16 W tile, bf16(fp32(q) * s) (the loader's dequantisation, tile::fp8x16_to_bf16), between its A gathers. So the
// consumers never wait for a conversion of their own (the block-synchronous fp8 kernel converts with every thread
// between the MMAs), L2 sends half the weight bytes, and the MMAs and their k order are the bf16 kernel's: the
// bits equal the bf16 path on the dequantised weights.
// Shared memory: kStages stages of A (16 KB) + bf16 W (32 KB), then kW8Slots e4m3 tiles (16 KB). (3 stages + 4
// slots; 4 stages + 2 slots also fits and is the alternative to measure.)
// Barriers: full[s] counts every producer thread's cp.async arrival and its arrival after converting its part of
// stage s; empty[s] the 8 consumer warps' releases; w8_full[r] the TMA issuer's arrival and the tile's bytes;
// w8_empty[r] every producer thread, done reading slot r, before producer thread 0 refills it.
#include <cuda.h>

#include <algorithm>
#include <atomic>

#include "cuda/grouped_gemm_tile.cuh"
#include "cuda/grouped_gemm_ws.cuh"
#include "cuda/mbarrier.cuh"
#include "cuda/mma_util.cuh"
#include "cuda/smem_limit.h"
#include "cuda/wgmma.cuh"
#include "util/error.h"

namespace afd::cuda {

namespace {

constexpr int kBM = 128, kBN = 256, kThreads = 384, kStages = 3, kW8Slots = 4;
constexpr int kAStageChunks = kBM * 8, kStageChunks = (kBM + kBN) * 8;  // 16-byte chunks of A, of A + bf16 W
constexpr int kW8SlotChunks = kBN * tile::kBK / 16;                     // an e4m3 W tile: 256 rows x 64 B
constexpr int kSmem = (kStages * kStageChunks + kW8Slots * kW8SlotChunks) * 16 + 1024;  // + alignment slack
constexpr int kConsumerWarps = 8;                                        // arrivals that release a stage
static_assert(kSmem <= 227 * 1024, "stages exceed shared memory");

// The (job, k stage) sequence a block walks: jobs b, b + gridDim.x, ... of the (M tile, N block) list that own
// rows, every k stage of each. The producer and its TMA lookahead walk it alike (the consumers walk the same jobs).
struct Walk {
  const GroupedGemmParams* p;
  int n_blocks, jobs, ktiles;
  int job, kt;
  tile::Rows own;
  __device__ Walk(const GroupedGemmParams& params, int nb) : p(&params), n_blocks(nb) {
    jobs = n_blocks * params.max_tiles;
    ktiles = (params.k + tile::kBK - 1) / tile::kBK;
    job = static_cast<int>(blockIdx.x) - static_cast<int>(gridDim.x);
    kt = ktiles - 1;
    own = {0, 0, 0};
  }
  // Advances to the next stage; false past the last (and on every call after). kt == 0 marks a new job.
  __device__ bool next() {
    if (++kt < ktiles) return true;
    for (job += gridDim.x; job < jobs; job += gridDim.x) {
      own = tile::locate<kBM>(*p, job / n_blocks);
      if (own.count > 0) {
        kt = 0;
        return true;
      }
    }
    return false;
  }
  __device__ int n0() const { return (job % n_blocks) * kBN; }
};

__global__ void __launch_bounds__(kThreads, 1)
    grouped_gemm_ws_fp8_kernel(const __grid_constant__ GroupedGemmParams p, const __grid_constant__ CUtensorMap w_map,
                               int w_rows_per_group, int n_blocks) {
  using tile::kBK;
  using tile::swz;
  extern __shared__ uint4 smem_raw[];
  __shared__ uint64_t full[kStages], empty[kStages], w8_full[kW8Slots], w8_empty[kW8Slots];
  uint4* const smem = reinterpret_cast<uint4*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  uint4* const w8_ring = smem + kStages * kStageChunks;  // slot r at w8_ring + r * kW8SlotChunks
  const int wg = threadIdx.x / 128, t = threadIdx.x % 128;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar::init(&full[s], 2 * 128);
      mbar::init(&empty[s], kConsumerWarps);
    }
    for (int r = 0; r < kW8Slots; ++r) {
      mbar::init(&w8_full[r], 1);
      mbar::init(&w8_empty[r], 128);
    }
    mbar::fence_init();
  }
  __syncthreads();

  int it = 0;  // stages produced / consumed so far by this block, across jobs
  if (wg == 0) {
    // Producer: thread t copies chunk t % 8 of A rows t / 8 + 16 i of every stage and converts chunk t % 4 (16
    // e4m3 values) of W rows t / 4 + 32 i (each quarter warp reads 128 contiguous bytes of the slot and writes 8
    // distinct bank groups of the swizzled stage). Thread 0 keeps the e4m3 ring kW8Slots stages ahead.
    const int c = t & 7, r0 = t >> 3;
    const int scale_cols = (p.k + kFp8ScaleCols - 1) / kFp8ScaleCols;  // fp8_scale_cols, in device code
    Walk ahead(p, n_blocks);  // thread 0: the next stage whose e4m3 tile to request
    auto request = [&](int slot) {
      mbar::arrive_expect_tx(&w8_full[slot], kBN * kBK);
      mbar::tma_load_2d(w8_ring + slot * kW8SlotChunks, &w_map, ahead.kt * kBK,
                        ahead.own.group * w_rows_per_group + ahead.n0(), &w8_full[slot]);
    };
    if (t == 0)
      for (int r = 0; r < kW8Slots && ahead.next(); ++r) request(r);
    Walk walk(p, n_blocks);
    const __nv_bfloat16* a_src[kBM / 16];
    float scale[8];  // this thread's 8 W rows' scales for the current 128-column block
    for (; walk.next(); ++it) {
      const int s = it % kStages, slot = it % kW8Slots, k0 = walk.kt * kBK, n0 = walk.n0();
      if (walk.kt == 0) {
#pragma unroll
        for (int i = 0; i < kBM / 16; ++i) {
          const int r = r0 + 16 * i;
          int ar = walk.own.begin + (r < walk.own.count ? r : 0);
          if (p.a_rows) ar = p.a_rows[ar];
          a_src[i] = r < walk.own.count ? p.a + static_cast<int64_t>(ar) * p.k + c * 8 : nullptr;
        }
      }
      if (it >= kStages) mbar::wait(&empty[s], ((it / kStages) - 1) & 1);
      uint4* sa = smem + s * kStageChunks;
      const bool k_ok = k0 + c * 8 < p.k;
#pragma unroll
      for (int i = 0; i < kBM / 16; ++i) {
        const bool ok = a_src[i] && k_ok;
        ptx::cp_async_16(sa + swz(r0 + 16 * i, c), ok ? a_src[i] + k0 : p.a, ok ? 16 : 0);
      }
      mbar::cp_async_arrive(&full[s]);
      if (k0 % kFp8ScaleCols == 0) {  // a new 128-column scale block (rows past n: unused columns, scale 0)
        const float* sp = p.w8_scale + static_cast<int64_t>(walk.own.group) * p.w8_scale_stride + k0 / kFp8ScaleCols;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const int n = n0 + (t >> 2) + 32 * i;
          scale[i] = n < p.n ? __ldg(sp + static_cast<int64_t>(n) * scale_cols) : 0.0f;
        }
      }
      mbar::wait(&w8_full[slot], (it / kW8Slots) & 1);
      const uint4* q = w8_ring + slot * kW8SlotChunks;
      uint4* wb = sa + kAStageChunks;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int idx = t + 128 * i, r = idx >> 2, cq = idx & 3;
        uint4 lo, hi;
        tile::fp8x16_to_bf16(q[idx], scale[i], lo, hi);
        wb[swz(r, 2 * cq)] = lo;
        wb[swz(r, 2 * cq + 1)] = hi;
      }
      wgmma::fence_proxy_async();  // the converted tile (generic-proxy stores), for the wgmmas' reads
      mbar::arrive(&full[s]);
      mbar::arrive(&w8_empty[slot]);
      if (t == 0 && ahead.next()) {  // refill this slot with the stage kW8Slots ahead once every thread read it
        mbar::wait(&w8_empty[slot], (it / kW8Slots) & 1);
        request(slot);
      }
    }
    ptx::cp_async_wait<0>();  // no copy outlives its thread
    return;
  }

  // Consumers: warpgroup wg - 1 owns tile rows 64 (wg - 1) .. + 63. The loop is grouped_gemm_ws.cu's, line for
  // line (kept apart from it until this kernel has run on a GPU; then one shared loop should serve both).
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const uint32_t a_off = (wg - 1) * 64 * 128;
  const int ktiles = (p.k + kBK - 1) / kBK, jobs = n_blocks * p.max_tiles;
  for (int job = blockIdx.x; job < jobs; job += gridDim.x) {
    const tile::Rows own = tile::locate<kBM>(p, job / n_blocks);
    if (own.count == 0) continue;
    float acc[1][kBN / 8][4];
#pragma unroll
    for (int j = 0; j < kBN / 8; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[0][j][q] = 0.0f;
    float(&d)[kBN / 2] = *reinterpret_cast<float(*)[kBN / 2]>(&acc[0][0][0]);
    const bool active = (wg - 1) * 64 < own.count;  // rows past the group's end issue no wgmmas
    for (int kt = 0; kt < ktiles; ++kt, ++it) {
      const int s = it % kStages;
      mbar::wait(&full[s], (it / kStages) & 1);
      if (active) {
        wgmma::fence_proxy_async();  // the cp.async (generic proxy) rows, for the wgmmas' async-proxy reads
        const uint32_t a_addr = ptx::smem_addr(smem + s * kStageChunks) + a_off;
        const uint32_t b_addr = ptx::smem_addr(smem + s * kStageChunks + kAStageChunks);
        wgmma::fence();
#pragma unroll
        for (int ks = 0; ks < kBK / 16; ++ks)
          wgmma::mma<kBN>(d, wgmma::desc_k_major_sw128(a_addr + ks * 32),
                          wgmma::desc_k_major_sw128(b_addr + ks * 32));
        wgmma::commit();
      }
      wgmma::wait<1>();  // the previous stage's wgmmas are done: release it
      if (kt > 0 && lane == 0) mbar::arrive(&empty[(it - 1) % kStages]);
    }
    wgmma::wait<0>();
    if (lane == 0) mbar::arrive(&empty[(it - 1) % kStages]);
    if (active)
      tile::store<1, kBN / 8>(p, acc, own, (job % n_blocks) * kBN, (wg - 1) * 64 + (warp % 4) * 16, 0, lane);
  }
}

}  // namespace

void grouped_gemm_ws_fp8(const GroupedGemmParams& p, cudaStream_t stream) {
  AFD_CHECK(p.w8 && p.k % 16 == 0 && grouped_gemm_ws_supported(p), "the warp-specialised fp8 grouped GEMM takes e4m3 "
            "weights with k % 16 == 0 (k ", p.k, ") whose group stride (", p.w_stride, ") is whole rows");
  static std::atomic<uint64_t> configured{0};
  const int dev = raise_smem_limit_once(configured, reinterpret_cast<const void*>(grouped_gemm_ws_fp8_kernel), kSmem);
  const int rows_per_group = static_cast<int>(p.w_stride / p.k);
  const int n_blocks = (p.n + kBN - 1) / kBN;
  const int grid = static_cast<int>(std::min<int64_t>(ws::sm_count(dev), int64_t{n_blocks} * p.max_tiles));
  grouped_gemm_ws_fp8_kernel<<<grid, kThreads, kSmem, stream>>>(p, ws::weight_map(p, rows_per_group),
                                                                rows_per_group, n_blocks);
  AFD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace afd::cuda
