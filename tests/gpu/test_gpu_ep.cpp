// Expert parallelism: GpuFfn over 2..4 GPUs (routed experts split, partial sums reduced by NCCL or on the host)
// must give what one GPU gives on every fixture, and the engine's greedy tokens must equal the reference's. Needs
// at least two GPUs: on a one-GPU machine these cases say so and check nothing else.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "../engine/engine_fixture.h"
#include "attn_cpu/cpu_attention.h"
#include "engine/engine.h"
#include "gpu_ffn_test_util.h"
#include "moe_gpu/device.h"

using namespace afd;

namespace {

struct Mode {
  gpu::EpInput in;
  gpu::EpOutput out;
  const char* name;
};
const Mode kModes[] = {{gpu::EpInput::kCopies, gpu::EpOutput::kNcclReduce, "copies+reduce"},
                       {gpu::EpInput::kBroadcast, gpu::EpOutput::kNcclReduce, "broadcast+reduce"},
                       {gpu::EpInput::kCopies, gpu::EpOutput::kHostSum, "copies+host-sum"}};

std::vector<int> gpu_counts() {
  std::vector<int> g;
  const int n = gpu::device_count();
  for (int c : {2, 3, 4})
    if (c <= n) g.push_back(c);
  return g;
}

gpu::GpuFfnOptions ep_options(int gpus, const Mode& m, int max_tokens) {
  return gpu::ep_options(0, gpus, max_tokens, m.in, m.out);
}

bool enough_gpus() {
  if (gpu::device_count() >= 2) return true;
  WARN("expert parallelism needs two or more GPUs; this machine has " << gpu::device_count()
                                                                       << " (run on a multi-GPU kind)");
  return false;
}

}  // namespace

TEST_CASE("expert-parallel GpuFfn: the expert slices cover every expert once", "[gpu][ep]") {
  if (!enough_gpus()) return;
  test::ModelPair m("dsv3_tiny");
  const int E = m.bf_w->cfg.n_routed_experts;
  for (int G : gpu_counts())
    for (int first : {0, 1}) {
    gpu::GpuFfnOptions o = ep_options(G, kModes[0], 8);
    o.first_gpu_experts = first;
    gpu::GpuFfn g(m.bf_w, o);
    INFO("gpus " << G << " first " << first);
    if (first) CHECK(g.expert_slice(0).second == 1);
    int next = 0;
    for (int i = 0; i < G; ++i) {
      const auto [lo, count] = g.expert_slice(i);
      CHECK(lo == next);
      CHECK(count >= 1);
      if (!first) CHECK(count >= E / G);
      if (!first) CHECK(count <= E / G + 1);
      next = lo + count;
    }
    CHECK(next == E);
  }
}

TEST_CASE("expert-parallel GpuFfn equals one GPU on every fixture, layer and transfer mode", "[gpu][ep]") {
  if (!enough_gpus()) return;
  for (const std::string& name : test::gpu_test_models()) {
    test::ModelPair m(name);
    const ModelConfig& c = m.bf_w->cfg;
    gpu::GpuFfn one(m.bf_w, 0, 128);
    for (int G : gpu_counts())
      for (int variant = 0; variant < 4; ++variant) {
        // The three transfer modes with an even split, then an uneven one (one routed expert on the first GPU).
        const Mode& mode = kModes[variant % 3];
        gpu::GpuFfnOptions o = ep_options(G, mode, 128);
        if (variant == 3) o.first_gpu_experts = 1;
        gpu::GpuFfn ep(m.bf_w, o);
        for (int layer = 0; layer < c.num_layers; ++layer)
          for (int n : {1, 17, 97}) {
            INFO(name << " gpus " << G << " " << mode.name << " first-GPU experts " << o.first_gpu_experts << " layer "
                      << layer << " n " << n);
            const auto x = test::random_bf16(static_cast<size_t>(n) * c.hidden_size, 7000 + 31 * layer + n);
            std::vector<uint16_t> a = x, b = x;
            one.poison_workspace();
            ep.poison_workspace();
            one.ffn_half(layer, a.data(), n);
            ep.ffn_half(layer, b.data(), n);
            size_t differ = 0;
            double worst = 0;
            for (size_t i = 0; i < a.size(); ++i) {
              const float fa = bf16_to_f32(a[i]), fb = bf16_to_f32(b[i]);
              REQUIRE(std::isfinite(fb));
              if (a[i] == b[i]) continue;
              ++differ;
              worst = std::max(worst, static_cast<double>(std::fabs(fa - fb) / std::max(std::fabs(fa), 1e-3f)));
            }
            // Only the fp32 order of summing the k expert outputs differs: rare last-bit (2^-8 relative) changes.
            CHECK(worst <= 1.0 / 64);
            CHECK(differ <= std::max<size_t>(2, a.size() / 100));
            CHECK(ep.last_device_busy_seconds().size() == static_cast<size_t>(G));
            if (m.bf_w->ffn[layer].moe) {
              const auto ra = one.last_routing(), rb = ep.last_routing();
              CHECK(ra.ids == rb.ids);
              CHECK(ra.rows_per_expert == rb.rows_per_expert);
            }
          }
      }
  }
}

TEST_CASE("expert-parallel engine: greedy output equals the reference engine on the fixtures", "[gpu][ep][engine]") {
  if (!enough_gpus()) return;
  for (const char* name : {"dsv3_tiny", "dsv2lite_tiny", "qwen3moe_tiny", "mixtral_tiny"}) {
    const std::string dir = test::fixture_model(name);
    ReferenceModel ref(load_ref_weights(dir, false));
    auto w = load_weights<uint16_t>(dir, kWeightsAll, false);
    const auto prompts = test::fixture_prompts(dir);
    for (int G : gpu_counts()) {
      INFO(name << " gpus " << G);
      auto e = test::make_engine_over(w, std::make_unique<gpu::GpuFfn>(w, ep_options(G, kModes[0], 64)),
                                      test::gpu_engine_options(2));
      test::check_against_reference(ref, prompts, test::batch_greedy(*e, prompts, 12), 12);
      INFO(e->totals().summary());
      REQUIRE(e->totals().gpu_busy_s.size() == static_cast<size_t>(G));
      for (double b : e->totals().gpu_busy_s) CHECK(b > 0);
    }
  }
}

TEST_CASE("expert-parallel GpuFfn rejects a GPU listed twice and more GPUs than experts", "[gpu][ep]") {
  if (!enough_gpus()) return;
  test::ModelPair m("dsv3_tiny");
  gpu::GpuFfnOptions o = ep_options(2, kModes[0], 8);
  o.devices = {0, 0};
  CHECK_THROWS_WITH(gpu::GpuFfn(m.bf_w, o), Catch::Contains("listed twice"));
  CHECK_THROWS_WITH(gpu::parse_ep_output("sum"), Catch::Contains("reduce, host-sum"));
}
