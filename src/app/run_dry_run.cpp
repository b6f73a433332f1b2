// afd-run --dry-run: the memory plan of the configured model, computed from its architecture alone.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/run_options.h"
#include "attn_cpu/kv_cache.h"
#include "model/memory_plan.h"
#include "util/error.h"

namespace afd::app {

int run_dry_run(const RunOptions& o) {
  const ModelConfig cfg = o.synthetic ? synthetic_config(*o.synthetic)
                                      : load_model_config((std::filesystem::path(o.model) / "config.json").string());
  PlanInputs in;
  in.gpus = o.runtime.gpus;
  in.fp8_experts = cfg.fp8 && o.runtime.ffn_device != "cpu";  // a GPU FFN keeps fp8 experts; the CPU FFN cannot
  in.kv_pool_bytes = o.runtime.kv_pool_mb << 20;
  in.kv_elem_bytes = attn::kv_dtype_bytes(attn::parse_kv_dtype(o.runtime.kv_cache_dtype, "--kv-cache-dtype"));
  in.batch = o.runtime.max_batch;
  in.context = o.plan_context;
  const MemoryPlan p = plan_memory(cfg, in);
  if (!o.json) {
    std::fputs(describe(p, cfg).c_str(), stdout);
    return 0;
  }
  std::cout << nlohmann::json{{"model", o.source().label()},
                              {"layers", p.in.layers},
                              {"gpus", in.gpus},
                              {"fp8_experts", in.fp8_experts},
                              {"host_embed_bytes", p.embed_bytes},
                              {"host_attn_bytes", p.attn_bytes},
                              {"kv_pool_bytes", in.kv_pool_bytes},
                              {"kv_elem_bytes", in.kv_elem_bytes},
                              {"kv_bytes_per_token", p.kv_bytes_per_token},
                              {"kv_capacity_tokens", p.kv_capacity_tokens},
                              {"routed_expert_bytes", p.routed_bytes},
                              {"ffn_other_bytes", p.ffn_other_bytes},
                              {"head_bytes", p.head_bytes},
                              {"per_gpu_bytes", p.per_gpu_bytes},
                              {"batch", in.batch},
                              {"context", in.context},
                              {"step_kv_bytes", p.step_kv_bytes},
                              {"step_attn_weight_bytes", p.step_attn_weight_bytes},
                              {"step_attn_flops", p.step_attn_flops},
                              {"step_proj_flops", p.step_proj_flops},
                              {"step_gpu_weight_bytes", p.step_expert_bytes},
                              {"bound_ms_per_step", p.bound_s * 1e3},
                              {"bound_tokens_per_s", p.bound_s > 0 ? in.batch / p.bound_s : 0.0},
                              {"bound_by", p.bound_by}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace afd::app
