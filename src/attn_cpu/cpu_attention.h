// CpuAttention: the attention half of every layer on CPU worker threads, KV cache in host memory
// (the AttnBackend of src/iface/attn_backend.h). Per layer:
//   input RMSNorm -> projections (oneDNN) -> [q/k norm] -> RoPE -> KV append -> paged attention -> o_proj -> + x
// MLA (DeepSeek V2/V3) runs in the absorbed form (MODEL_SPEC 2.4): the cache holds the normalised latent and the
// rotated k_pe per token; W_UK is folded into q and W_UV applied to the attention output over latents.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "attn_cpu/kv_cache.h"
#include "attn_cpu/matmul.h"
#include "attn_cpu/paged_attention.h"
#include "attn_cpu/thread_pool.h"
#include "iface/attn_backend.h"
#include "model/rope.h"
#include "model/weights.h"

namespace afd::attn {

struct CpuAttnOptions {
  int threads = 0;               // attention workers including the calling thread; 0 = CPUs this process may use
  bool pin_threads = true;       // pin worker w to the w-th allowed CPU
  int block_size = 64;           // KV positions per block (<= cpu::kMaxBlockRows)
  int64_t pool_blocks = 0;       // KV pool size in blocks; 0 = derive from pool_bytes
  int64_t pool_bytes = int64_t{1} << 30;  // KV pool size in bytes when pool_blocks == 0
  int max_seqs = 256;            // sequence slots
  int min_chunk = 256;           // shortest KV range that gets a work item of its own (flash-decoding split)
  int items_per_worker = PagedAttention::kItemsPerWorker;  // work items a call aims for per worker (KV split)
  int isa = -1;                  // attention kernel ISA (a cpu::Isa value) or -1 for cpu::best_isa()
  int onednn_bf16 = -1;          // 1: bf16 weights in oneDNN, 0: f32 weights, -1: projection_bf16_default()
  int kv_pairs = -1;             // GQA KV cache rows: 1 = KvRowLayout::kPairs (read by the kernels without
                                 // repacking), 0 = kRows, -1 = kPairs where the shape allows it (MLA: always kRows)
  KvDtype kv_dtype = KvDtype::kBf16;  // KV cache elements: bf16, or fp8 e4m3 (half the bytes; see kv_cache.h)
};

class CpuAttention : public AttnBackend {
 public:
  // `w` must hold kWeightsAttn (and kWeightsEmbed for embed()). Repacks the attention weights once.
  CpuAttention(std::shared_ptr<const Bf16Weights> w, const CpuAttnOptions& opt = {});
  ~CpuAttention() override;

  std::string name() const override;
  const ModelConfig& config() const override { return w_->cfg; }
  KvManager& kv() override { return *cache_; }
  void embed(const int32_t* ids, int n, uint16_t* x) override;
  void attn_half(int layer, const AttnBatch& b, uint16_t* x) override;
  // Writes the paged bf16 cache directly on the worker threads (attn_cpu/kv_fill.h).
  void fill_synthetic(int slot, int len, uint64_t seed) override;

  PagedKvCache& cache() { return *cache_; }
  cpu::Isa kernel_isa() const { return core_->kernels().isa; }
  bool weights_bf16() const { return bf16_; }
  // oneDNN's effective ISA and the implementation each projection ran, e.g. "isa=avx2 in_proj=gemm:jit ...".
  std::string onednn_info() const;

 private:
  struct Layer;
  void project_mla(const Layer& L, int layer, const AttnBatch& b, const uint16_t* xn);
  void project_gqa(const Layer& L, int layer, const AttnBatch& b, const uint16_t* xn);
  template <typename F>
  void for_each_token(const AttnBatch& b, F&& f);  // f(token, seq, position) in parallel

  std::shared_ptr<const Bf16Weights> w_;
  CpuAttnOptions opt_;
  bool bf16_ = false;
  RopeTable rope_;
  dnnl::engine eng_;
  dnnl::stream stream_;
  MatmulCache mm_cache_;  // before layers_: outlives their Matmuls
  std::vector<std::unique_ptr<Layer>> layers_;
  std::unique_ptr<PagedKvCache> cache_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<PagedAttention> core_;
  // Activations of one call, grown to the largest micro-batch seen (then reused).
  std::vector<uint16_t> xn_, qa_, q_, qn_, o_, ob_;
  std::vector<float> f1_, f2_, f3_;
};

}  // namespace afd::attn
