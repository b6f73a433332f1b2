// Raising a kernel's dynamic shared-memory limit (needed above 48 KiB) once per device, for the launchers of the
// grouped GEMMs. The attribute is per device, so a process that uses several GPUs sets it on each of them.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "util/error.h"

namespace afd::cuda {

// Returns the current device. `done` is the launcher's own static bit set (bit d: done on device d); a race between
// two threads sets the same value twice, which is harmless.
inline int raise_smem_limit_once(std::atomic<uint64_t>& done, const void* kernel, int bytes) {
  int dev = 0;
  AFD_CUDA_CHECK(cudaGetDevice(&dev));
  const uint64_t bit = uint64_t{1} << (dev & 63);
  if (!(done.load() & bit)) {
    AFD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    done.fetch_or(bit);
  }
  return dev;
}

}  // namespace afd::cuda
