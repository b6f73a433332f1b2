#include "server/engine_setup.h"

namespace afd::server {

EngineSetup engine_setup(const RunConfig& rc) {
  EngineSetup s;
  s.model.dir = rc.model_path;
  s.model.synthetic = rc.synthetic;
  app::RuntimeOptions& r = s.runtime;
  r.show_progress = false;
  if (rc.ffn_device) r.ffn_device = *rc.ffn_device;
  if (rc.attn_threads) r.attn_threads = *rc.attn_threads;
  if (rc.micro_batches) r.micro_batches = *rc.micro_batches;
  if (rc.max_batch) r.max_batch = *rc.max_batch;
  if (rc.max_step_tokens) r.max_step_tokens = *rc.max_step_tokens;
  if (rc.kv_pool_mb) r.kv_pool_mb = *rc.kv_pool_mb;
  if (rc.kv_cache_dtype) r.kv_cache_dtype = *rc.kv_cache_dtype;
  if (rc.gpus) r.gpus = *rc.gpus;
  if (rc.temperature) s.sampling.temperature = *rc.temperature;
  if (rc.top_k) s.sampling.top_k = *rc.top_k;
  if (rc.top_p) s.sampling.top_p = *rc.top_p;
  if (rc.seed) s.sampling.seed = *rc.seed;
  if (rc.max_new_tokens) s.max_new_tokens = *rc.max_new_tokens;
  return s;
}

}  // namespace afd::server
