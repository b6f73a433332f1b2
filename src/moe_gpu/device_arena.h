// One device allocation carved into aligned sub-buffers, so a component allocates once at load and never per step.
// Two passes: an arena built without memory (planning) only counts bytes; then a real one of that size hands out
// the same layout.
#pragma once

#include <cstddef>
#include <cstdint>

namespace afd::gpu {

class DeviceArena {
 public:
  DeviceArena() = default;                 // planning arena: take() returns null and counts bytes
  explicit DeviceArena(size_t bytes);      // cudaMalloc(bytes) on the current device
  ~DeviceArena();
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;

  template <typename T>
  T* take(size_t count) {
    return static_cast<T*>(take_bytes(count * sizeof(T)));
  }
  void* take_bytes(size_t bytes);
  size_t used() const { return used_; }
  size_t capacity() const { return capacity_; }
  char* base() const { return base_; }

 private:
  static constexpr size_t kAlign = 256;
  char* base_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
};

}  // namespace afd::gpu
