// One more GPU of an expert-parallel GpuFfn (gpu_ffn_ep.cu): its slice of the routed experts, workspace, stream and
// cuBLAS handle, and the stream teardown both share. Private to GpuFfn's translation units.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "moe_gpu/gpu_ffn.h"

namespace afd::gpu {

// Teardown shared by GpuFfn and its peers, on `device`: waits for `stream`, then destroys the `n` events, the cuBLAS
// handle and the stream (each only when set). Never throws (destructors call it).
inline void release_stream(int device, cudaStream_t stream, cublasHandle_t blas, cudaEvent_t* events, int n) {
  cudaSetDevice(device);
  if (stream) cudaStreamSynchronize(stream);
  for (int i = 0; i < n; ++i)
    if (events[i]) cudaEventDestroy(events[i]);
  if (blas) cublasDestroy(blas);
  if (stream) cudaStreamDestroy(stream);
}

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
    release_stream(device, stream, blas, busy, 2);
    if (host_partial) cudaFreeHost(host_partial);
    weights.reset();
    arena.reset();
  }
};

}  // namespace afd::gpu
