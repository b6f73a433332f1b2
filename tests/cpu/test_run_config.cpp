#include <catch2/catch.hpp>

#include "../test_util.h"
#include "model/run_config.h"
#include "util/error.h"

using namespace afd;
using Catch::Matchers::Contains;

TEST_CASE("the bundled YAML configs parse and point at real models", "[config]") {
  const RunConfig c = load_run_config(test::source_dir() + "/configs/pystdlib-moe.yaml");
  CHECK(c.model_path.find("models/pystdlib-moe") != std::string::npos);
  CHECK(c.engine == std::optional<std::string>("afd"));
  CHECK(c.max_new_tokens == std::optional<int>(48));
}

TEST_CASE("bad YAML configs name the file and key", "[config]") {
  auto expect = [](const std::string& yaml, const std::string& needle) {
    CHECK_THROWS_WITH(parse_run_config(yaml, "x.yaml", "/base"), Contains("x.yaml") && Contains(needle));
  };
  expect("model: [", "malformed YAML");
  expect("engine: reference", "missing key 'model'");
  expect("model: {}", "model.path");
  expect("model: {path: m}\nmodle_typo: 1", "unknown key 'modle_typo'");
  expect("model: {path: m}\ngeneration: {temprature: 1}", "unknown key 'generation.temprature'");
  expect("model: {path: m}\ngeneration: {max_new_tokens: lots}", "generation.max_new_tokens = 'lots' is not an integer");
  expect("model: {path: m}\ngeneration: {max_new_tokens: -3}", "max_new_tokens must be >= 0");
  expect("model: {path: [a, b]}", "model.path must be a directory path");
  const RunConfig rel = parse_run_config("model: {path: ../m}", "x.yaml", "/base/configs");
  CHECK(rel.model_path == "/base/m");
}

TEST_CASE("the runtime section of the YAML config is read and checked", "[config]") {
  const RunConfig c = parse_run_config(
      "model: {path: m}\nruntime: {ffn_device: cpu, attn_threads: 3, micro_batches: 2, max_batch: 17, "
      "max_step_tokens: 99, kv_pool_mb: 64, kv_cache_dtype: fp8_e4m3}",
      "x.yaml", "/b");
  CHECK(c.ffn_device == std::optional<std::string>("cpu"));
  CHECK(c.attn_threads == std::optional<int>(3));
  CHECK(c.micro_batches == std::optional<int>(2));
  CHECK(c.max_batch == std::optional<int>(17));
  CHECK(c.max_step_tokens == std::optional<int>(99));
  CHECK(c.kv_pool_mb == std::optional<int64_t>(64));
  CHECK(c.kv_cache_dtype == std::optional<std::string>("fp8_e4m3"));
  CHECK_THROWS_WITH(parse_run_config("model: {path: m}\nruntime: {kv_cache_dtype: int4}", "x.yaml", "/b"),
                    Contains("x.yaml") && Contains("runtime.kv_cache_dtype = 'int4'"));
  CHECK_THROWS_WITH(parse_run_config("model: {path: m}\nruntime: {ffn_device: tpu}", "x.yaml", "/b"),
                    Contains("runtime.ffn_device = 'tpu'"));
  CHECK_THROWS_WITH(parse_run_config("model: {path: m}\nruntime: {micro_batches: 0}", "x.yaml", "/b"),
                    Contains("runtime.micro_batches = 0 must be >= 1"));
  CHECK_THROWS_WITH(parse_run_config("model: {path: m}\nruntime: {threads: 4}", "x.yaml", "/b"),
                    Contains("unknown key 'runtime.threads'"));
}

TEST_CASE("synthetic models in the YAML config: presets, layer counts, errors", "[config]") {
  const RunConfig c = parse_run_config("model: {synthetic: {preset: deepseek-v2-lite, layers: 3, seed: 7}}", "x.yaml", "/b");
  REQUIRE(c.synthetic.has_value());
  CHECK(c.model_path.empty());
  CHECK(c.synthetic->layers == 3);
  const ModelConfig m = synthetic_config(*c.synthetic);
  CHECK(m.num_layers == 3);
  CHECK(m.hidden_size == 2048);
  CHECK(m.q_lora_rank == 0);
  CHECK(m.n_routed_experts == 64);
  CHECK_THROWS_WITH(parse_run_config("model: {synthetic: {preset: gpt5}}", "x.yaml", "/b"),
                    Contains("x.yaml") && Contains("unknown architecture preset 'gpt5'"));
  CHECK_THROWS_WITH(parse_run_config("model: {synthetic: {preset: mixtral-8x7b, layers: 99}}", "x.yaml", "/b"),
                    Contains("layers = 99 exceeds the preset's 32"));
  CHECK_THROWS_WITH(parse_run_config("model: {path: a, synthetic: {preset: mixtral-8x7b}}", "x.yaml", "/b"),
                    Contains("not both"));
  for (const char* f : {"deepseek.yaml", "deepseek-v2-lite.yaml", "qwen3-30b-a3b.yaml", "mixtral-8x7b.yaml"}) {
    INFO(f);
    const RunConfig rc = load_run_config(test::source_dir() + "/configs/" + f);
    REQUIRE(rc.synthetic.has_value());
    CHECK(synthetic_config(*rc.synthetic).num_layers > 0);
  }
}
