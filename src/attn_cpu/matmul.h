// One projection through oneDNN matmul: y[b][m][n] (f32) = sum_k x[b][m][k] * W[b][k][n], for batch b in
// [0, batch) (1 for the dense projections, num_heads for MLA's W_UK / W_UV absorption), m chosen per call.
// Weights are repacked once here: kept bf16 when oneDNN can run bf16 matmul on this CPU (AVX-512 BF16 / AMX),
// widened to f32 otherwise (oneDNN 2.6 has no bf16 matmul on AVX2; MACHINES.md), and reordered into the blocked
// layout a fixed-M primitive asks for; each row count m then runs its own fixed-M primitive, created on first use
// and shared by every Matmul of the same shape (f32 on AVX-512: 1.1-1.5x faster than one run-time-M primitive at
// 4-256 rows, ~10% slower at 1; bench/RESULTS.md). Where oneDNN would run some m with that layout only on its
// reference kernel, one run-time-M primitive over its own layout serves every m instead (or, failing that, plain
// weights and a primitive per m). Activations arrive bf16; on the f32 path they are widened into scratch first.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

namespace afd::attn {

// Whether a Matmul uses the blocked layout and fixed-M primitives by default: everywhere except where oneDNN runs
// bf16 matmul on AMX. There its run-time-M primitive (gemm:jit) was as fast or faster at V3's o_proj shape (AMX
// host, 1-256 rows: 2.0-2.2 vs 3.4-3.5 ms at 1 row, 19-21 vs 27-38 ms at 256; 2% less attention time per engine
// step at batch 64 and 256), while on AVX-512 BF16 without AMX the blocked layout ran 1.7-2.8x faster
// (bench/RESULTS.md, "The attention side's projections").
bool fixed_m_by_default();

// Whether the projections keep bf16 weights by default: where oneDNN runs bf16 matmul with AMX
// (cpu::dnnl_bf16_by_default), and also where it runs fixed-M bf16 matmul over blocked weights through brgemm
// (AVX-512 BF16): there it is ~2x the f32 rate at decode row counts and the demo model's perplexity equals AMX's
// (7.9204; reference 7.9175), unlike oneDNN's bf16 gemm:jit (7.9504), which is why f32 stays everywhere else.
bool projection_bf16_default();

// The fixed-M primitives of the Matmuls on one engine (a CpuAttention's), one per (shape, dtype, m), created on first
// use and shared by every layer of that shape; and, per shape, whether the blocked layout passed its probe.
// Thread-safe. Must outlive its Matmuls.
class MatmulCache {
 private:
  friend class Matmul;
  struct Key {
    int batch, k, n, m;
    bool bf16, blocked;  // blocked: over the fixed-M layout; else over plain weights (the last fallback)
    bool operator<(const Key& o) const;
  };
  struct Entry {
    dnnl::matmul prim;
    std::string impl;
  };
  std::mutex mu_;
  std::map<Key, Entry> prims_;
  std::map<Key, bool> layout_ok_;  // m = 0, blocked
};

class Matmul {
 public:
  // w_kn: [batch][k][n] bf16 bits. use_bf16: keep bf16 weights (needs cpu::dnnl_has_bf16_matmul,
  // cpu/dnnl_linear.h). `cache` holds the fixed-M primitives (same engine as `eng`).
  // fixed_m = false skips the blocked layout (fixed_m_by_default() decides; A/B measurements set it).
  Matmul(const dnnl::engine& eng, MatmulCache& cache, int batch, int k, int n, const uint16_t* w_kn, bool use_bf16,
         bool fixed_m = fixed_m_by_default());

  // x: [batch][m][k] bf16 bits; y: [batch][m][n] f32.
  void run(dnnl::stream& s, const uint16_t* x, int m, float* y);

  int k() const { return k_; }
  int n() const { return n_; }
  // The implementation oneDNN chose (primitive_desc::impl_info_str()) for the last run, e.g. "brg:avx512_core_amx".
  const std::string& impl() const { return impl_; }

 private:
  dnnl::memory::desc act_desc(int64_t m, int64_t cols, dnnl::memory::data_type dt) const;
  dnnl::matmul::primitive_desc fixed_desc(int m, const dnnl::memory::desc& weights) const;
  bool try_fixed_m(const dnnl::memory& plain);
  // The fixed-M primitive of m rows over weights_ (blocked or plain), from the cache.
  const dnnl::matmul& primitive_for(int m);

  dnnl::engine eng_;
  MatmulCache* cache_;
  int batch_, k_, n_;
  bool bf16_;
  bool fixed_m_ = false;            // blocked weights, a shared fixed-M primitive per m (primitive_for)
  bool runtime_m_ = false;          // one primitive with a run-time M serves every m
  dnnl::memory weights_;            // blocked (fixed_m_), packed (runtime_m_) or plain [batch][k][n] (else)
  dnnl::matmul runtime_prim_;
  std::vector<float> xf_;           // f32 path: widened activations, grown to the largest m seen
  std::string impl_;
};

}  // namespace afd::attn
