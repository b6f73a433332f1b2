// One projection through oneDNN matmul: y[b][m][n] (f32) = sum_k x[b][m][k] * W[b][k][n], for batch b in
// [0, batch) (1 for the dense projections, num_heads for MLA's W_UK / W_UV absorption), m chosen per call.
// Weights are repacked once here: kept bf16 (and reordered to the primitive's preferred layout) when oneDNN can
// run bf16 matmul on this CPU (AVX-512 BF16 / AMX), widened to f32 otherwise (oneDNN 2.6 has no bf16 matmul on
// AVX2; MACHINES.md). Activations arrive bf16; on the f32 path they are widened into scratch first.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

namespace afd::attn {

// Whether oneDNN on this CPU has a bf16 matmul (probed once by creating a small primitive).
bool onednn_has_bf16_matmul(const dnnl::engine& eng);
// dnnl::get_effective_cpu_isa() as text, e.g. "avx2", "avx512_core_amx".
std::string onednn_isa_name();

class Matmul {
 public:
  // w_kn: [batch][k][n] bf16 bits. use_bf16: keep bf16 weights (needs cpu::dnnl_has_bf16_matmul).
  Matmul(const dnnl::engine& eng, int batch, int k, int n, const uint16_t* w_kn, bool use_bf16);

  // x: [batch][m][k] bf16 bits; y: [batch][m][n] f32.
  void run(dnnl::stream& s, const uint16_t* x, int m, float* y);

  int k() const { return k_; }
  int n() const { return n_; }
  // The implementation oneDNN chose (primitive_desc::impl_info_str()) for the last run, e.g. "brg:avx512_core_amx".
  const std::string& impl() const { return impl_; }

 private:
  dnnl::memory::desc act_desc(int64_t m, int64_t cols, dnnl::memory::data_type dt) const;
  dnnl::matmul& primitive_for(int m);

  dnnl::engine eng_;
  int batch_, k_, n_;
  bool bf16_;
  bool runtime_m_ = false;          // one primitive with a run-time M serves every m
  dnnl::memory weights_;            // packed weights (runtime_m_) or plain [batch][k][n] (per-m primitives)
  dnnl::matmul runtime_prim_;
  std::map<int, dnnl::matmul> per_m_;  // fallback: a primitive per m, created on first use
  std::vector<float> xf_;           // f32 path: widened activations, grown to the largest m seen
  std::string impl_;
};

}  // namespace afd::attn
