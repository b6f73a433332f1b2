// The GPU the FFN side runs on: selection and a one-line description (name, memory, compute capability).
#pragma once

#include <string>

namespace afd::gpu {

struct DeviceInfo {
  int index = -1;
  std::string name;
  size_t total_bytes = 0, free_bytes = 0;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
};

int device_count();  // 0 when there is no usable GPU (never throws for that)
DeviceInfo device_info(int index);  // throws afd::Error when `index` is not a usable device
std::string describe(const DeviceInfo& d);

}  // namespace afd::gpu
