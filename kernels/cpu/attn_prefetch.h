// Software prefetch spread over a kernel's loop, for the pair-layout kernels (QkPackedParams / PvPackedParams
// prefetch hint). A decode step streams the KV cache block by block; prefetching a whole next block at once fills
// the core's line-fill buffers and stalls it until they drain, so the caller hands the kernel the next block's
// section and the kernel issues a few lines per loop step. Include only from the per-ISA files (internal linkage,
// for the reason attn_buffer.h gives).
#pragma once

#include <cstdint>

namespace afd::cpu {
namespace {

class PrefetchSpread {
 public:
  PrefetchSpread() = default;
  // [p, p + bytes) over `steps` loop steps; p == nullptr or bytes <= 0: nothing.
  PrefetchSpread(const void* p, int64_t bytes, int64_t steps)
      : p_(bytes > 0 ? static_cast<const char*>(p) : nullptr), bytes_(bytes) {
    const int64_t lines = (bytes + 63) / 64;
    per_step_ = steps > 0 ? static_cast<int>((lines + steps - 1) / steps) : 0;
  }
  // Part `k` of `parts` consecutive equal parts (whole lines) of the range, over `steps` steps of its own.
  PrefetchSpread part(int k, int parts, int64_t steps) const {
    if (!p_) return {};
    const int64_t chunk = ((bytes_ + parts - 1) / parts + 63) / 64 * 64, off = k * chunk;
    return {p_ + off, off < bytes_ ? (bytes_ - off < chunk ? bytes_ - off : chunk) : 0, steps};
  }
  // The lines of step i (towards L2: the data is read a block later); never past the range.
  void step(int64_t i) const {
    if (!p_) return;
    for (int l = 0; l < per_step_; ++l) {
      const int64_t off = (i * per_step_ + l) * 64;
      if (off >= bytes_) return;
      __builtin_prefetch(p_ + off, 0, 1);
    }
  }

 private:
  const char* p_ = nullptr;
  int64_t bytes_ = 0;
  int per_step_ = 0;
};

}  // namespace
}  // namespace afd::cpu
