// The grouped GEMM with weight-only fp8 (e4m3 + per-row scales along k) against the same kernel on the weights
// dequantised on the host by the loader's rule, bf16(fp32(q) * s): results must be equal bit for bit, for every
// tile, with empty groups, a row gather, k a multiple of 16 but not of the 128-column scale block, n not a
// multiple of the tile, the SiLU·mul epilogue, e4m3 subnormals, small and large scales,
// and NaN-poisoned outputs that must be fully overwritten.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/grouped_gemm.cuh"
#include "util/error.h"
#include "util/numeric.h"

using namespace afd;

namespace {

// A device copy of a host vector, freed on scope exit.
template <typename T>
struct Dev {
  T* p = nullptr;
  explicit Dev(const std::vector<T>& h) {
    AFD_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(1, h.size()) * sizeof(T)));
    if (!h.empty()) AFD_CUDA_CHECK(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
};

// Runs p (with c pointing at a NaN-poisoned [rows, cols] buffer) and returns C.
std::vector<uint16_t> run(cuda::GroupedGemmParams p, int rows, int cols) {
  std::vector<uint16_t> c(static_cast<size_t>(rows) * cols, 0x7fc0);  // bf16 NaN
  Dev<uint16_t> dc(c);
  p.c = reinterpret_cast<__nv_bfloat16*>(dc.p);
  cuda::grouped_gemm_bf16_bf16(p, nullptr);
  AFD_CUDA_CHECK(cudaDeviceSynchronize());
  AFD_CUDA_CHECK(cudaMemcpy(c.data(), dc.p, c.size() * 2, cudaMemcpyDeviceToHost));
  return c;
}

// Grouped bf16 GEMM parameters over device buffers: G groups, M rows gathered through `gather`, W [G, N, K].
cuda::GroupedGemmParams bf16_params(const uint16_t* a, const int32_t* gather, const uint16_t* w, const int32_t* off,
                                    const int32_t* toff, int G, int M, int N, int K, cuda::GemmTile tile) {
  cuda::GroupedGemmParams p{};
  p.a = reinterpret_cast<const __nv_bfloat16*>(a);
  p.a_rows = gather;
  p.w = reinterpret_cast<const __nv_bfloat16*>(w);
  p.w_stride = static_cast<int64_t>(N) * K;
  p.group_offset = off;
  p.tile_offset = toff;
  p.groups = G;
  const int bm = cuda::gemm_tile_rows(tile);
  p.max_tiles = (M + bm - 1) / bm + G;
  p.n = N;
  p.k = K;
  p.tile = tile;
  return p;
}

constexpr uint16_t kNanBf16 = 0x7fc0;  // fills what a kernel must never read

// n random e4m3 codes, none NaN and none zero.
std::vector<uint8_t> random_e4m3(size_t n, std::mt19937& rng) {
  std::vector<uint8_t> q(n);
  for (auto& v : q) {
    do v = static_cast<uint8_t>(rng()); while ((v & 0x7f) == 0x7f || (v & 0x7f) == 0);
  }
  return q;
}

// The loader's dequantisation of e4m3 rows of k codes with one scale per row and 128 columns: bf16(fp32(q) * s).
std::vector<uint16_t> dequantise(const std::vector<uint8_t>& q, const std::vector<float>& scale, int k) {
  const size_t scols = (k + 127) / 128;
  std::vector<uint16_t> w(q.size());
  for (size_t i = 0; i < q.size(); ++i)
    w[i] = f32_to_bf16(fp8_e4m3_to_f32(q[i]) * scale[(i / k) * scols + (i % k) / 128]);
  return w;
}

}  // namespace

TEST_CASE("grouped GEMM with fp8 weights equals the bf16 path on dequantised weights", "[gpu][gemm][fp8]") {
  const std::vector<int> counts = {0, 1, 17, 0, 130, 5, 64, 0};
  const int G = static_cast<int>(counts.size());
  struct Shape {
    int n, k;
    bool silu;
    float scale_lo, scale_hi;
  };
  for (const auto tile : cuda::kAllGemmTiles) {
    if (!cuda::gemm_tile_available(tile)) continue;  // the wgmma tile off sm_90a
    for (const Shape sh : {Shape{40, 208, false, 0.002f, 0.3f}, Shape{264, 144, false, 100.0f, 600.0f},
                           Shape{272, 208, true, 0.002f, 0.3f}}) {
      const int bm = cuda::gemm_tile_rows(tile), N = sh.n, K = sh.k, scols = (K + 127) / 128;
      INFO("tile " << cuda::gemm_tile_name(tile) << " n " << N << " k " << K << " silu " << sh.silu);
      std::vector<int> off(G + 1, 0), toff(G + 1, 0);
      for (int g = 0; g < G; ++g) {
        off[g + 1] = off[g] + counts[g];
        toff[g + 1] = toff[g] + (counts[g] + bm - 1) / bm;
      }
      const int M = off[G], arows = M + 3;
      std::mt19937 rng(static_cast<uint32_t>(N * K + bm));
      std::uniform_real_distribution<float> mag(0.05f, 1.5f), sd(sh.scale_lo, sh.scale_hi);
      std::vector<uint16_t> a(static_cast<size_t>(arows) * K);
      for (auto& v : a) v = f32_to_bf16((rng() & 1) ? mag(rng) : -mag(rng));
      const std::vector<uint8_t> q = random_e4m3(static_cast<size_t>(G) * N * K, rng);
      std::vector<float> scale(static_cast<size_t>(G) * N * scols);
      for (auto& s : scale) s = sd(rng);
      const std::vector<uint16_t> w = dequantise(q, scale, K);
      std::vector<int32_t> gather(M);
      for (auto& r : gather) r = static_cast<int32_t>(rng() % arows);
      Dev<uint16_t> da(a), dw(w);
      Dev<uint8_t> dq(q);
      Dev<float> ds(scale);
      Dev<int32_t> dg(gather), doff(off), dtoff(toff);
      cuda::GroupedGemmParams p = bf16_params(da.p, dg.p, dw.p, doff.p, dtoff.p, G, M, N, K, tile);
      p.silu_mul = sh.silu;
      const int cols = sh.silu ? N / 2 : N;
      const std::vector<uint16_t> want = run(p, M, cols);
      p.w = nullptr;
      p.w8 = dq.p;
      p.w8_scale = ds.p;
      p.w8_scale_stride = static_cast<int64_t>(N) * scols;
      const std::vector<uint16_t> got = run(p, M, cols);
      int bad = 0, nan = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        bad += got[i] != want[i];
        nan += (got[i] & 0x7fff) > 0x7f80;
      }
      CHECK(nan == 0);
      CHECK(bad == 0);
    }
  }
}

// The header's batch-invariance claim: an output's accumulation order depends only on k, so every tile (mma.sync
// and wgmma alike) gives the same bits, and a row's result does not depend on which tile its batch size picks; with
// fp8 weights every tile gives the bits of the bf16 path on the dequantised weights.
// On a Hopper GPU an sm_90a build must offer the wgmma tile (the default build does).
TEST_CASE("every GEMM tile gives the same bits", "[gpu][gemm][fp8]") {
  int dev = 0, major = 0;
  AFD_CUDA_CHECK(cudaGetDevice(&dev));
  AFD_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
#ifdef AFD_CUDA_WGMMA
  if (major == 9) REQUIRE(cuda::gemm_tile_available(cuda::GemmTile::kM128N256Wgmma));
#endif
  // Enough (M tile, N block) jobs that the persistent wgmma kernels' blocks each take several, with an odd number
  // of k stages (17, the last one partial: k % 64 = 16, and k % 128 = 16 for the fp8 scale blocks), so their stage
  // rings (and the fp8 kernel's e4m3 ring) wrap across jobs at every phase.
  std::mt19937 rng(7);
  std::vector<int> counts = {130, 0, 1, 257, 7};
  for (int g = 0; g < 40; ++g) counts.push_back(g % 9 == 0 ? 0 : static_cast<int>(rng() % 300));
  const int G = static_cast<int>(counts.size()), N = 2064, K = 1040, scols = (K + 127) / 128;
  std::uniform_real_distribution<float> d(-1.0f, 1.0f), sd(1e-3f, 4e-3f);
  std::vector<int> off(G + 1, 0);
  for (int g = 0; g < G; ++g) off[g + 1] = off[g] + counts[g];
  const int M = off[G], arows = M + 5;
  std::vector<uint16_t> a(static_cast<size_t>(arows) * K);
  for (auto& v : a) v = f32_to_bf16(d(rng));
  // The weights are e4m3 codes times per-row block scales; w holds their dequantised bf16 values.
  const std::vector<uint8_t> q = random_e4m3(static_cast<size_t>(G) * N * K, rng);
  std::vector<float> scale(static_cast<size_t>(G) * N * scols);
  for (auto& s : scale) s = sd(rng);
  const std::vector<uint16_t> w = dequantise(q, scale, K);
  std::vector<int32_t> gather(M);
  for (auto& r : gather) r = static_cast<int32_t>(rng() % arows);
  // The same weights with a group stride that is not whole rows (64 NaN elements between groups, never read): the
  // wgmma tile then runs its block-synchronous kernel instead of the TMA one, which needs whole rows.
  const int64_t padded_stride = static_cast<int64_t>(N) * K + 64;
  std::vector<uint16_t> wp(static_cast<size_t>(G) * padded_stride, kNanBf16);
  std::vector<uint8_t> qp(static_cast<size_t>(G) * padded_stride, 0x7f);  // e4m3 NaN
  for (int g = 0; g < G; ++g) {
    const int64_t from = static_cast<int64_t>(g) * N * K, count = static_cast<int64_t>(N) * K;
    std::copy_n(w.begin() + from, count, wp.begin() + g * padded_stride);
    std::copy_n(q.begin() + from, count, qp.begin() + g * padded_stride);
  }
  Dev<uint16_t> da(a), dw(w), dwp(wp);
  Dev<uint8_t> dq(q), dqp(qp);
  Dev<float> ds(scale);
  Dev<int32_t> dg(gather), doff(off);
  std::vector<uint16_t> first;
  for (const bool silu : {false, true})
    for (const bool fp8 : {false, true})
      for (const bool padded : {false, true})
        for (const auto tile : cuda::kAllGemmTiles) {
          if (!cuda::gemm_tile_available(tile)) continue;
          INFO("tile " << cuda::gemm_tile_name(tile) << " silu " << silu << " fp8 " << fp8 << " padded group stride "
                       << padded);
          const int bm = cuda::gemm_tile_rows(tile);
          std::vector<int> toff(G + 1, 0);
          for (int g = 0; g < G; ++g) toff[g + 1] = toff[g] + (counts[g] + bm - 1) / bm;
          Dev<int32_t> dtoff(toff);
          cuda::GroupedGemmParams p =
              bf16_params(da.p, dg.p, padded ? dwp.p : dw.p, doff.p, dtoff.p, G, M, N, K, tile);
          if (padded) p.w_stride = padded_stride;
          p.silu_mul = silu;
          if (fp8) {
            p.w = nullptr;
            p.w8 = padded ? dqp.p : dq.p;
            p.w8_scale = ds.p;
            p.w8_scale_stride = static_cast<int64_t>(N) * scols;
          }
          const std::vector<uint16_t> got = run(p, M, silu ? N / 2 : N);
          if (tile == cuda::kAllGemmTiles[0] && !padded && !fp8) {
            first = got;
            continue;
          }
          int bad = 0, nan = 0;
          double worst = 0;
          for (size_t i = 0; i < got.size(); ++i) {
            bad += got[i] != first[i];
            nan += (got[i] & 0x7fff) > 0x7f80;
            worst = std::max(worst, static_cast<double>(std::fabs(bf16_to_f32(got[i]) - bf16_to_f32(first[i]))));
          }
          INFO("differing outputs " << bad << " of " << got.size() << ", largest difference " << worst);
          CHECK(nan == 0);
          CHECK(bad == 0);
        }
}
