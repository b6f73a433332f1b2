// The GPU implementation of FfnBackend: every FFN weight (routers, experts stacked per layer as [E, ...], shared
// experts, dense MLPs, final norm, LM head) is placed on one GPU at construction, together with the cuBLAS handle,
// the stream, pinned staging and every workspace buffer; a call allocates nothing and syncs the host only for its
// final copy back. FP8 checkpoints arrive dequantised to bf16 by the loader.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "iface/ffn_backend.h"
#include "model/weights.h"
#include "moe_gpu/ffn_layer.h"

namespace afd::gpu {

// Expert parallelism over several GPUs of one host: how a MoE layer's activations reach every GPU, and how the
// GPUs' partial routed sums come back together.
enum class EpInput {
  kCopies,     // one host-to-device copy per GPU from the same pinned buffer
  kBroadcast,  // one copy to the first GPU, then an NCCL broadcast
};
enum class EpOutput {
  kNcclReduce,  // NCCL reduce (fp32 sum) of the partials onto the first GPU, which finishes and copies back once
  kHostSum,     // every GPU copies its partial back and the host sums and finishes
};
EpInput parse_ep_input(const std::string& s);    // "copies" | "broadcast"; throws afd::Error naming the value
EpOutput parse_ep_output(const std::string& s);  // "reduce" | "host-sum"

struct GpuFfnOptions {
  // The GPUs. The first holds the router, a slice of the routed experts, the shared experts, the dense layers and
  // the LM head; each other GPU holds the router and its slice of the routed experts (contiguous, sizes differing
  // by at most one). One GPU holds everything.
  std::vector<int> devices{0};
  int max_tokens = 256;  // rows per call
  EpInput input = EpInput::kCopies;
  EpOutput output = EpOutput::kNcclReduce;
  // Routed experts on the first GPU, which also runs the shared experts: 0 = an even split; fewer balances the
  // GPUs' busy times (afd-bench-ep --first-gpu-experts measures it). The others split the rest evenly.
  int first_gpu_experts = 0;
};

// Options for `count` consecutive GPUs from `first` (count >= 1) with the given transfer modes.
inline GpuFfnOptions ep_options(int first, int count, int max_tokens, EpInput in = EpInput::kCopies,
                                EpOutput out = EpOutput::kNcclReduce) {
  GpuFfnOptions o;
  o.devices.clear();
  for (int i = 0; i < count; ++i) o.devices.push_back(first + i);
  o.max_tokens = max_tokens;
  o.input = in;
  o.output = out;
  return o;
}

// Shared by GpuFfn's translation units: puts `device` in blocking-sync mode (the driver thread sleeps in its
// waits), and throws afd::Error when weights + workspace bytes do not fit its free memory.
void prepare_device(int device);
void require_fits(const ModelConfig& c, int device, size_t weights, size_t workspace, int max_tokens);

class GpuFfn : public FfnBackend {
 public:
  // `w` must hold the kWeightsFfn and kWeightsHead parts. Throws afd::Error when they and the workspace for
  // max_tokens rows per call do not fit in a device's free memory (the message gives both byte counts).
  GpuFfn(std::shared_ptr<const Bf16Weights> w, int device, int max_tokens);
  GpuFfn(std::shared_ptr<const Bf16Weights> w, const GpuFfnOptions& opt);
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
  std::vector<double> last_device_busy_seconds() const override { return last_busy_s_; }
  int64_t device_memory_bytes() const override;
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
  size_t weight_bytes() const { return weights_->capacity(); }  // of the first GPU
  size_t workspace_bytes() const { return arena_->capacity(); }
  int gpus() const { return static_cast<int>(opt_.devices.size()); }
  // The routed experts GPU g holds: [first, first + count).
  std::pair<int, int> expert_slice(int g) const;

  struct Peer;  // one more GPU of an expert-parallel FFN (gpu_ffn_ep.cu)

 private:
  // Places layer weights (the experts [lo, lo + count) of each MoE layer; with `home` also the dense layers, shared
  // experts, final norm and LM head) into `a`; a planning arena only counts. Fills `layers`.
  void place_weights(DeviceArena& a, bool upload, int lo, int count, bool home, std::vector<FfnLayerDev>& layers);
  void init_peers();             // gpu_ffn_ep.cu
  void release_peers();          // gpu_ffn_ep.cu
  std::vector<int32_t> rows_per_expert() const;  // of the last MoE call, over every GPU (gpu_ffn_ep.cu)
  void ffn_half_ep(int layer, uint16_t* x, int n);  // gpu_ffn_ep.cu
  void head(const uint16_t* x, int n);  // final norm + lm_head of x into head_logits_ (bf16 [n, vocab])

  std::shared_ptr<const Bf16Weights> w_;
  GpuFfnOptions opt_;
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
  std::vector<double> last_busy_s_;
  // Expert parallelism (more than one GPU): the other GPUs, the NCCL communicators (ncclComm_t, [0] is ours), the
  // first GPU's fp32 partial and reduced sums [T, hidden], pinned host staging for the host-sum path, busy events.
  std::vector<std::unique_ptr<Peer>> peers_;
  std::vector<void*> comms_;
  float* partial_ = nullptr;
  float* reduced_ = nullptr;
  float* host_partial_ = nullptr;   // [T, hidden] pinned
  uint16_t* host_extra_ = nullptr;  // [T, hidden] pinned
  cudaEvent_t busy_ev_[2] = {};
};

}  // namespace afd::gpu
