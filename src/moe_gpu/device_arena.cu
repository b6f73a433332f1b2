#include "moe_gpu/device_arena.h"

#include <cuda_runtime_api.h>

#include "util/error.h"

namespace afd::gpu {

DeviceArena::DeviceArena(size_t bytes) : capacity_(bytes) {
  if (bytes) AFD_CUDA_CHECK(cudaMalloc(&base_, bytes));
}

DeviceArena::~DeviceArena() {
  if (base_) cudaFree(base_);
}

void* DeviceArena::take_bytes(size_t bytes) {
  const size_t at = (used_ + kAlign - 1) / kAlign * kAlign;
  used_ = at + bytes;
  if (!base_) return nullptr;
  AFD_CHECK(used_ <= capacity_, "arena overflow: ", used_, " > ", capacity_, " bytes");
  return base_ + at;
}

}  // namespace afd::gpu
