#include "app/engine_factory.h"

#include "attn_cpu/cpu_attention.h"
#include "moe_gpu/cpu_ffn.h"
#include "transport/remote_ffn.h"
#include "util/error.h"
#if AFD_HAVE_GPU_FFN
#include "moe_gpu/device.h"
#include "moe_gpu/gpu_ffn.h"
#endif

namespace afd::app {

bool gpu_ffn_available() {
#if AFD_HAVE_GPU_FFN
  return gpu::device_count() > 0;
#else
  return false;
#endif
}

void check_ffn_device(const std::string& device) {
  AFD_REQUIRE(device == "auto" || device == "cpu" || device == "gpu", "--ffn-device ", device,
              " is not one of auto, cpu, gpu");
}

bool ffn_device_is_gpu(const std::string& device) {
  return device == "gpu" || (device == "auto" && gpu_ffn_available());
}

namespace {
// The FFN side of `o` runs on a GPU in this process.
bool local_gpu_ffn(const RuntimeOptions& o) { return o.ffn_remote.empty() && ffn_device_is_gpu(o.ffn_device); }
}  // namespace

LoadOptions load_options(const RuntimeOptions& o) {
  LoadOptions l;
  // A local GPU FFN streams fp8 experts as they are stored; the CPU FFN needs them dequantised.
  l.keep_fp8_experts = local_gpu_ffn(o);
  return l;
}

std::shared_ptr<const Bf16Weights> load_model(const ModelSource& model, bool show_progress, const LoadOptions& opt) {
  return model.synthetic ? make_synthetic_weights(*model.synthetic, kWeightsAll, show_progress, opt)
                         : load_weights<uint16_t>(model.dir, kWeightsAll, show_progress, opt);
}

std::unique_ptr<engine::Engine> make_engine(const ModelSource& model, const RuntimeOptions& o) {
  check_ffn_device(o.ffn_device);
  if (o.ffn_remote.empty()) return make_engine(load_model(model, o.show_progress, load_options(o)), o);
  // The FFN side runs in afd-ffn-server: this process needs only the embeddings and the attention weights.
  const unsigned parts = kWeightsEmbed | kWeightsAttn;
  return make_engine(model.synthetic ? make_synthetic_weights(*model.synthetic, parts, o.show_progress)
                                     : load_weights<uint16_t>(model.dir, parts, o.show_progress),
                     o);
}

std::unique_ptr<engine::Engine> make_engine(std::shared_ptr<const Bf16Weights> w, const RuntimeOptions& o) {
  return make_engine(make_backends(std::move(w), o), o);
}

#if AFD_HAVE_GPU_FFN
gpu::GpuFfnOptions gpu_ffn_options(const RuntimeOptions& o) {
  AFD_REQUIRE(o.gpus >= 1, "--gpus must be >= 1, not ", o.gpus);
  return gpu::ep_options(o.gpu, o.gpus, o.max_step_tokens, gpu::parse_ep_input(o.ep_input),
                         gpu::parse_ep_output(o.ep_output));
}
#endif

std::shared_ptr<AttnBackend> make_attn_backend(std::shared_ptr<const Bf16Weights> w, const RuntimeOptions& o) {
  attn::CpuAttnOptions ao;
  ao.threads = o.attn_threads;
  ao.block_size = o.kv_block;
  ao.kv_dtype = attn::parse_kv_dtype(o.kv_cache_dtype, "--kv-cache-dtype");
  ao.pool_bytes = o.kv_pool_mb << 20;
  ao.max_seqs = std::max(o.max_batch * 2, 16);
  return std::make_shared<attn::CpuAttention>(std::move(w), ao);
}

std::shared_ptr<FfnBackend> make_ffn_backend(std::shared_ptr<const Bf16Weights> w, const RuntimeOptions& o) {
  check_ffn_device(o.ffn_device);
  const bool gpu = local_gpu_ffn(o);
  AFD_REQUIRE(!gpu || gpu_ffn_available(), "--ffn-device gpu: ",
#if AFD_HAVE_GPU_FFN
              "no GPU is visible to this process"
#else
              "this build has no CUDA (configure where nvcc is found)"
#endif
  );
  if (!o.ffn_remote.empty()) return std::make_shared<transport::RemoteFfn>(o.ffn_remote, w->cfg);
#if AFD_HAVE_GPU_FFN
  if (gpu) return std::make_shared<gpu::GpuFfn>(w, gpu_ffn_options(o));
#endif
  return std::make_shared<CpuFfn>(w);
}

Backends make_backends(std::shared_ptr<const Bf16Weights> w, const RuntimeOptions& o) {
  Backends b;
  b.ffn = make_ffn_backend(w, o);  // first: its device checks are the cheaper failure
  b.attn = make_attn_backend(w, o);
  return b;
}

std::unique_ptr<engine::Engine> make_engine(const Backends& b, const RuntimeOptions& o) {
  engine::EngineOptions eo;
  eo.micro_batches = o.micro_batches;
  eo.scheduler.max_batch = o.max_batch;
  eo.scheduler.max_step_tokens = o.max_step_tokens;
  eo.scheduler.max_context = b.attn->config().max_position_embeddings;
  eo.trace = o.trace;
  eo.trace_steps = o.trace_steps;
  return std::make_unique<engine::Engine>(b.attn, b.ffn, eo);
}

}  // namespace afd::app
