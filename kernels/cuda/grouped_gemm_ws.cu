// Warp-specialised grouped GEMM on Hopper warpgroup MMAs: a 128x256 tile per block, 4 stages of k = 64.
// Warpgroup 0 produces: it gathers the A rows (the token permutation) with cp.async and brings the W tile by TMA,
// each stage's arrivals and bytes counted on full[s]. Warpgroups 1 and 2 consume: each waits for full[s],
// issues the wgmmas of its 64 rows x 256 columns, keeps one stage's wgmmas in flight and releases the stage before
// through empty[s], which the producer waits on before refilling it. No block-wide barrier runs inside the k loop.
#include <cuda.h>
#include <cudaTypedefs.h>

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

constexpr int kBM = 128, kBN = 256, kStages = 4, kThreads = 384;
constexpr int kAStageChunks = kBM * 8, kStageChunks = (kBM + kBN) * 8;  // 16-byte chunks
constexpr int kSmem = kStages * kStageChunks * 16 + 1024;                // + 1024-byte alignment slack
constexpr int kConsumerWarps = 8;                                        // arrivals that release a stage

// Persistent: block b takes jobs b, b + gridDim.x, ... of the (M tile, N block) list, N blocks fastest (the
// blocks in flight share A rows in L2). Producer and consumers walk the same jobs; one stage counter runs across
// jobs, so the producer fills the next job's first stages while the consumers store the previous job's tile.
__global__ void __launch_bounds__(kThreads, 1)
    grouped_gemm_ws_kernel(const __grid_constant__ GroupedGemmParams p, const __grid_constant__ CUtensorMap w_map,
                           int w_rows_per_group, int n_blocks) {
  using tile::kBK;
  using tile::swz;
  extern __shared__ uint4 smem_raw[];
  __shared__ uint64_t full[kStages], empty[kStages];
  uint4* const smem = reinterpret_cast<uint4*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const int ktiles = (p.k + kBK - 1) / kBK, jobs = n_blocks * p.max_tiles;
  const int wg = threadIdx.x / 128, t = threadIdx.x % 128;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar::init(&full[s], 128 + 1);  // every producer thread's cp.async arrival + the TMA issuer's
      mbar::init(&empty[s], kConsumerWarps);
    }
    mbar::fence_init();
  }
  __syncthreads();

  int it = 0;  // stages produced / consumed so far by this block, across jobs
  if (wg == 0) {
    // Producer: thread t copies chunk t % 8 of A rows t / 8 + 16 i of every stage; thread 0 issues the W tile.
    const int c = t & 7, r0 = t >> 3;
    for (int job = blockIdx.x; job < jobs; job += gridDim.x) {
      const tile::Rows own = tile::locate<kBM>(p, job / n_blocks);
      if (own.count == 0) continue;
      const int n0 = (job % n_blocks) * kBN, w_row = own.group * w_rows_per_group + n0;
      const __nv_bfloat16* a_src[kBM / 16];
#pragma unroll
      for (int i = 0; i < kBM / 16; ++i) {
        const int r = r0 + 16 * i;
        int ar = own.begin + (r < own.count ? r : 0);
        if (p.a_rows) ar = p.a_rows[ar];
        a_src[i] = r < own.count ? p.a + static_cast<int64_t>(ar) * p.k + c * 8 : nullptr;
      }
      for (int kt = 0; kt < ktiles; ++kt, ++it) {
        const int s = it % kStages, k0 = kt * kBK;
        if (it >= kStages) mbar::wait(&empty[s], ((it / kStages) - 1) & 1);
        uint4* sa = smem + s * kStageChunks;
        const bool k_ok = k0 + c * 8 < p.k;
#pragma unroll
        for (int i = 0; i < kBM / 16; ++i) {
          const bool ok = a_src[i] && k_ok;
          ptx::cp_async_16(sa + swz(r0 + 16 * i, c), ok ? a_src[i] + k0 : p.a, ok ? 16 : 0);
        }
        if (t == 0) {
          mbar::arrive_expect_tx(&full[s], kBN * kBK * 2);
          mbar::tma_load_2d(sa + kAStageChunks, &w_map, k0, w_row, &full[s]);
        }
        mbar::cp_async_arrive(&full[s]);
      }
    }
    ptx::cp_async_wait<0>();  // no copy outlives its thread
    return;
  }

  // Consumers: warpgroup wg - 1 owns tile rows 64 (wg - 1) .. + 63.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const uint32_t a_off = (wg - 1) * 64 * 128;
  for (int job = blockIdx.x; job < jobs; job += gridDim.x) {
    const tile::Rows own = tile::locate<kBM>(p, job / n_blocks);
    if (own.count == 0) continue;
    float acc[1][kBN / 8][4];
#pragma unroll
    for (int j = 0; j < kBN / 8; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[0][j][q] = 0.0f;
    float(&d)[kBN / 2] = *reinterpret_cast<float(*)[kBN / 2]>(&acc[0][0][0]);
    // A warpgroup whose 64 rows are all past the group's end (a group's last, short tile) issues no wgmmas, so
    // the other one has the tensor cores to itself; it still takes part in every stage's handshake.
    const bool active = (wg - 1) * 64 < own.count;
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

namespace ws {

namespace {

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    AFD_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
    AFD_CHECK(q == cudaDriverEntryPointSuccess && f, "the CUDA driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

}  // namespace

// The TMA descriptor of W as one [rows, k] tensor (group g's row r is row g * rows_per_group + r; rows past the end
// read as 0), boxes of 256 rows x 64 k: bf16 with the 128-byte swizzle of the stages, or e4m3 bytes unswizzled (the
// producer converts them). A layer launches the same weights every step, so each thread keeps the last few
// descriptors it encoded: a descriptor depends only on the address and the shape, so a hit is exact even if the
// memory was freed and reallocated in between.
CUtensorMap weight_map(const GroupedGemmParams& p, int rows_per_group) {
  struct Entry {
    const void* w = nullptr;
    int k = 0, rows = 0;
    CUtensorMap map{};
  };
  constexpr int kEntries = 16;  // > the GEMMs of a few layers' worth of distinct weights in flight per thread
  thread_local Entry cache[kEntries];
  thread_local int next = 0;
  const bool fp8 = p.w8 != nullptr;
  const void* w = fp8 ? static_cast<const void*>(p.w8) : static_cast<const void*>(p.w);
  const int rows = rows_per_group * (p.groups - 1) + p.n;
  for (const Entry& e : cache)
    if (e.w == w && e.k == p.k && e.rows == rows) return e.map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(p.k), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(p.k) * (fp8 ? 1 : 2)};
  const cuuint32_t box[2] = {tile::kBK, kBN}, elem[2] = {1, 1};
  Entry& e = cache[next];
  next = (next + 1) % kEntries;
  const CUresult r = encode_fn()(&e.map, fp8 ? CU_TENSOR_MAP_DATA_TYPE_UINT8 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2,
                                 const_cast<void*>(w), dims, strides, box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                 fp8 ? CU_TENSOR_MAP_SWIZZLE_NONE : CU_TENSOR_MAP_SWIZZLE_128B,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    e = Entry{};
    fail("cuTensorMapEncodeTiled failed (", static_cast<int>(r), ") for k ", p.k, " n ", p.n, fp8 ? " (fp8)" : "");
  }
  e.w = w;
  e.k = p.k;
  e.rows = rows;
  return e.map;
}


int sm_count(int dev) {
  static std::atomic<int> sms[64] = {};  // SM count per device, 0 until first asked
  if (!sms[dev & 63].load()) {
    int n = 0;
    AFD_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    sms[dev & 63].store(n);
  }
  return sms[dev & 63].load();
}

}  // namespace ws

bool grouped_gemm_ws_supported(const GroupedGemmParams& p) { return p.w_stride % p.k == 0; }

void grouped_gemm_ws(const GroupedGemmParams& p, cudaStream_t stream) {
  AFD_CHECK(!p.w8 && grouped_gemm_ws_supported(p), "the warp-specialised grouped GEMM takes bf16 weights whose group "
            "stride (", p.w_stride, ") is whole rows of k ", p.k);
  static std::atomic<uint64_t> configured{0};
  const int dev = raise_smem_limit_once(configured, reinterpret_cast<const void*>(grouped_gemm_ws_kernel), kSmem);
  const int rows_per_group = static_cast<int>(p.w_stride / p.k);
  const int n_blocks = (p.n + kBN - 1) / kBN;
  const int grid = static_cast<int>(std::min<int64_t>(ws::sm_count(dev), int64_t{n_blocks} * p.max_tiles));
  grouped_gemm_ws_kernel<<<grid, kThreads, kSmem, stream>>>(p, ws::weight_map(p, rows_per_group), rows_per_group,
                                                            n_blocks);
  AFD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace afd::cuda
