// GPU ceilings for afd-bench: HBM copy bandwidth, cuBLAS bf16 GEMM rate, pinned PCIe bandwidth.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <chrono>

#include "bench/ceilings.h"
#include "util/error.h"

namespace afd::bench {

namespace {
// Best of `reps` timings (CUDA events) of `op`, in seconds.
template <typename Op>
float best_seconds(int reps, Op op) {
  cudaEvent_t a, b;
  AFD_CUDA_CHECK(cudaEventCreate(&a));
  AFD_CUDA_CHECK(cudaEventCreate(&b));
  op();
  float best = 1e30f;
  for (int r = 0; r < reps; ++r) {
    AFD_CUDA_CHECK(cudaEventRecord(a));
    op();
    AFD_CUDA_CHECK(cudaEventRecord(b));
    AFD_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    AFD_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    best = std::min(best, ms / 1e3f);
  }
  AFD_CUDA_CHECK(cudaEventDestroy(a));
  AFD_CUDA_CHECK(cudaEventDestroy(b));
  return best;
}
}  // namespace

bool measure_gpu_ceilings(Ceilings& c, bool quick) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    return false;
  }
  const size_t bytes = quick ? (size_t{256} << 20) : (size_t{2} << 30);
  void *d0, *d1, *h;
  AFD_CUDA_CHECK(cudaMalloc(&d0, bytes));
  AFD_CUDA_CHECK(cudaMalloc(&d1, bytes));
  AFD_CUDA_CHECK(cudaMallocHost(&h, size_t{256} << 20));
  c.hbm_bw = 2.0 * bytes / best_seconds(5, [&] { AFD_CUDA_CHECK(cudaMemcpyAsync(d1, d0, bytes, cudaMemcpyDeviceToDevice)); });
  c.pcie_bw = static_cast<double>(size_t{256} << 20) /
              best_seconds(5, [&] { AFD_CUDA_CHECK(cudaMemcpyAsync(d0, h, size_t{256} << 20, cudaMemcpyHostToDevice)); });
  const int m = quick ? 4096 : 8192;
  cublasHandle_t blas;
  if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) fail("cuBLAS could not be initialised");
  const float one = 1, zero = 0;
  void* d2;
  AFD_CUDA_CHECK(cudaMalloc(&d2, size_t{2} * m * m));
  AFD_CUDA_CHECK(cudaMemset(d0, 0x3c, size_t{2} * m * m));  // bf16 values near 0.0117, not zero
  AFD_CUDA_CHECK(cudaMemset(d1, 0x3c, size_t{2} * m * m));
  c.gpu_gemm_flops = 2.0 * m * m * m / best_seconds(5, [&] {
    if (cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, m, m, m, &one, d0, CUDA_R_16BF, m, d1, CUDA_R_16BF, m, &zero, d2,
                     CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
      fail("cublasGemmEx failed");
  });
  cublasDestroy(blas);
  AFD_CUDA_CHECK(cudaFree(d0));
  AFD_CUDA_CHECK(cudaFree(d1));
  AFD_CUDA_CHECK(cudaFree(d2));
  AFD_CUDA_CHECK(cudaFreeHost(h));
  return true;
}

}  // namespace afd::bench
