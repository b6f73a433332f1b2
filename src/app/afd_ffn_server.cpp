// afd-ffn-server: hosts the FFN side of a model (routed + shared experts, dense MLPs, final norm, LM head and
// sampling) and serves it over TCP to attention processes (`afd-run --ffn-remote host:port`, afd-serve likewise).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/engine_factory.h"
#include "model/run_config.h"
#include "model/synthetic.h"
#include "model/weights.h"
#include "moe_gpu/cpu_ffn.h"
#include "transport/ffn_server.h"
#include "util/error.h"
#if AFD_HAVE_GPU_FFN
#include "moe_gpu/gpu_ffn.h"
#endif

namespace {

// The FFN side asked for: GpuFfn where this build and machine have a GPU (device gpu, or auto), else CpuFfn.
std::unique_ptr<afd::FfnBackend> make_ffn(const afd::app::ModelSource& src, const std::string& device,
                                          const afd::app::RuntimeOptions& ro) {
  afd::app::check_ffn_device(device);
  const bool use_gpu = afd::app::ffn_device_is_gpu(device);
  AFD_REQUIRE(!use_gpu || afd::app::gpu_ffn_available(), "--ffn-device gpu: no GPU (or no CUDA in this build)");
  const unsigned parts = afd::kWeightsFfn | afd::kWeightsHead;  // this side never embeds or attends
  afd::LoadOptions lo;
  lo.keep_fp8_experts = use_gpu;  // the GPU FFN streams fp8 experts as stored
  auto w = src.synthetic ? afd::make_synthetic_weights(*src.synthetic, parts, false, lo)
                         : afd::load_weights<uint16_t>(src.dir, parts, false, lo);
#if AFD_HAVE_GPU_FFN
  if (use_gpu) return std::make_unique<afd::gpu::GpuFfn>(w, afd::app::gpu_ffn_options(ro));
#else
  (void)ro;
#endif
  return std::make_unique<afd::CpuFfn>(w);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config, model_dir, host = "127.0.0.1", device = "auto";
  int port = -1, gpu = 0, max_tokens = 512, window_us = 100;
  CLI::App app{"afd-ffn-server: serve the FFN side of a MoE model over TCP to afd attention processes "
               "(afd-run/afd-serve --ffn-remote host:port). Several attention processes may connect at once."};
  app.add_option("--config", config, "Runtime YAML: model.path (or model.synthetic) and runtime.ffn_device.");
  app.add_option("--model", model_dir, "Checkpoint directory (config.json + safetensors); overrides --config.");
  app.add_option("--port", port, "TCP port; 0 picks a free one (printed on stderr as 'listening on').")->required();
  app.add_option("--host", host, "Address to listen on; the default is loopback only.");
  app.add_option("--ffn-device", device, "Where the FFN side runs: gpu, cpu, or auto (gpu when present).");
  app.add_option("--gpu", gpu, "GPU index for --ffn-device gpu (the first of --gpus).");
  afd::app::RuntimeOptions ro;
  app.add_option("--gpus", ro.gpus, "GPUs from --gpu onwards; the routed experts are split over them.")
      ->check(CLI::PositiveNumber);
  app.add_option("--ep-input", ro.ep_input, "Expert parallelism: copies (one host copy per GPU) or broadcast (NCCL).");
  app.add_option("--ep-output", ro.ep_output, "Expert parallelism: reduce (NCCL reduce) or host-sum.");
  app.add_option("--max-step-tokens", max_tokens, "Tokens per FFN call at most (sizes the GPU workspace).")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-window-us", window_us,
                 "Cross-connection batching: requests of several attention processes for the same layer that are "
                 "pending together run as one FFN call (up to --max-step-tokens rows); a request waits at most this "
                 "long for the others, and only while another connection is busy. 0 disables batching.")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    afd::app::ModelSource src{model_dir, std::nullopt};
    if (!config.empty()) {
      const afd::RunConfig rc = afd::load_run_config(config);
      if (!app.count("--model")) src = {rc.model_path, rc.synthetic};
      if (!app.count("--ffn-device") && rc.ffn_device) device = *rc.ffn_device;
      if (!app.count("--gpus") && rc.gpus) ro.gpus = *rc.gpus;
    }
    AFD_REQUIRE(!src.dir.empty() || src.synthetic, "give --model DIR or --config FILE.yaml");
    ro.gpu = gpu;
    ro.max_step_tokens = max_tokens;
    auto ffn = make_ffn(src, device, ro);
    afd::transport::BatchOptions batch;
    batch.window = std::chrono::microseconds(window_us);
    batch.max_rows = max_tokens;
    afd::transport::FfnServer server(*ffn, host, port, batch);
    std::fprintf(stderr, "afd-ffn-server: %s (%s) listening on %s:%d\n", src.label().c_str(), ffn->name().c_str(),
                 host.c_str(), server.port());
    server.run(/*handle_signals=*/true);
    const afd::transport::BatchStats st = server.stats();
    std::fprintf(stderr,
                 "afd-ffn-server: stopped after serving %d connections: %lld requests in %lld backend calls "
                 "(%lld batched), %.2f rows and %.2f requests per call\n",
                 server.connections_served(), static_cast<long long>(st.requests), static_cast<long long>(st.calls),
                 static_cast<long long>(st.batched_calls), st.rows_per_call(), st.requests_per_call());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "afd-ffn-server: error: %s\n", e.what());
    return 1;
  }
}
