// The FFN side of afd, as the engine sees it. Implementations: the CPU one (oneDNN; CI and GPU-less machines) in
// src/moe_gpu/cpu_ffn.*, the GPU one (CUDA, cuBLAS) in src/moe_gpu/gpu_ffn.*. The engine never knows which it has.
//
// Activations cross this interface as bf16 [tokens, hidden] row-major host buffers (pinned when the backend is a
// GPU one; the transport owns them). The residual stream is bf16 between stages (DESIGN.md, Numerics).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/sampler.h"

namespace afd {

class FfnBackend {
 public:
  virtual ~FfnBackend() = default;

  virtual std::string name() const = 0;
  virtual const ModelConfig& config() const = 0;

  // x [n, hidden] bf16, in place: x = x + FFN_layer(post_attention_layernorm(x)). FFN_layer is the routed experts
  // (+ shared experts) of a MoE layer or the dense MLP of a dense layer. Blocking; n >= 0 (0 is a no-op).
  virtual void ffn_half(int layer, uint16_t* x, int n) = 0;

  // Final RMSNorm + lm_head of x [n, hidden] bf16 into float32 logits [n, vocab] (host). For tests and perplexity.
  virtual void logits(const uint16_t* x, int n, float* out) = 0;

  // Final RMSNorm + lm_head + sampling: one token id per row of x [n, hidden], row i sampled with params[i] and
  // its own generator `step` (so a request is reproducible whatever else is in the batch). Only ids come back.
  virtual void sample(const uint16_t* x, int n, const SamplingParams* params, const uint64_t* step,
                      int32_t* out_ids) = 0;

  // Seconds the last ffn_half spent moving activations in and out (device copies, timed on the device); 0 when
  // there is nothing to move (the CPU FFN). For the per-step transfer statistic.
  virtual double last_transfer_seconds() const { return 0; }

  // Per-GPU busy seconds of the last ffn_half (one entry per GPU that took part; empty for a CPU backend). Under
  // expert parallelism the spread between them is the load imbalance the step statistics report.
  virtual std::vector<double> last_device_busy_seconds() const { return {}; }

  // Accelerator memory this side holds (weights + workspace), for memory reports; 0 for a CPU backend.
  virtual int64_t device_memory_bytes() const { return 0; }

  // Host memory for the activations that cross to this side: page-locked for a GPU backend (so copies are true
  // async DMA), plain for the CPU one. The pipeline allocates its micro-batch buffers here once and reuses them.
  virtual void* alloc_host(size_t bytes) { return ::operator new(bytes); }
  virtual void free_host(void* p) { ::operator delete(p); }
};

}  // namespace afd
