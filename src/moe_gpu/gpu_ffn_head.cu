// GpuFfn's LM head: final RMSNorm and lm_head on the GPU (bf16 logits, MODEL_SPEC.md 2.6), then either fp32 logits
// to the host or sampling on the device with only the token ids coming back.
#include "cuda/ffn_elementwise.cuh"
#include "cuda/grouped_gemm.cuh"
#include "cuda/sample.cuh"
#include "moe_gpu/gpu_ffn.h"
#include "util/error.h"

namespace afd::gpu {

void GpuFfn::head(const uint16_t* x, int n) {
  const ModelConfig& c = w_->cfg;
  AFD_CUDA_CHECK(cudaSetDevice(device_));
  AFD_CUDA_CHECK(cudaMemcpyAsync(ws_.x, x, static_cast<size_t>(n) * c.hidden_size * sizeof(bf16),
                                 cudaMemcpyHostToDevice, stream_));
  cuda::rmsnorm_bf16_bf16({ws_.x, final_norm_, ws_.xn, n, c.hidden_size, c.rms_norm_eps}, stream_);
  // The lm_head runs through the grouped GEMM (one group): its per-row results do not depend on the batch, so a
  // request samples the same token whatever shares its batch.
  cuda::GroupedGemmParams g{};
  g.tile = cuda::gemm_tile_for_rows(n);
  g.groups = 1;
  g.m = n;
  g.max_tiles = (n + cuda::gemm_tile_rows(g.tile) - 1) / cuda::gemm_tile_rows(g.tile);
  g.a = ws_.xn;
  g.w = lm_head_;
  g.c = head_logits_;
  g.n = c.vocab_size;
  g.k = c.hidden_size;
  cuda::grouped_gemm_bf16_bf16(g, stream_);
}

void GpuFfn::logits(const uint16_t* x, int n, float* out) {
  AFD_REQUIRE(n >= 0 && n <= max_tokens_, "GpuFfn: ", n, " rows exceed the ", max_tokens_, " it was sized for");
  if (n == 0) return;
  head(x, n);
  const int64_t count = static_cast<int64_t>(n) * w_->cfg.vocab_size;
  cuda::bf16_to_f32({head_logits_, head_f32_, count}, stream_);
  AFD_CUDA_CHECK(cudaMemcpyAsync(out, head_f32_, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void GpuFfn::sample(const uint16_t* x, int n, const SamplingParams* params, const uint64_t* step,
                    int32_t* out_ids) {
  AFD_REQUIRE(n >= 0 && n <= max_tokens_, "GpuFfn: ", n, " rows exceed the ", max_tokens_, " it was sized for");
  if (n == 0) return;
  auto* rows = static_cast<cuda::RowSampling*>(pinned_params_);
  AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the pinned staging may still feed an earlier copy
  for (int i = 0; i < n; ++i) {
    validate(params[i]);
    rows[i] = {params[i].temperature, params[i].top_k, params[i].top_p, params[i].seed, step[i]};
  }
  head(x, n);
  AFD_CUDA_CHECK(cudaMemcpyAsync(row_params_, rows, n * sizeof(cuda::RowSampling), cudaMemcpyHostToDevice,
                                 stream_));
  cuda::sample_bf16({head_logits_, static_cast<const cuda::RowSampling*>(row_params_), out_ids_, n,
                     w_->cfg.vocab_size},
                    stream_);
  AFD_CUDA_CHECK(cudaMemcpyAsync(pinned_ids_, out_ids_, n * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  AFD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (int i = 0; i < n; ++i) out_ids[i] = pinned_ids_[i];
}

}  // namespace afd::gpu
