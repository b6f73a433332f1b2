// GPU fp8 block dequantisation against the host rule, at odd sizes with partial edge blocks, the output surrounded
// by NaN-poisoned guard elements that must stay untouched.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/fp8_dequant.cuh"
#include "util/error.h"
#include "util/numeric.h"

using namespace afd;

TEST_CASE("fp8 e4m3 block dequant to bf16 matches the host rule bit for bit", "[gpu][fp8]") {
  struct Case {
    int64_t rows, cols;
    int br, bc;
  };
  for (const Case c : {Case{333, 200, 128, 128}, Case{576, 130, 128, 128}, Case{1, 1, 128, 128},
                       Case{129, 257, 64, 32}}) {
    INFO(c.rows << "x" << c.cols << " blocks " << c.br << "x" << c.bc);
    const int64_t n = c.rows * c.cols, srows = (c.rows + c.br - 1) / c.br, scols = (c.cols + c.bc - 1) / c.bc;
    std::mt19937 rng(static_cast<uint32_t>(n));
    std::vector<uint8_t> q(n);
    for (auto& v : q) {
      do v = static_cast<uint8_t>(rng()); while ((v & 0x7f) == 0x7f);  // no NaN codes
    }
    std::vector<float> s(srows * scols);
    std::uniform_real_distribution<float> sd(1e-3f, 1e-1f);
    for (auto& v : s) v = sd(rng);

    constexpr int64_t kGuard = 64;
    uint8_t* dq;
    float* ds;
    __nv_bfloat16* dout;
    AFD_CUDA_CHECK(cudaMalloc(&dq, n));
    AFD_CUDA_CHECK(cudaMalloc(&ds, s.size() * 4));
    AFD_CUDA_CHECK(cudaMalloc(&dout, (n + 2 * kGuard) * 2));
    AFD_CUDA_CHECK(cudaMemcpy(dq, q.data(), n, cudaMemcpyHostToDevice));
    AFD_CUDA_CHECK(cudaMemcpy(ds, s.data(), s.size() * 4, cudaMemcpyHostToDevice));
    std::vector<uint16_t> poison(n + 2 * kGuard, 0x7fc0);  // bf16 NaN
    AFD_CUDA_CHECK(cudaMemcpy(dout, poison.data(), poison.size() * 2, cudaMemcpyHostToDevice));

    cuda::dequant_fp8_e4m3_bf16({dq, ds, dout + kGuard, c.rows, c.cols, c.br, c.bc}, nullptr);
    AFD_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<uint16_t> out(poison.size());
    AFD_CUDA_CHECK(cudaMemcpy(out.data(), dout, out.size() * 2, cudaMemcpyDeviceToHost));
    AFD_CUDA_CHECK(cudaFree(dq));
    AFD_CUDA_CHECK(cudaFree(ds));
    AFD_CUDA_CHECK(cudaFree(dout));

    for (int64_t g = 0; g < kGuard; ++g) {
      REQUIRE(out[g] == 0x7fc0);
      REQUIRE(out[kGuard + n + g] == 0x7fc0);
    }
    int64_t mismatches = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = i / c.cols, col = i % c.cols;
      const uint16_t want = f32_to_bf16(fp8_e4m3_to_f32(q[i]) * s[(r / c.br) * scols + col / c.bc]);
      mismatches += out[kGuard + i] != want;
    }
    CHECK(mismatches == 0);
  }
}
