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
  attn::CpuAttnOptions ao;
  ao.block_size = 16;
  ao.pool_blocks = 1024;
  engine::EngineOptions eo;
  eo.micro_batches = M;
  eo.scheduler.max_batch = 32;
  eo.scheduler.max_step_tokens = 64;
  return std::make_unique<engine::Engine>(std::make_unique<attn::CpuAttention>(w, ao),
                                          std::make_unique<gpu::GpuFfn>(w, 0, 64), eo);
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
      const auto got = test::batch_greedy(*e, prompts, 12);
      for (size_t i = 0; i < prompts.size(); ++i) {
        const auto m = test::match_reference_greedy(ref, prompts[i], got[i]);
        INFO("case " << i << ": first difference at token " << m.first_difference << ", reference margin "
                     << m.margin);
        CHECK(got[i].size() == 12u);
        CHECK(m.near_tie());
      }
      CHECK(e->attn().kv().free_blocks() == e->attn().kv().total_blocks());
    }
  }
}
