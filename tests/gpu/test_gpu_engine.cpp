// The AFD engine with its FFN side on the GPU: CPU attention + GpuFfn, pipelined micro-batches. Greedy output must
// equal the float32 reference engine's on the fixtures (issue: the AFD engine on the GPU FFN), and perplexity of the
// trained demo model must stay near the reference's.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "../engine/engine_fixture.h"
#include "../test_util.h"
#include "attn_cpu/cpu_attention.h"
#include "engine/engine.h"
#include "model/reference.h"
#include "moe_gpu/gpu_ffn.h"

using namespace afd;

namespace {
std::unique_ptr<engine::Engine> gpu_engine(const std::string& dir, int M) {
  auto w = load_weights<uint16_t>(dir, kWeightsAll, false);
  return test::make_engine_over(w, std::make_unique<gpu::GpuFfn>(w, 0, 64), test::gpu_engine_options(M));
}

}  // namespace

TEST_CASE("AFD engine on the GPU FFN: greedy output equals the reference engine on the fixtures", "[gpu][engine]") {
  for (const char* name : {"dsv3_tiny", "dsv2lite_tiny", "qwen3moe_tiny", "dsv3_fp8_tiny", "mixtral_tiny",
                           "mixtral_swa_tiny"}) {
    const std::string dir = test::fixture_model(name);
    ReferenceModel ref(load_ref_weights(dir, false));
    const auto prompts = test::fixture_prompts(dir);
    for (int M : {1, 2, 3}) {
      INFO(name << " M=" << M);
      auto e = gpu_engine(dir, M);
      test::check_against_reference(ref, prompts, test::batch_greedy(*e, prompts, 12), 12);
      CHECK(e->attn().kv().free_blocks() == e->attn().kv().total_blocks());
    }
  }
}
