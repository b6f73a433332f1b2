#include "moe_gpu/device.h"

#include <cuda_runtime_api.h>

#include <sstream>

#include "util/error.h"

namespace afd::gpu {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

DeviceInfo device_info(int index) {
  const int n = device_count();
  AFD_REQUIRE(index >= 0 && index < n, "GPU ", index, " does not exist (", n, " usable GPUs)");
  cudaDeviceProp prop{};
  AFD_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  DeviceInfo d;
  d.index = index;
  d.name = prop.name;
  d.cc_major = prop.major;
  d.cc_minor = prop.minor;
  d.sm_count = prop.multiProcessorCount;
  AFD_CUDA_CHECK(cudaSetDevice(index));
  AFD_CUDA_CHECK(cudaMemGetInfo(&d.free_bytes, &d.total_bytes));
  return d;
}

std::string describe(const DeviceInfo& d) {
  std::ostringstream os;
  os << "GPU " << d.index << ": " << d.name << ", sm_" << d.cc_major << d.cc_minor << ", " << d.sm_count
     << " SMs, " << d.free_bytes / (1 << 20) << " / " << d.total_bytes / (1 << 20) << " MiB free";
  return os.str();
}

}  // namespace afd::gpu
