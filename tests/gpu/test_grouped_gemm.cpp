// The grouped bf16 GEMM kernel against a host fp32 reference: every tile shape, groups with 0 rows, groups larger
// than a tile, a row gather, k and n that are not multiples of the tile, and NaN-poisoned output that must be
// fully overwritten.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "cuda/grouped_gemm.cuh"
#include "util/error.h"
#include "util/numeric.h"

using namespace afd;

TEST_CASE("grouped bf16 GEMM matches the host reference", "[gpu][gemm]") {
  const std::vector<int> counts = {0, 1, 17, 0, 130, 5, 64, 0};
  const int G = static_cast<int>(counts.size());
  for (const auto tile : cuda::kAllGemmTiles) {
    if (!cuda::gemm_tile_available(tile)) continue;  // the wgmma tile off sm_90a
    for (const auto& [N, K] : {std::pair{40, 72}, std::pair{264, 200}}) {
      const int bm = cuda::gemm_tile_rows(tile);
      INFO("tile " << cuda::gemm_tile_name(tile) << " n " << N << " k " << K);
      std::vector<int> off(G + 1, 0), toff(G + 1, 0);
      for (int g = 0; g < G; ++g) {
        off[g + 1] = off[g] + counts[g];
        toff[g + 1] = toff[g] + (counts[g] + bm - 1) / bm;
      }
      const int M = off[G], arows = M + 3;
      std::mt19937 rng(N * K + bm);
      std::uniform_real_distribution<float> d(-1.0f, 1.0f);
      std::vector<uint16_t> a(static_cast<size_t>(arows) * K), w(static_cast<size_t>(G) * N * K);
      for (auto& v : a) v = f32_to_bf16(d(rng));
      for (auto& v : w) v = f32_to_bf16(d(rng));
      std::vector<int32_t> gather(M);
      for (int r = 0; r < M; ++r) gather[r] = static_cast<int32_t>(rng() % arows);
      uint16_t *da, *dw, *dc;
      int32_t *dg, *doff, *dtoff;
      AFD_CUDA_CHECK(cudaMalloc(&da, a.size() * 2));
      AFD_CUDA_CHECK(cudaMalloc(&dw, w.size() * 2));
      AFD_CUDA_CHECK(cudaMalloc(&dc, static_cast<size_t>(M) * N * 2));
      AFD_CUDA_CHECK(cudaMalloc(&dg, M * 4));
      AFD_CUDA_CHECK(cudaMalloc(&doff, (G + 1) * 4));
      AFD_CUDA_CHECK(cudaMalloc(&dtoff, (G + 1) * 4));
      AFD_CUDA_CHECK(cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice));
      AFD_CUDA_CHECK(cudaMemcpy(dw, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
      AFD_CUDA_CHECK(cudaMemcpy(dg, gather.data(), M * 4, cudaMemcpyHostToDevice));
      AFD_CUDA_CHECK(cudaMemcpy(doff, off.data(), (G + 1) * 4, cudaMemcpyHostToDevice));
      AFD_CUDA_CHECK(cudaMemcpy(dtoff, toff.data(), (G + 1) * 4, cudaMemcpyHostToDevice));
      AFD_CUDA_CHECK(cudaMemset(dc, 0xff, static_cast<size_t>(M) * N * 2));
      cuda::GroupedGemmParams p{};
      p.a = reinterpret_cast<const __nv_bfloat16*>(da);
      p.a_rows = dg;
      p.w = reinterpret_cast<const __nv_bfloat16*>(dw);
      p.w_stride = static_cast<int64_t>(N) * K;
      p.c = reinterpret_cast<__nv_bfloat16*>(dc);
      p.group_offset = doff;
      p.tile_offset = dtoff;
      p.groups = G;
      p.max_tiles = (M + bm - 1) / bm + G;
      p.n = N;
      p.k = K;
      p.tile = tile;
      cuda::grouped_gemm_bf16_bf16(p, nullptr);
      AFD_CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<uint16_t> c(static_cast<size_t>(M) * N);
      AFD_CUDA_CHECK(cudaMemcpy(c.data(), dc, c.size() * 2, cudaMemcpyDeviceToHost));
      for (int g = 0; g < G; ++g)
        for (int r = off[g]; r < off[g + 1]; ++r)
          for (int n = 0; n < N; ++n) {
            double ref = 0;
            for (int k = 0; k < K; ++k)
              ref += static_cast<double>(bf16_to_f32(a[static_cast<size_t>(gather[r]) * K + k])) *
                     bf16_to_f32(w[(static_cast<size_t>(g) * N + n) * K + k]);
            const float got = bf16_to_f32(c[static_cast<size_t>(r) * N + n]);
            INFO("group " << g << " row " << r << " col " << n);
            REQUIRE(std::isfinite(got));
            REQUIRE(std::fabs(got - ref) <= std::fabs(ref) * (1.0 / 256) + 1e-4 * std::sqrt(K));
          }
      for (void* ptr : {static_cast<void*>(da), static_cast<void*>(dw), static_cast<void*>(dc),
                        static_cast<void*>(dg), static_cast<void*>(doff), static_cast<void*>(dtoff)})
        AFD_CUDA_CHECK(cudaFree(ptr));
    }
  }
}

TEST_CASE("grouped GEMM with the fused SiLU·mul epilogue matches the host gated-MLP rule", "[gpu][gemm]") {
  const int I = 136, N = 2 * I, K = 72;
  std::vector<int> seen;  // the interleave is a permutation of the gate/up rows
  for (int r = 0; r < N; ++r) seen.push_back(cuda::interleaved_gate_up_source(r, I));
  std::sort(seen.begin(), seen.end());
  for (int r = 0; r < N; ++r) REQUIRE(seen[r] == r);
  std::vector<int> row_of(N);  // inverse: which interleaved row holds cat(gate, up) row s
  for (int r = 0; r < N; ++r) row_of[cuda::interleaved_gate_up_source(r, I)] = r;
  const std::vector<int> counts = {3, 0, 40, 129};
  const int G = static_cast<int>(counts.size());
  for (const auto tile : cuda::kAllGemmTiles) {
    if (!cuda::gemm_tile_available(tile)) continue;  // the wgmma tile off sm_90a
    const int bm = cuda::gemm_tile_rows(tile);
    INFO("tile " << cuda::gemm_tile_name(tile));
    std::vector<int> off(G + 1, 0), toff(G + 1, 0);
    for (int g = 0; g < G; ++g) {
      off[g + 1] = off[g] + counts[g];
      toff[g + 1] = toff[g] + (counts[g] + bm - 1) / bm;
    }
    const int M = off[G];
    std::mt19937 rng(bm);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<uint16_t> a(static_cast<size_t>(M) * K), w(static_cast<size_t>(G) * N * K);
    for (auto& v : a) v = f32_to_bf16(d(rng));
    for (auto& v : w) v = f32_to_bf16(d(rng));
    uint16_t *da, *dw, *dc;
    int32_t *doff, *dtoff;
    AFD_CUDA_CHECK(cudaMalloc(&da, a.size() * 2));
    AFD_CUDA_CHECK(cudaMalloc(&dw, w.size() * 2));
    AFD_CUDA_CHECK(cudaMalloc(&dc, static_cast<size_t>(M) * I * 2));
    AFD_CUDA_CHECK(cudaMalloc(&doff, (G + 1) * 4));
    AFD_CUDA_CHECK(cudaMalloc(&dtoff, (G + 1) * 4));
    AFD_CUDA_CHECK(cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice));
    AFD_CUDA_CHECK(cudaMemcpy(dw, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
    AFD_CUDA_CHECK(cudaMemcpy(doff, off.data(), (G + 1) * 4, cudaMemcpyHostToDevice));
    AFD_CUDA_CHECK(cudaMemcpy(dtoff, toff.data(), (G + 1) * 4, cudaMemcpyHostToDevice));
    AFD_CUDA_CHECK(cudaMemset(dc, 0xff, static_cast<size_t>(M) * I * 2));
    cuda::GroupedGemmParams p{};
    p.a = reinterpret_cast<const __nv_bfloat16*>(da);
    p.w = reinterpret_cast<const __nv_bfloat16*>(dw);
    p.w_stride = static_cast<int64_t>(N) * K;
    p.c = reinterpret_cast<__nv_bfloat16*>(dc);
    p.group_offset = doff;
    p.tile_offset = dtoff;
    p.groups = G;
    p.max_tiles = (M + bm - 1) / bm + G;
    p.n = N;
    p.k = K;
    p.tile = tile;
    p.silu_mul = true;
    cuda::grouped_gemm_bf16_bf16(p, nullptr);
    AFD_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<uint16_t> c(static_cast<size_t>(M) * I);
    AFD_CUDA_CHECK(cudaMemcpy(c.data(), dc, c.size() * 2, cudaMemcpyDeviceToHost));
    auto dot = [&](int row, int g, int wrow) {
      double s = 0;
      for (int k = 0; k < K; ++k)
        s += static_cast<double>(bf16_to_f32(a[static_cast<size_t>(row) * K + k])) *
             bf16_to_f32(w[(static_cast<size_t>(g) * N + wrow) * K + k]);
      return s;
    };
    for (int g = 0; g < G; ++g)
      for (int r = off[g]; r < off[g + 1]; ++r)
        for (int f = 0; f < I; ++f) {
          const float gv = round_bf16(static_cast<float>(dot(r, g, row_of[f])));
          const float uv = round_bf16(static_cast<float>(dot(r, g, row_of[I + f])));
          const float ref = round_bf16(round_bf16(gv / (1.0f + std::exp(-gv))) * uv);
          const float got = bf16_to_f32(c[static_cast<size_t>(r) * I + f]);
          INFO("group " << g << " row " << r << " feature " << f);
          REQUIRE(std::isfinite(got));
          REQUIRE(std::fabs(got - ref) <= 2e-2 * std::fabs(ref) + 1e-2);
        }
    for (void* ptr : {static_cast<void*>(da), static_cast<void*>(dw), static_cast<void*>(dc),
                      static_cast<void*>(doff), static_cast<void*>(dtoff)})
      AFD_CUDA_CHECK(cudaFree(ptr));
  }
}
