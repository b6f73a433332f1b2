// One MoE FFN layer on the GPU at DeepSeek-V3 expert shapes (256 experts, top-8, hidden 7168, width 2048) and
// DeepSeek-V2-Lite shapes (64, top-6, 2048, 1408), 64 / 256 / 4096 tokens, synthetic random weights, against the
// ceilings measured in the same run: device-to-device copy GB/s (bytes read + written) and cuBLAS bf16 GEMM
// TFLOP/s (8192^3). The layer (router, permutation, grouped GEMMs, SiLU·mul, combine, residual) runs as a CUDA
// graph replay, with bf16 experts and with weight-only fp8 experts (random e4m3 + per-row scales); the expert
// GEMMs alone are also timed against cublasGemmGroupedBatchedEx and a cublasGemmEx loop.
// Usage: afd-bench-moe-gpu [csv_path]   (AFD_BENCH_TOKENS=256,4096 times only those token counts)
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.cuh"
#include "moe_gpu/blas_check.h"
#include "moe_gpu/device.h"
#include "moe_gpu/ffn_layer.h"

using namespace afd;
using gpu::bf16;

namespace {

using bench::fill;
using bench::stage_breakdown;
using bench::time_ms;

struct Shape {
  const char* name;
  int E, k, h, I, n_group, topk_group;
  RouterKind router;
  double scale;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const gpu::DeviceInfo info = gpu::device_info(0);
    std::printf("%s\n", gpu::describe(info).c_str());
    cudaStream_t s;
    AFD_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cublasHandle_t blas;
    AFD_CUBLAS_CHECK(cublasCreate(&blas));
    AFD_CUBLAS_CHECK(cublasSetStream(blas, s));

    // Ceilings. Copy: 2 GiB each way counted as read + write bytes.
    double copy_gbps, gemm_tflops;
    {
      const size_t bytes = static_cast<size_t>(1) << 31;
      gpu::DeviceArena a(2 * bytes);
      char* src = a.take<char>(bytes);
      char* dst = a.take<char>(bytes);
      fill(reinterpret_cast<bf16*>(src), bytes / 2, 1, 1.0f);
      const double ms = time_ms(s, 3, 20, [&] {
        AFD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s));
      });
      copy_gbps = 2.0 * bytes / (ms * 1e-3) / 1e9;
      const int N = 8192;
      gpu::DeviceArena g(static_cast<size_t>(3) * N * N * 2);
      bf16* A = g.take<bf16>(static_cast<size_t>(N) * N);
      bf16* B = g.take<bf16>(static_cast<size_t>(N) * N);
      bf16* C = g.take<bf16>(static_cast<size_t>(N) * N);
      fill(A, static_cast<int64_t>(N) * N, 2, 1.0f);
      fill(B, static_cast<int64_t>(N) * N, 3, 1.0f);
      const float one = 1.0f, zero = 0.0f;
      const double gms = time_ms(s, 3, 20, [&] {
        AFD_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, N, N, N, &one, A, CUDA_R_16BF, N, B,
                                      CUDA_R_16BF, N, &zero, C, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
      });
      gemm_tflops = 2.0 * N * N * N / (gms * 1e-3) / 1e12;
    }
    std::printf("ceilings: d2d copy %.0f GB/s (read+write), cuBLAS bf16 GEMM 8192^3 %.0f TFLOP/s\n", copy_gbps,
                gemm_tflops);
    FILE* csv = argc > 1 ? std::fopen(argv[1], "w") : nullptr;
    if (csv)
      std::fprintf(csv, "shape,tokens,layer_ms,touched_experts,touched_gb,gbps,bw_frac,tflops,gemm_frac,"
                        "best_tile,ours_gemm_ms,cublas_grouped_ms,cublas_loop_ms,copy_gbps,gemm_tflops,fp8_layer_ms,fp8_gbps,"
                        "fp8_bw_frac\n");
    const char* header = "%-8s %6s %9s %7s %9s %8s %7s %8s %7s | GEMMs only (ms): %8s %8s %9s %8s\n";

    std::vector<int> token_counts = {64, 256, 4096};
    if (const char* env = std::getenv("AFD_BENCH_TOKENS")) {
      token_counts.clear();
      std::stringstream ss(env);
      for (std::string item; std::getline(ss, item, ',');) {
        const int n = std::atoi(item.c_str());
        AFD_REQUIRE(n > 0 && n <= 4096, "AFD_BENCH_TOKENS: each count must be in 1..4096, not '", item, "'");
        token_counts.push_back(n);
      }
    }
    const Shape shapes[] = {{"V3", 256, 8, 7168, 2048, 8, 4, RouterKind::kSigmoidGroupTopk, 2.5},
                            {"V2-Lite", 64, 6, 2048, 1408, 1, 1, RouterKind::kSoftmaxGreedy, 1.0}};
    for (const Shape& sh : shapes) {
      ModelConfig c;
      c.arch = sh.router == RouterKind::kSigmoidGroupTopk ? Arch::kDeepSeekV3 : Arch::kDeepSeekV2;
      c.hidden_size = sh.h;
      c.moe_intermediate_size = sh.I;
      c.n_routed_experts = sh.E;
      c.top_k = sh.k;
      c.n_group = sh.n_group;
      c.topk_group = sh.topk_group;
      c.router = sh.router;
      c.norm_topk_prob = sh.router == RouterKind::kSigmoidGroupTopk;
      c.routed_scaling_factor = sh.scale;
      const int T = 4096, E = sh.E, h = sh.h, I = sh.I, k = sh.k;
      const size_t gu = static_cast<size_t>(2) * I * h, dn = static_cast<size_t>(h) * I;
      gpu::DeviceArena wa(E * (gu + dn) * 2 + static_cast<size_t>(E) * h * 2 + E * 4 + h * 2 + 4096);
      bf16* w_gu = wa.take<bf16>(E * gu);
      bf16* w_dn = wa.take<bf16>(E * dn);
      bf16* r16 = wa.take<bf16>(static_cast<size_t>(E) * h);
      float* bias = wa.take<float>(E);
      bf16* norm = wa.take<bf16>(h);
      fill(w_gu, E * gu, 11, 0.03f);
      fill(w_dn, E * dn, 12, 0.03f);
      fill(r16, static_cast<int64_t>(E) * h, 13, 0.05f);
      fill(norm, h, 14, 0.1f, 1.0f);
      AFD_CUDA_CHECK(cudaMemset(bias, 0, E * 4));
      gpu::FfnLayerDev L;
      L.post_norm = norm;
      L.moe = true;
      L.router = r16;
      L.router_fp32_logits = true;
      L.router_bias = sh.router == RouterKind::kSigmoidGroupTopk ? bias : nullptr;
      L.experts_gate_up = w_gu;
      L.experts_down = w_dn;
      L.expert_width = I;
      L.expert_count = E;
      // The same experts' shapes as weight-only fp8 (random e4m3, per-row scales): half the bytes to stream.
      const int64_t gu_sc = static_cast<int64_t>(2) * I * cuda::fp8_scale_cols(h);
      const int64_t dn_sc = static_cast<int64_t>(h) * cuda::fp8_scale_cols(I);
      gpu::DeviceArena wa8(E * (gu + dn) + static_cast<size_t>(E) * (gu_sc + dn_sc) * 4 + 4096);
      gpu::FfnLayerDev L8 = L;
      uint8_t* q_gu = wa8.take<uint8_t>(E * gu);
      uint8_t* q_dn = wa8.take<uint8_t>(E * dn);
      float* s_gu = wa8.take<float>(E * gu_sc);
      float* s_dn = wa8.take<float>(E * dn_sc);
      bench::fill_fp8(q_gu, static_cast<int64_t>(E * gu), 21);
      bench::fill_fp8(q_dn, static_cast<int64_t>(E * dn), 22);
      bench::fill_f32(s_gu, E * gu_sc, 23, 1e-4f, 2e-4f);  // |w| up to 448 * 2e-4 = 0.09
      bench::fill_f32(s_dn, E * dn_sc, 24, 1e-4f, 2e-4f);
      L8.use_fp8_experts(q_gu, s_gu, q_dn, s_dn);
      gpu::DeviceArena plan;
      gpu::carve_workspace(c, T, plan);
      gpu::DeviceArena wsa(plan.used() + static_cast<size_t>(T) * (k * h + k * 2 * I + h) * 2 + 3 * static_cast<size_t>(E) * 8 + 8192);
      const gpu::FfnWorkspace ws = gpu::carve_workspace(c, T, wsa);
      AFD_CUBLAS_CHECK(cublasSetWorkspace(blas, ws.cublas_ws, ws.cublas_ws_bytes));
      bf16* x0 = wsa.take<bf16>(static_cast<size_t>(T) * h);
      bf16* xg = wsa.take<bf16>(static_cast<size_t>(T) * k * h);  // gathered rows for the cuBLAS variants
      bf16* hbuf = wsa.take<bf16>(static_cast<size_t>(T) * k * 2 * I);  // their gate/up output (no fused SiLU)
      void** ptrs = wsa.take<void*>(3 * static_cast<size_t>(E));
      fill(x0, static_cast<int64_t>(T) * h, 15, 1.0f);
      AFD_CUDA_CHECK(cudaDeviceSynchronize());

      std::printf(header, "shape", "tokens", "layer ms", "experts", "GB", "GB/s", "bw", "TFLOP/s", "gemm", "besttile",
                  "ours", "cublasGrp", "cublasLp");
      for (int n : token_counts) {
        // The whole layer as a graph replay, for every GEMM tile (the default one is marked).
        const cuda::GemmTile def = gpu::routed_tile(c, n);
        double ms = 0, best_ms = 1e30;
        cuda::GemmTile best = def;
        int touched = 0;
        double bytes = 0;
        const double flops = 2.0 * n * k * 3.0 * I * h;
        std::vector<int32_t> off(E + 1), row_token(static_cast<size_t>(n) * k);
        // Ten replays of body() captured as a graph per timed sample, so the host's graph launch overlaps the GPU's
        // work as in a pipeline; ms per replay.
        auto graph_ms = [&](const std::function<void()>& body) {
          body();  // first run outside capture: sets kernel attributes
          AFD_CUDA_CHECK(cudaStreamSynchronize(s));
          cudaGraph_t graph;
          cudaGraphExec_t exec;
          AFD_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
          body();
          AFD_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
          AFD_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
          const double t = time_ms(s, 2, 11, [&] {
                             for (int r = 0; r < 10; ++r) AFD_CUDA_CHECK(cudaGraphLaunch(exec, s));
                           }) / 10;
          cudaGraphExecDestroy(exec);
          cudaGraphDestroy(graph);
          return t;
        };
        auto restore = [&] {
          AFD_CUDA_CHECK(cudaMemcpyAsync(ws.x, x0, static_cast<size_t>(n) * h * 2, cudaMemcpyDeviceToDevice, s));
        };
        // The graphs below restore x first (so every replay routes alike); that copy's own time is subtracted.
        const double restore_ms = graph_ms(restore);
        std::printf("  %-8s %6d x restore (subtracted below) %.1f us\n", sh.name, n, restore_ms * 1e3);
        for (const cuda::GemmTile tile : cuda::kAllGemmTiles) {
          if (!cuda::gemm_tile_available(tile)) continue;  // the wgmma tiles off sm_90a
          if (tile == cuda::GemmTile::kM128N256WgmmaFp8) continue;  // with bf16 weights the 128x256wg kernel
          const double t = graph_ms([&] {
                             restore();
                             gpu::run_ffn_layer(c, L, ws, blas, ws.x, n, s, &tile);
                           }) - restore_ms;
          // What the routing touched (the same every replay: x is restored first).
          AFD_CUDA_CHECK(cudaMemcpy(off.data(), ws.group_offset, (E + 1) * 4, cudaMemcpyDeviceToHost));
          AFD_CUDA_CHECK(cudaMemcpy(row_token.data(), ws.row_token, row_token.size() * 4, cudaMemcpyDeviceToHost));
          std::vector<uint16_t> out(static_cast<size_t>(n) * h);
          AFD_CUDA_CHECK(cudaMemcpy(out.data(), ws.x, out.size() * 2, cudaMemcpyDeviceToHost));
          for (uint16_t v : out)
            AFD_REQUIRE((v & 0x7f80) != 0x7f80, "non-finite layer output in ", sh.name, " at ", n, " tokens");
          touched = 0;
          for (int e = 0; e < E; ++e) touched += off[e + 1] > off[e];
          bytes = double(touched) * (gu + dn) * 2;
          const double gbps = bytes / (t * 1e-3) / 1e9, tflops = flops / (t * 1e-3) / 1e12;
          std::printf("  %-8s %6d tile %-8s%s layer %8.3f ms  %6.0f GB/s = %.2f of copy  %6.1f TFLOP/s = %.2f of GEMM\n",
                      sh.name, n, cuda::gemm_tile_name(tile), tile == def ? "*" : " ", t, gbps, gbps / copy_gbps,
                      tflops, tflops / gemm_tflops);
          if (tile == def) ms = t;
          if (t < best_ms) best_ms = t, best = tile;
        }
        const double gbps = bytes / (ms * 1e-3) / 1e9, tflops = flops / (ms * 1e-3) / 1e12;
        // fp8 experts, every tile (the fp8 default marked): bytes = the touched experts' e4m3 weights and scales.
        const cuda::GemmTile def8 = gpu::routed_tile(c, n, true);
        const double bytes8 = double(touched) * (gu + dn + (gu_sc + dn_sc) * 4.0);
        double ms8 = 0;
        for (const cuda::GemmTile tile : cuda::kAllGemmTiles) {
          if (!cuda::gemm_tile_available(tile)) continue;  // the wgmma tiles off sm_90a
          const double t8 = graph_ms([&] {
                              restore();
                              gpu::run_ffn_layer(c, L8, ws, blas, ws.x, n, s, &tile);
                            }) - restore_ms;
          const double g8 = bytes8 / (t8 * 1e-3) / 1e9;
          std::printf("  %-8s %6d fp8 tile %-8s%s layer %8.3f ms  %6.0f GB/s = %.2f of copy  %6.1f TFLOP/s = %.2f of "
                      "GEMM  (%.2fx the bf16 layer)\n",
                      sh.name, n, cuda::gemm_tile_name(tile), tile == def8 ? "*" : " ", t8, g8, g8 / copy_gbps,
                      flops / (t8 * 1e-3) / 1e12, flops / (t8 * 1e-3) / 1e12 / gemm_tflops, ms / t8);
          if (tile == def8) ms8 = t8;
        }
        const double gbps8 = bytes8 / (ms8 * 1e-3) / 1e9;
        stage_breakdown(c, L, ws, blas, x0, n, s);

        // Expert GEMMs alone: ours (gather fused) vs cuBLAS grouped and looped on pre-gathered rows.
        const int rows = n * k;
        const cuda::GemmTile tile = best;
        auto ours = [&] { gpu::expert_gemms(L, h, ws, tile, rows, s); };
        // The permutation's tile offsets depend on the tile: route once more with the one timed here.
        AFD_CUDA_CHECK(cudaMemcpyAsync(ws.x, x0, static_cast<size_t>(n) * h * 2, cudaMemcpyDeviceToDevice, s));
        gpu::run_ffn_layer(c, L, ws, blas, ws.x, n, s, &tile);
        const double ours_ms = time_ms(s, 2, 10, ours);
        for (int r = 0; r < rows; ++r)
          AFD_CUDA_CHECK(cudaMemcpyAsync(xg + static_cast<size_t>(r) * h, ws.xn + static_cast<size_t>(row_token[r]) * h, h * 2,
                                         cudaMemcpyDeviceToDevice, s));
        std::vector<int> gm, gn, gk, lda, ldb, ldc, gsz;
        std::vector<cublasOperation_t> ta, tb;
        std::vector<float> alpha, beta;
        std::vector<const void*> A1, B1, A2, B2;
        std::vector<void*> C1, C2;
        for (int e = 0; e < E; ++e) {
          const int m = off[e + 1] - off[e];
          if (!m) continue;
          ta.push_back(CUBLAS_OP_T), tb.push_back(CUBLAS_OP_N), gn.push_back(m), gsz.push_back(1);
          alpha.push_back(1.0f), beta.push_back(0.0f);
          A1.push_back(w_gu + e * gu), B1.push_back(xg + static_cast<size_t>(off[e]) * h), C1.push_back(hbuf + static_cast<size_t>(off[e]) * 2 * I);
          A2.push_back(w_dn + e * dn), B2.push_back(ws.act + static_cast<size_t>(off[e]) * I), C2.push_back(ws.y + static_cast<size_t>(off[e]) * h);
        }
        const int G = static_cast<int>(gn.size());
        void** dA1 = ptrs;  // device pointer arrays, [G] each, reused for both GEMMs
        void** dB1 = ptrs + E;
        void** dC1 = ptrs + 2 * E;
        auto grouped = [&](const std::vector<const void*>& A, const std::vector<const void*>& B,
                           const std::vector<void*>& C, int N, int K) {
          gm.assign(G, N), gk.assign(G, K), lda.assign(G, K), ldb.assign(G, K), ldc.assign(G, N);
          AFD_CUDA_CHECK(cudaMemcpyAsync(dA1, A.data(), G * 8, cudaMemcpyHostToDevice, s));
          AFD_CUDA_CHECK(cudaMemcpyAsync(dB1, B.data(), G * 8, cudaMemcpyHostToDevice, s));
          AFD_CUDA_CHECK(cudaMemcpyAsync(dC1, C.data(), G * 8, cudaMemcpyHostToDevice, s));
          AFD_CUBLAS_CHECK(cublasGemmGroupedBatchedEx(blas, ta.data(), tb.data(), gm.data(), gn.data(), gk.data(),
                                                      alpha.data(), dA1, CUDA_R_16BF, lda.data(), dB1, CUDA_R_16BF,
                                                      ldb.data(), beta.data(), dC1, CUDA_R_16BF, ldc.data(), G,
                                                      gsz.data(), CUBLAS_COMPUTE_32F));
          AFD_CUDA_CHECK(cudaStreamSynchronize(s));  // the host pointer arrays are rewritten by the next call
        };
        const double grp_ms = time_ms(s, 2, 10, [&] {
          grouped(A1, B1, C1, 2 * I, h);
          grouped(A2, B2, C2, h, I);
        });
        const float one = 1.0f, zero = 0.0f;
        const double loop_ms = time_ms(s, 2, 10, [&] {
          for (int i = 0; i < G; ++i) {
            AFD_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, 2 * I, gn[i], h, &one, A1[i], CUDA_R_16BF,
                                          h, B1[i], CUDA_R_16BF, h, &zero, C1[i], CUDA_R_16BF, 2 * I,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            AFD_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, h, gn[i], I, &one, A2[i], CUDA_R_16BF, I,
                                          B2[i], CUDA_R_16BF, I, &zero, C2[i], CUDA_R_16BF, h,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
          }
        });
        std::printf("%-8s %6d %9.3f %7d %9.2f %8.0f %7.2f %8.1f %7.2f | %8s %8.3f %9.3f %8.3f\n", sh.name, n, ms,
                    touched, bytes / 1e9, gbps, gbps / copy_gbps, tflops, tflops / gemm_tflops,
                    cuda::gemm_tile_name(best), ours_ms, grp_ms, loop_ms);
        if (csv)
          std::fprintf(csv, "%s,%d,%.4f,%d,%.3f,%.1f,%.3f,%.2f,%.3f,%s,%.4f,%.4f,%.4f,%.1f,%.1f,%.4f,%.1f,%.3f\n",
                       sh.name, n, ms, touched, bytes / 1e9, gbps, gbps / copy_gbps, tflops, tflops / gemm_tflops,
                       cuda::gemm_tile_name(best), ours_ms, grp_ms, loop_ms, copy_gbps, gemm_tflops, ms8, gbps8,
                       gbps8 / copy_gbps);
      }
    }
    if (csv) std::fclose(csv);
    cublasDestroy(blas);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "afd-bench-moe-gpu: %s\n", e.what());
    return 1;
  }
}
