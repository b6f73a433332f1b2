// Where a model's bytes go in afd's split, computed from the architecture alone (no weights are touched), for
// `afd-run --dry-run`: attention weights and the KV cache on the host, FFN weights on the GPU(s), and the decode-step
// bound those bytes imply at given ceilings.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"

namespace afd {

struct PlanInputs {
  int layers = 0;                  // decoder layers to place (0 = all of the config)
  int gpus = 1;                    // routed experts are split over this many GPUs; the rest is replicated
  bool fp8_experts = false;        // FFN weights as fp8 e4m3 + fp32 128x128 block scales (else bf16)
  int64_t kv_pool_bytes = 0;       // host KV pool
  int kv_elem_bytes = 2;           // KV cache element: 2 (bf16) or 1 (fp8 e4m3)
  int batch = 64, context = 4096;  // the decode step the bound is computed for
  int attn_weight_elem_bytes = 2;  // host attention weights as the attention side keeps them: 2 (bf16) or 4 (f32)
  // Ceilings (bytes/s, FLOP/s); the defaults are the GPU host's measured medians (MACHINES.md), not this machine's.
  double host_read_bw = 85e9, hbm_bw = 3.0e12, cpu_bf16_flops = 5e12, gpu_bf16_flops = 790e12, pcie_bw = 55e9;
};

struct MemoryPlan {
  PlanInputs in;
  int64_t embed_bytes = 0;           // host (the attention side embeds)
  int64_t attn_bytes = 0;            // host, all layers
  int64_t routed_bytes = 0;          // all routed experts, all layers
  int64_t ffn_other_bytes = 0;       // routers, shared experts, dense MLPs, norms
  int64_t head_bytes = 0;            // final norm + lm_head (on GPU 0)
  int64_t per_gpu_bytes = 0;         // the largest GPU's share
  int64_t kv_bytes_per_token = 0;    // all layers
  int64_t kv_capacity_tokens = 0;    // in the pool
  // One decode step at (batch, context): bytes and FLOPs of each side, and the bound they imply. The host reads
  // every sequence's KV and (once per step, whatever the batch) every layer's attention weights; the CPU computes
  // the attention core (step_attn_flops) and the projections (step_proj_flops); the GPUs read the touched experts,
  // routers, shared experts, dense MLPs and the LM head.
  double step_kv_bytes = 0, step_attn_weight_bytes = 0, step_attn_flops = 0, step_proj_flops = 0;
  double step_expert_bytes = 0, step_expert_flops = 0, step_xfer_bytes = 0;
  double step_host_read_bytes() const { return step_kv_bytes + step_attn_weight_bytes; }
  double bound_s = 0;
  std::string bound_by;
};

MemoryPlan plan_memory(const ModelConfig& c, const PlanInputs& in);
std::string describe(const MemoryPlan& p, const ModelConfig& c);

}  // namespace afd
