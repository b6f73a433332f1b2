// The memory plan against hand-computed sizes of the published architectures.
#include <catch2/catch.hpp>

#include "model/memory_plan.h"
#include "model/synthetic.h"

using namespace afd;

TEST_CASE("memory plan of DeepSeek-V3 671B and V2-Lite matches hand-computed sizes", "[plan]") {
  const ModelConfig v3 = synthetic_config({"deepseek-v3", 0, 1});
  PlanInputs in;
  in.gpus = 8;
  in.fp8_experts = true;
  in.kv_pool_bytes = int64_t{100} << 30;
  const MemoryPlan p = plan_memory(v3, in);
  CHECK(p.kv_bytes_per_token == 576 * 2 * 61);  // latent 512 + rope 64, bf16, 61 layers
  // 58 MoE layers x 256 experts x 3 matrices of 2048 x 7168 fp8 + one fp32 scale per row and 128 columns (the
  // GPU's layout): gate and up have 2048 rows of 7168 columns, down 7168 rows of 2048.
  const int64_t gate = int64_t{2048} * 7168 + 2048 * (7168 / 128) * 4, down = int64_t{7168} * 2048 + 7168 * (2048 / 128) * 4;
  CHECK(p.routed_bytes == 58 * 256 * (2 * gate + down));
  // The attention weights stay bf16 on the host: q_a 1536x7168, q_b 24576x1536, kv_a 576x7168, kv_b 32768x512,
  // o_proj 7168x16384.
  CHECK(p.attn_bytes == int64_t{61} * 2 *
                            (1536 * 7168 + 24576 * 1536 + 576 * 7168 + 32768 * 512 + int64_t{7168} * 16384));
  CHECK(p.per_gpu_bytes == (p.routed_bytes + 7) / 8 + p.ffn_other_bytes + p.head_bytes);
  CHECK(p.kv_capacity_tokens == in.kv_pool_bytes / p.kv_bytes_per_token);
  CHECK(p.bound_by == "CPU attention FLOPs");  // absorbed MLA with 128 heads is compute-bound on the CPU

  const ModelConfig lite = synthetic_config({"deepseek-v2-lite", 0, 1});
  PlanInputs li;
  li.kv_pool_bytes = int64_t{32} << 30;
  const MemoryPlan q = plan_memory(lite, li);
  CHECK(q.kv_bytes_per_token == 576 * 2 * 27);
  CHECK(q.routed_bytes == int64_t{26} * 64 * 3 * 1408 * 2048 * 2);
  CHECK(q.embed_bytes == int64_t{102400} * 2048 * 2);
  // attention per layer: q_proj 3072x2048, kv_a 576x2048, kv_b 4096x512, o_proj 2048x2048, bf16
  CHECK(q.attn_bytes == int64_t{27} * 2 * (3072 * 2048 + 576 * 2048 + 4096 * 512 + 2048 * 2048));
}

TEST_CASE("the decode-step bound counts the attention weights the host reads and the projections it computes", "[plan]") {
  const ModelConfig v3 = synthetic_config({"deepseek-v3", 0, 1});
  PlanInputs in;
  in.gpus = 8;
  in.fp8_experts = true;
  in.batch = 1;
  in.context = 4096;
  const MemoryPlan p = plan_memory(v3, in);
  CHECK(p.step_attn_weight_bytes == static_cast<double>(p.attn_bytes));  // bf16, read once per step
  CHECK(p.step_proj_flops == static_cast<double>(p.attn_bytes));         // 2 FLOPs per bf16 weight, one token
  CHECK(p.step_kv_bytes == 4096.0 * p.kv_bytes_per_token);
  // One sequence: the 22.8 GB of attention weights, not its 0.29 GB of KV or the GPUs, set the step.
  CHECK(p.bound_by == "host reads (KV + attention weights)");
  CHECK(p.bound_s == Approx((p.step_kv_bytes + p.step_attn_weight_bytes) / in.host_read_bw));
  // The head is read every step on the GPU side.
  CHECK(p.step_expert_bytes > static_cast<double>(p.ffn_other_bytes + p.head_bytes));

  PlanInputs wide = in;
  wide.attn_weight_elem_bytes = 4;  // weights widened to f32 where oneDNN has no bf16 matmul
  CHECK(plan_memory(v3, wide).step_attn_weight_bytes == 2.0 * p.attn_bytes);

  PlanInputs big = in;
  big.batch = 256;
  const MemoryPlan q = plan_memory(v3, big);
  CHECK(q.step_proj_flops == 256.0 * q.attn_bytes);
  CHECK(q.bound_s == Approx((q.step_attn_flops + q.step_proj_flops) / big.cpu_bf16_flops));
}
