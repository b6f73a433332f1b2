// One more GPU of an expert-parallel GpuFfn (gpu_ffn_ep.cu): its slice of the routed experts, workspace, stream and
// cuBLAS handle. Private to GpuFfn's translation units.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "moe_gpu/gpu_ffn.h"

namespace afd::gpu {

struct GpuFfn::Peer {
  int device = -1;
  std::unique_ptr<DeviceArena> weights, arena;
  std::vector<FfnLayerDev> layers;
  FfnWorkspace ws;
  float* partial = nullptr;       // [T, hidden] this GPU's share of the routed sum
  float* host_partial = nullptr;  // [T, hidden] pinned (host-sum path only)
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cudaEvent_t busy[2] = {};

  ~Peer() {
    cudaSetDevice(device);
    if (stream) cudaStreamSynchronize(stream);
    for (auto& e : busy)
      if (e) cudaEventDestroy(e);
    if (blas) cublasDestroy(blas);
    if (stream) cudaStreamDestroy(stream);
    if (host_partial) cudaFreeHost(host_partial);
    weights.reset();
    arena.reset();
  }
};

}  // namespace afd::gpu
