// Growable scratch for the per-ISA kernel files. Everything here has internal linkage (an anonymous namespace):
// a std::vector member instantiated in a file compiled with -mavx512* could otherwise be the copy the linker
// keeps for code that runs on any CPU. Include only from the per-ISA .cpp files.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace afd::cpu {
namespace {

template <typename T>
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { std::free(data_); }

  // At least n elements, 64-byte aligned; contents are not kept when it grows.
  T* get(size_t n) {
    if (n > size_) {
      std::free(data_);
      const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
      data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (!data_) throw std::bad_alloc();
      size_ = n;
    }
    return data_;
  }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace
}  // namespace afd::cpu
