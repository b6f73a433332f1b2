// The float32 reference forward against what transformers computed (tests/fixtures/models/*/expected.*):
// greedy tokens identical, prefill and step logits within 1e-4 relative L2; prefill and incremental decode agree.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "model/reference.h"
#include "model/safetensors.h"
#include "model/sampler.h"

using namespace afd;
namespace fs = std::filesystem;

namespace {

constexpr double kLogitTol = 1e-4;

std::vector<float> f32_rows(const st::TensorInfo& t) {
  REQUIRE(t.dtype == st::DType::F32);
  const float* p = reinterpret_cast<const float*>(t.data);
  return {p, p + t.numel()};
}

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(test::source_dir() + "/tests/fixtures/models"))
    if (fs::exists(e.path() / "expected.safetensors")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void check_fixture(const std::string& name) {
  const std::string dir = test::fixture_model(name);
  ReferenceModel model(load_ref_weights(dir, false));
  const int V = model.config().vocab_size;
  st::SafetensorsFile expected(dir + "/expected.safetensors");
  nlohmann::json ej = nlohmann::json::parse(std::ifstream(dir + "/expected.json"));
  const auto& cases = ej["cases"];
  REQUIRE(cases.size() > 0);
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    INFO(name << " case " << ci);
    const std::vector<int32_t> prompt = cases[ci]["prompt"].get<std::vector<int32_t>>();
    const std::vector<int32_t> greedy = cases[ci]["greedy"].get<std::vector<int32_t>>();
    const int T = static_cast<int>(prompt.size());
    const auto* pl = expected.find("prefill_logits_" + std::to_string(ci));
    const auto* sl = expected.find("step_logits_" + std::to_string(ci));
    const auto* tk = expected.find("tokens_" + std::to_string(ci));
    REQUIRE(pl);
    REQUIRE(sl);
    REQUIRE(tk);
    REQUIRE(pl->shape == std::vector<int64_t>{T, V});
    const auto exp_prefill = f32_rows(*pl), exp_steps = f32_rows(*sl);
    const int64_t* toks = reinterpret_cast<const int64_t*>(tk->data);
    for (int i = 0; i < T; ++i) REQUIRE(toks[i] == prompt[i]);

    RefKvCache cache = model.new_cache();
    std::vector<float> logits = model.forward(prompt.data(), T, cache, true);
    for (int t = 0; t < T; ++t) {
      INFO("prefill position " << t);
      CHECK(test::rel_l2(&logits[t * V], &exp_prefill[t * V], V) < kLogitTol);
    }
    std::vector<float> last(logits.end() - V, logits.end());
    const int steps = static_cast<int>(greedy.size());
    REQUIRE(sl->shape == std::vector<int64_t>{steps, V});
    for (int s = 0; s < steps; ++s) {
      INFO("step " << s);
      CHECK(test::rel_l2(last.data(), &exp_steps[s * V], V) < kLogitTol);
      const int32_t next = argmax(last.data(), V);
      REQUIRE(next == greedy[s]);
      REQUIRE(toks[T + s] == greedy[s]);
      last = model.forward(&next, 1, cache, false);
    }
  }
}

}  // namespace

TEST_CASE("reference forward reproduces every fixture", "[reference]") {
  const auto names = fixture_names();
  REQUIRE(names.size() >= 6);
  for (const auto& n : names) {
    SECTION(n) { check_fixture(n); }
  }
}

TEST_CASE("prefill in chunks equals one prefill equals token-by-token decode", "[reference]") {
  for (const char* name : {"dsv3_tiny", "dsv2lite_tiny", "qwen3moe_tiny", "dsv3_fp8_tiny", "mixtral_swa_tiny"}) {
    INFO(name);
    ReferenceModel model(load_ref_weights(test::fixture_model(name), false));
    const int V = model.config().vocab_size;
    std::vector<int32_t> ids;
    std::mt19937 rng(7);
    for (int i = 0; i < 23; ++i) ids.push_back(static_cast<int32_t>(rng() % V));
    RefKvCache a = model.new_cache(), b = model.new_cache(), c = model.new_cache();
    const auto whole = model.forward(ids.data(), 23, a, true);
    const auto part1 = model.forward(ids.data(), 9, b, true);
    const auto part2 = model.forward(ids.data() + 9, 14, b, true);
    for (int t = 0; t < 23; ++t) {
      const auto one = model.forward(&ids[t], 1, c, false);
      const float* w = &whole[t * V];
      const float* chunked = t < 9 ? &part1[t * V] : &part2[(t - 9) * V];
      CHECK(test::rel_l2(one.data(), w, V) < 1e-5);
      CHECK(test::rel_l2(chunked, w, V) < 1e-5);
    }
    CHECK(a.len == 23);
    CHECK(b.len == 23);
    CHECK(c.len == 23);
  }
}

TEST_CASE("pystdlib-moe greedy continuations match transformers", "[reference]") {
  const std::string dir = test::fixture_model("pystdlib-moe");
  ReferenceModel model(load_ref_weights(dir, false));
  const int V = model.config().vocab_size;
  nlohmann::json demo = nlohmann::json::parse(std::ifstream(dir + "/demo_expected.json"));
  for (const auto& c : demo["cases"]) {
    INFO(c["prompt"].get<std::string>());
    std::vector<int32_t> ids = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto want = c["greedy_ids"].get<std::vector<int32_t>>();
    RefKvCache cache = model.new_cache();
    auto logits = model.forward(ids.data(), static_cast<int>(ids.size()), cache, false);
    std::vector<int32_t> got;
    for (size_t s = 0; s < want.size(); ++s) {
      got.push_back(argmax(logits.data(), V));
      logits = model.forward(&got.back(), 1, cache, false);
    }
    CHECK(got == want);
  }
}
