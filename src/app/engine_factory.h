// Builds an AFD engine from a checkpoint directory and runtime options: CPU attention + the FFN backend asked for
// (the GPU one when this build has CUDA and the machine a GPU; the CPU one otherwise or when asked).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "model/synthetic.h"
#if AFD_HAVE_GPU_FFN
#include "moe_gpu/gpu_ffn.h"
#endif

namespace afd::app {

struct RuntimeOptions {
  std::string ffn_device = "auto";  // auto | cpu | gpu
  int gpu = 0;                      // GPU index for ffn_device gpu
  int attn_threads = 0;             // 0 = every CPU this process may use
  int micro_batches = 2;
  int max_batch = 64;
  int max_step_tokens = 512;
  int64_t kv_pool_mb = 1024;        // host KV pool
  int kv_block = 64;                // positions per KV block
  std::string kv_cache_dtype = "bf16";  // KV cache elements: bf16 | fp8_e4m3 (half the bytes, e4m3-rounded)
  int gpus = 1;                     // GPUs gpu .. gpu + gpus - 1 share the routed experts (expert parallelism)
  std::string ep_input = "copies";  // expert parallelism: copies | broadcast (gpu::EpInput)
  std::string ep_output = "reduce"; // expert parallelism: reduce | host-sum (gpu::EpOutput)
  bool trace = false;
  int trace_steps = 16;             // steps whose spans are kept when tracing
  bool show_progress = true;
  std::string ffn_remote;           // host:port of an afd-ffn-server: the FFN side runs there (ffn_device unused)
};

// True when this build has the GPU FFN and a GPU is present.
bool gpu_ffn_available();
// Throws afd::Error unless `device` is one of auto, cpu, gpu (an --ffn-device value).
void check_ffn_device(const std::string& device);
// Whether an --ffn-device value puts the FFN on a GPU here: gpu, or auto with a GPU available.
bool ffn_device_is_gpu(const std::string& device);

// A checkpoint directory, or a synthetic model (random weights of a preset's shapes).
struct ModelSource {
  std::string dir;
  std::optional<SyntheticSpec> synthetic;
  std::string label() const { return synthetic ? "synthetic:" + synthetic->preset : dir; }
};

std::unique_ptr<engine::Engine> make_engine(const ModelSource& model, const RuntimeOptions& o);
// From weights already loaded (all parts).
std::unique_ptr<engine::Engine> make_engine(std::shared_ptr<const Bf16Weights> w, const RuntimeOptions& o);

// The two sides alone, so that several engines can run over them in turn with the weights placed once (afd-bench's
// sweep): the KV pool and the FFN's per-call token capacity are sized by `o` (kv_pool_mb, max_step_tokens).
struct Backends {
  std::shared_ptr<AttnBackend> attn;
  std::shared_ptr<FfnBackend> ffn;
};
Backends make_backends(std::shared_ptr<const Bf16Weights> w, const RuntimeOptions& o);
// Either side alone (a sweep over attention threads rebuilds only the attention side).
std::shared_ptr<AttnBackend> make_attn_backend(std::shared_ptr<const Bf16Weights> w, const RuntimeOptions& o);
std::shared_ptr<FfnBackend> make_ffn_backend(std::shared_ptr<const Bf16Weights> w, const RuntimeOptions& o);
// An engine over existing backends with `o`'s scheduling options (micro-batches, batch, step tokens, trace).
std::unique_ptr<engine::Engine> make_engine(const Backends& b, const RuntimeOptions& o);
#if AFD_HAVE_GPU_FFN
// The GPU FFN's options from the runtime's (GPUs, per-call tokens, expert-parallel transfer modes).
gpu::GpuFfnOptions gpu_ffn_options(const RuntimeOptions& o);
#endif
// How the model's weights are loaded for `o`'s FFN side (fp8 experts kept for a local GPU FFN).
LoadOptions load_options(const RuntimeOptions& o);
std::shared_ptr<const Bf16Weights> load_model(const ModelSource& model, bool show_progress,
                                              const LoadOptions& opt = {});

}  // namespace afd::app
