// y[m, out] = x[m, in] W^T through a oneDNN matmul primitive created once per weight (runtime m).
//
// Two precisions, chosen at construction:
//  - bf16: weights kept as bf16, activations converted to bf16, f32 accumulation and output. Needs a oneDNN bf16
//    matmul, which oneDNN 2.6 has only on AVX-512 BF16 / AMX CPUs (the GPU host), not on AVX2 ones.
//  - f32: weights widened to f32 once at construction (every bf16 value is exact in f32), f32 math. Used on AVX2 CPUs
//    (this project's CI). With bf16-valued inputs the products are exact and only the accumulation order differs.
// Thread-safe: forward() may run concurrently from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace afd::cpu {

// True when oneDNN can create a bf16 x bf16 -> f32 matmul on this CPU.
bool dnnl_has_bf16_matmul();
// Whether the fast paths use bf16 weights by default: only where oneDNN runs bf16 on AMX. Measured on the demo
// model's perplexity (ref 7.9175): AMX bf16 (brgemm) 7.9204, like transformers' bf16 7.9207; oneDNN 2.6's bf16
// gemm:jit on an AVX-512 BF16 CPU without AMX 7.9504 (+0.42%), f32 weights there 7.9181. Without AMX the bf16
// path is also not faster (MACHINES.md: 0.6 vs 4.6-6.9 TFLOP/s), so f32 weights it is.
bool dnnl_bf16_by_default();
// oneDNN's effective ISA, e.g. "avx2", "avx512_core_amx".
std::string dnnl_isa_name();

enum class LinearPrecision { kAuto, kF32, kBf16 };

class DnnlLinear {
 public:
  DnnlLinear();
  // w: bf16 bits [out, in] row-major; bias: bf16 bits [out] or empty.
  DnnlLinear(const std::vector<uint16_t>& w, const std::vector<uint16_t>& bias, int out, int in,
             LinearPrecision p = LinearPrecision::kAuto);
  DnnlLinear(DnnlLinear&&) noexcept;
  DnnlLinear& operator=(DnnlLinear&&) noexcept;
  ~DnnlLinear();

  // x [m, in] f32 -> y [m, out] f32 (+ bias). m may be 0.
  void forward(const float* x, int m, float* y) const;
  int out() const { return out_; }
  int in() const { return in_; }
  bool is_bf16() const { return bf16_; }
  std::string impl() const;  // the oneDNN implementation that runs, e.g. "brg:avx512_core_amx_bf16"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int out_ = 0, in_ = 0;
  bool bf16_ = false;
};

}  // namespace afd::cpu
