#include "app/engine_factory.h"

#include "attn_cpu/cpu_attention.h"
#include "moe_gpu/cpu_ffn.h"
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

namespace {
void check_ffn_device(const RuntimeOptions& o) {
  AFD_REQUIRE(o.ffn_device == "auto" || o.ffn_device == "cpu" || o.ffn_device == "gpu", "--ffn-device ",
              o.ffn_device, " is not one of auto, cpu, gpu");
}
}  // namespace

std::shared_ptr<const Bf16Weights> load_model(const ModelSource& model, bool show_progress) {
  return model.synthetic ? make_synthetic_weights(*model.synthetic, kWeightsAll, show_progress)
                         : load_weights<uint16_t>(model.dir, kWeightsAll, show_progress);
}

std::unique_ptr<engine::Engine> make_engine(const ModelSource& model, const RuntimeOptions& o) {
  check_ffn_device(o);
  return make_engine(load_model(model, o.show_progress), o);
}

std::unique_ptr<engine::Engine> make_engine(std::shared_ptr<const Bf16Weights> w, const RuntimeOptions& o) {
  check_ffn_device(o);
  const bool gpu = o.ffn_device == "gpu" || (o.ffn_device == "auto" && gpu_ffn_available());
  AFD_REQUIRE(!gpu || gpu_ffn_available(), "--ffn-device gpu: ",
#if AFD_HAVE_GPU_FFN
              "no GPU is visible to this process"
#else
              "this build has no CUDA (configure where nvcc is found)"
#endif
  );
  const ModelConfig& c = w->cfg;

  attn::CpuAttnOptions ao;
  ao.threads = o.attn_threads;
  ao.block_size = o.kv_block;
  ao.pool_bytes = o.kv_pool_mb << 20;
  ao.max_seqs = std::max(o.max_batch * 2, 16);
  auto attn = std::make_unique<attn::CpuAttention>(w, ao);

  std::unique_ptr<FfnBackend> ffn;
  if (gpu) {
#if AFD_HAVE_GPU_FFN
    ffn = std::make_unique<gpu::GpuFfn>(w, o.gpu, o.max_step_tokens);
#endif
  } else {
    ffn = std::make_unique<CpuFfn>(w);
  }
  engine::EngineOptions eo;
  eo.micro_batches = o.micro_batches;
  eo.scheduler.max_batch = o.max_batch;
  eo.scheduler.max_step_tokens = o.max_step_tokens;
  eo.scheduler.max_context = c.max_position_embeddings;
  eo.trace = o.trace;
  eo.trace_steps = o.trace_steps;
  return std::make_unique<engine::Engine>(std::move(attn), std::move(ffn), eo);
}

}  // namespace afd::app
