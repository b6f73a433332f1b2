// The runtime flags the command-line programs share (afd-run, afd-serve), and how a YAML config's runtime section
// fills in what the command line left unset (flags given explicitly always win).
#pragma once

#include <CLI/CLI.hpp>

#include "app/engine_factory.h"
#include "model/run_config.h"

namespace afd::app {

inline void add_runtime_flags(CLI::App& app, RuntimeOptions& r) {
  app.add_option("--ffn-device", r.ffn_device, "Where the FFN side runs: gpu, cpu, or auto (gpu when present).");
  app.add_option("--gpu", r.gpu, "GPU index for the FFN side.");
  app.add_option("--attn-threads", r.attn_threads, "Attention worker threads; 0 = every CPU this process may use.");
  app.add_option("--micro-batches", r.micro_batches, "Micro-batches M per step (1 = no overlap), 1..16.");
  app.add_option("--max-batch", r.max_batch, "Running sequences at most (continuous batching).");
  app.add_option("--max-step-tokens", r.max_step_tokens, "Tokens per step: decode tokens plus prefill chunks.");
  app.add_option("--kv-pool-mb", r.kv_pool_mb, "Host KV-cache pool size in MiB.");
  app.add_option("--kv-cache-dtype", r.kv_cache_dtype,
                 "KV-cache elements: bf16, or fp8_e4m3 (one byte each: twice the positions per MiB and half the bytes "
                 "attention reads; values rounded to e4m3, scale 1).");
  app.add_option("--gpus", r.gpus,
                 "GPUs for the FFN side, --gpu onwards: the routed experts are split over them (expert parallelism); "
                 "with --dry-run, the GPUs the memory plan assumes.");
  app.add_option("--ep-input", r.ep_input,
                 "Expert parallelism: how activations reach the GPUs: copies (one host copy each) or broadcast "
                 "(one copy + NCCL broadcast).");
  app.add_option("--ep-output", r.ep_output,
                 "Expert parallelism: how partial sums come back: reduce (NCCL reduce onto the first GPU) or "
                 "host-sum (each GPU copies back, the host adds).");
  app.add_option("--ffn-remote", r.ffn_remote,
                 "host:port of an afd-ffn-server: run attention here and the FFN side there (--ffn-device unused).");
}

inline void apply_runtime_config(const RunConfig& rc, const CLI::App& app, RuntimeOptions& r) {
  if (!app.count("--ffn-device") && rc.ffn_device) r.ffn_device = *rc.ffn_device;
  if (!app.count("--attn-threads") && rc.attn_threads) r.attn_threads = *rc.attn_threads;
  if (!app.count("--micro-batches") && rc.micro_batches) r.micro_batches = *rc.micro_batches;
  if (!app.count("--max-batch") && rc.max_batch) r.max_batch = *rc.max_batch;
  if (!app.count("--max-step-tokens") && rc.max_step_tokens) r.max_step_tokens = *rc.max_step_tokens;
  if (!app.count("--kv-pool-mb") && rc.kv_pool_mb) r.kv_pool_mb = *rc.kv_pool_mb;
  if (!app.count("--kv-cache-dtype") && rc.kv_cache_dtype) r.kv_cache_dtype = *rc.kv_cache_dtype;
  if (!app.count("--ffn-remote") && rc.ffn_remote) r.ffn_remote = *rc.ffn_remote;
  if (!app.count("--gpus") && rc.gpus) r.gpus = *rc.gpus;
}

}  // namespace afd::app
