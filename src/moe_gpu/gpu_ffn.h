// The GPU implementation of FfnBackend: every FFN weight (routers, experts stacked per layer as [E, ...], shared
// experts, dense MLPs, final norm, LM head) is placed on one GPU at construction, together with the cuBLAS handle,
// the stream, pinned staging and every workspace buffer; a call allocates nothing and syncs the host only for its
// final copy back. FP8 checkpoints arrive dequantised to bf16 by the loader.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "iface/ffn_backend.h"
#include "model/weights.h"
#include "moe_gpu/ffn_layer.h"

namespace afd::gpu {

class GpuFfn : public FfnBackend {
 public:
  // `w` must hold the kWeightsFfn and kWeightsHead parts. Throws afd::Error when they and the workspace for
  // max_tokens rows per call do not fit in the device's free memory (the message gives both byte counts).
  GpuFfn(std::shared_ptr<const Bf16Weights> w, int device, int max_tokens);
  ~GpuFfn() override;
  GpuFfn(const GpuFfn&) = delete;
  GpuFfn& operator=(const GpuFfn&) = delete;

  std::string name() const override;
  const ModelConfig& config() const override { return w_->cfg; }
  void ffn_half(int layer, uint16_t* x, int n) override;
  void logits(const uint16_t* x, int n, float* out) override;
  void sample(const uint16_t* x, int n, const SamplingParams* params, const uint64_t* step,
              int32_t* out_ids) override;
  double last_transfer_seconds() const override { return last_xfer_s_; }
  int64_t device_memory_bytes() const override { return static_cast<int64_t>(weight_bytes() + workspace_bytes()); }
  // Page-locked host memory, so the copies in and out of ffn_half are true async DMA.
  void* alloc_host(size_t bytes) override;
  void free_host(void* p) override;

  // For tests and debugging: what the last MoE ffn_half routed (n rows), copied from the device.
  struct Routing {
    int n = 0;
    std::vector<float> logits;      // [n, E] the router logits the decisions were made from (bf16 values for
                                    // the bf16 routers)
    std::vector<int32_t> ids;       // [n, k] chosen experts, best first
    std::vector<float> weights;     // [n, k]
    std::vector<int32_t> rows_per_expert;  // [E] rows each expert's GEMM received
  };
  Routing last_routing() const;
  // Fills every workspace buffer with 0xff bytes (NaN as bf16/fp32), so reads of unwritten scratch show up.
  void poison_workspace();
  size_t weight_bytes() const { return weights_->capacity(); }
  size_t workspace_bytes() const { return arena_->capacity(); }

 private:
  void place_weights(DeviceArena& a, bool upload);
  void head(const uint16_t* x, int n);  // final norm + lm_head of x into head_logits_ (bf16 [n, vocab])

  std::shared_ptr<const Bf16Weights> w_;
  int device_ = 0, max_tokens_ = 0;
  std::unique_ptr<DeviceArena> weights_, arena_;
  std::vector<FfnLayerDev> layers_;
  const bf16* final_norm_ = nullptr;
  const bf16* lm_head_ = nullptr;
  FfnWorkspace ws_;
  bf16* head_logits_ = nullptr;      // [T, vocab]
  float* head_f32_ = nullptr;        // [T, vocab]
  void* row_params_ = nullptr;       // [T] cuda::RowSampling
  int32_t* out_ids_ = nullptr;       // [T]
  void* pinned_params_ = nullptr;    // host pinned [T] cuda::RowSampling
  int32_t* pinned_ids_ = nullptr;    // host pinned [T]
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  int last_moe_n_ = 0;
  cudaEvent_t xfer_ev_[4] = {};  // around the copy in and the copy out of ffn_half
  double last_xfer_s_ = 0;
};

}  // namespace afd::gpu
