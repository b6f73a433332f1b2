// The runtime YAML config (`afd-run --config FILE.yaml`): which model to load and how to generate.
//
//   model:
//     path: ../models/pystdlib-moe   # a checkpoint directory; relative paths are relative to the YAML file
//   # or, random weights of a published architecture's real shapes (no download):
//   #   synthetic: {preset: deepseek-v2-lite, layers: 4, seed: 1}
//   engine: afd                      # afd (the AFD engine) or reference (float32 oracle)
//   runtime:                         # the afd engine; command-line flags override
//     ffn_device: auto               # gpu | cpu | auto
//     attn_threads: 0                # 0 = every CPU
//     micro_batches: 2
//     max_batch: 64
//     max_step_tokens: 512
//     kv_pool_mb: 1024
//     kv_cache_dtype: bf16             # or fp8_e4m3: half the KV bytes, values rounded to e4m3
//     gpus: 1                        # GPUs the routed experts are spread over (memory plan)
//   ffn:                             # optional: the FFN side in another process (afd-ffn-server)
//     remote: 127.0.0.1:7400         # host:port; --ffn-remote overrides
//   generation:                      # defaults; command-line flags override them
//     max_new_tokens: 48
//     temperature: 0.0
//     top_k: 0
//     top_p: 1.0
//     seed: 0
//
// Unknown keys are errors (a misspelt key must not be silently ignored); every error names the file and the key.
#pragma once

#include <optional>
#include <string>

#include "model/sampler.h"
#include "model/synthetic.h"

namespace afd {

struct RunConfig {
  std::string source;
  std::string model_path;                  // empty when synthetic
  std::optional<SyntheticSpec> synthetic;
  std::optional<std::string> engine;
  std::optional<int> max_new_tokens;
  std::optional<float> temperature, top_p;
  std::optional<int> top_k;
  std::optional<uint64_t> seed;
  std::optional<std::string> ffn_device;
  std::optional<int> attn_threads, micro_batches, max_batch, max_step_tokens;
  std::optional<int64_t> kv_pool_mb;
  std::optional<std::string> kv_cache_dtype;  // bf16 | fp8_e4m3
  std::optional<int> gpus;
  std::optional<std::string> ffn_remote;   // ffn.remote: host:port of an afd-ffn-server
};

RunConfig load_run_config(const std::string& yaml_path);
RunConfig parse_run_config(const std::string& yaml_text, const std::string& source, const std::string& base_dir);

}  // namespace afd
