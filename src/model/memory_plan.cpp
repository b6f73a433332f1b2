#include "model/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "util/error.h"

namespace afd {

namespace {
// Bytes of an [out, in] matrix as bf16, or as a GPU's kept-fp8 expert: e4m3 plus an fp32 scale per row and 128
// columns (LoadOptions::keep_fp8_experts; every other matrix of an fp8 checkpoint is dequantised to bf16).
int64_t mat_bytes(int64_t out, int64_t in, bool fp8 = false) {
  if (!fp8) return out * in * 2;
  return out * in + out * ((in + 127) / 128) * 4;
}
std::string gib(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  return buf;
}
}  // namespace

MemoryPlan plan_memory(const ModelConfig& c, const PlanInputs& in) {
  MemoryPlan p;
  p.in = in;
  const int L = in.layers > 0 ? std::min(in.layers, c.num_layers) : c.num_layers;
  p.in.layers = L;
  AFD_REQUIRE(in.gpus >= 1, "the memory plan needs at least one GPU");
  const int64_t h = c.hidden_size, H = c.num_heads;
  const bool f8 = in.fp8_experts;
  p.embed_bytes = int64_t{c.vocab_size} * h * 2;
  p.head_bytes = int64_t{c.vocab_size} * h * 2 + h * 2;
  int64_t attn_layer = 0, kv_token_layer = 0;
  if (c.is_mla()) {
    const int64_t qk = c.qk_head_dim();
    attn_layer = c.q_lora_rank > 0 ? mat_bytes(c.q_lora_rank, h) + mat_bytes(H * qk, c.q_lora_rank)
                                   : mat_bytes(H * qk, h);
    attn_layer += mat_bytes(c.kv_lora_rank + c.qk_rope_dim, h) +
                  mat_bytes(H * (c.qk_nope_dim + c.v_head_dim), c.kv_lora_rank) + mat_bytes(h, H * c.v_head_dim);
    kv_token_layer = int64_t{c.kv_lora_rank + c.qk_rope_dim} * in.kv_elem_bytes;  // the absorbed cache: latent + rope key
  } else {
    const int64_t hd = c.head_dim, KV = c.num_kv_heads;
    attn_layer = mat_bytes(H * hd, h) + 2 * mat_bytes(KV * hd, h) + mat_bytes(h, H * hd);
    kv_token_layer = 2 * KV * hd * in.kv_elem_bytes;
  }
  p.attn_bytes = attn_layer * L;
  p.kv_bytes_per_token = kv_token_layer * L;
  p.kv_capacity_tokens = p.kv_bytes_per_token > 0 ? in.kv_pool_bytes / p.kv_bytes_per_token : 0;
  const int64_t expert = 2 * mat_bytes(c.moe_intermediate_size, h, f8) + mat_bytes(h, c.moe_intermediate_size, f8);
  int moe_layers = 0;
  for (int l = 0; l < L; ++l) {
    if (c.is_moe_layer(l)) {
      ++moe_layers;
      p.routed_bytes += expert * c.n_routed_experts;
      p.ffn_other_bytes += int64_t{c.n_routed_experts} * h * 2;  // router stays bf16
      if (c.n_shared_experts > 0) p.ffn_other_bytes += 3 * mat_bytes(c.shared_intermediate(), h);
    } else {
      p.ffn_other_bytes += 3 * mat_bytes(c.intermediate_size, h);
    }
  }
  p.per_gpu_bytes = (p.routed_bytes + in.gpus - 1) / in.gpus + p.ffn_other_bytes + p.head_bytes;

  // One decode step: every sequence reads its whole KV; expert bytes are those of the experts the batch touches
  // (expected distinct experts of B*k uniform draws from E per layer).
  const double B = in.batch, C = in.context;
  p.step_kv_bytes = B * C * static_cast<double>(p.kv_bytes_per_token);
  const double attn_flops_per_pos =
      c.is_mla() ? 2.0 * H * (2.0 * c.kv_lora_rank + c.qk_rope_dim)      // scores over c and k_pe, output over c
                 : 2.0 * H * (c.qk_head_dim() + c.v_dim());
  p.step_attn_flops = B * C * attn_flops_per_pos * L;
  p.step_attn_weight_bytes = static_cast<double>(p.attn_bytes) / 2 * in.attn_weight_elem_bytes;  // attn_bytes: bf16
  p.step_proj_flops = B * static_cast<double>(p.attn_bytes);  // 2 FLOPs per weight (attn_bytes / 2 of them)
  const double E = c.n_routed_experts, k = c.top_k;
  const double touched = E > 0 ? E * (1.0 - std::pow(1.0 - 1.0 / E, B * k)) : 0;
  p.step_expert_bytes = moe_layers * touched * static_cast<double>(expert) +
                        static_cast<double>(p.ffn_other_bytes + p.head_bytes);
  p.step_expert_flops = B * 2.0 * (3.0 * c.moe_intermediate_size * h) * (k + c.n_shared_experts) * moe_layers +
                        B * 2.0 * h * c.vocab_size;
  p.step_xfer_bytes = 2.0 * B * h * 2 * L;  // the hidden state each way per layer, bf16
  const double t_kv = p.step_host_read_bytes() / in.host_read_bw;
  const double t_attn = (p.step_attn_flops + p.step_proj_flops) / in.cpu_bf16_flops;
  const double t_exp = std::max(p.step_expert_bytes / in.gpus / in.hbm_bw, p.step_expert_flops / in.gpus / in.gpu_bf16_flops);
  const double t_x = p.step_xfer_bytes / in.pcie_bw;
  p.bound_s = std::max({t_kv, t_attn, t_exp, t_x});
  p.bound_by = p.bound_s == t_kv ? "host reads (KV + attention weights)" : p.bound_s == t_attn ? "CPU attention FLOPs"
               : p.bound_s == t_exp ? "GPU weights" : "PCIe transfers";
  return p;
}

std::string describe(const MemoryPlan& p, const ModelConfig& c) {
  char buf[2048];
  const PlanInputs& in = p.in;
  std::snprintf(
      buf, sizeof buf,
      "memory plan: %s, %d of %d layers, %s expert weights, %d GPU(s)\n"
      "  host:  embeddings %s + attention weights %s + KV pool %s (%s, %lld bytes/token -> %lld tokens, e.g. %lld "
      "sequences of %d)\n"
      "  GPUs:  routed experts %s (split %d ways) + routers/shared/dense %s + head %s = %s on the fullest GPU\n"
      "  decode step at batch %d, context %d: host reads KV %.2f GB + attention weights %.2f GB, CPU %.2f TFLOP "
      "(attention %.2f + projections %.2f), GPU weights read %.2f GB, transfers %.1f MB\n"
      "  bound (ceilings: host %.0f GB/s, CPU %.1f TFLOP/s, HBM %.0f GB/s, GPU %.0f TFLOP/s, PCIe %.0f GB/s): "
      "%.2f ms/step = %.0f tok/s, set by %s\n",
      c.model_type.c_str(), in.layers, c.num_layers, in.fp8_experts ? "fp8" : "bf16", in.gpus, gib(p.embed_bytes).c_str(),
      gib(p.attn_bytes).c_str(), gib(in.kv_pool_bytes).c_str(), in.kv_elem_bytes == 1 ? "fp8" : "bf16",
      static_cast<long long>(p.kv_bytes_per_token),
      static_cast<long long>(p.kv_capacity_tokens),
      static_cast<long long>(in.context > 0 ? p.kv_capacity_tokens / in.context : 0), in.context,
      gib(p.routed_bytes).c_str(), in.gpus, gib(p.ffn_other_bytes).c_str(), gib(p.head_bytes).c_str(),
      gib(p.per_gpu_bytes).c_str(), in.batch, in.context, p.step_kv_bytes / 1e9, p.step_attn_weight_bytes / 1e9,
      (p.step_attn_flops + p.step_proj_flops) / 1e12, p.step_attn_flops / 1e12, p.step_proj_flops / 1e12,
      p.step_expert_bytes / 1e9, p.step_xfer_bytes / 1e6, in.host_read_bw / 1e9, in.cpu_bf16_flops / 1e12,
      in.hbm_bw / 1e9, in.gpu_bf16_flops / 1e12, in.pcie_bw / 1e9, p.bound_s * 1e3,
      p.bound_s > 0 ? in.batch / p.bound_s : 0.0, p.bound_by.c_str());
  return buf;
}

}  // namespace afd
