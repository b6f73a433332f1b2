// afd-run as a user runs it: --json output, --dump-logits against the fixtures, clear errors on bad input.
#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "model/safetensors.h"

using namespace afd;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {
struct RunResult {
  int status;
  std::string out;  // stdout and stderr together
};

RunResult run_afd(const std::string& args) {
  // $AFD_RUN_BIN overrides the build's path when the binaries were carried to another machine.
  const char* env = std::getenv("AFD_RUN_BIN");
  const std::string cmd = std::string(env && *env ? env : AFD_RUN_BIN) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}
}  // namespace

TEST_CASE("afd-run --json --dump-logits reproduces a fixture case", "[afd-run]") {
  const std::string dir = test::fixture_model("dsv3_tiny");
  json ej = json::parse(std::ifstream(dir + "/expected.json"));
  const auto prompt = ej["cases"][1]["prompt"].get<std::vector<int32_t>>();
  const auto greedy = ej["cases"][1]["greedy"].get<std::vector<int32_t>>();
  test::TempDir tmp;
  const auto r = run_afd("--model " + dir + " --engine reference --prompt-ids " + join(prompt) +
                         " --max-new-tokens 12 --temperature 0 --ignore-eos --json --dump-logits " +
                         tmp.path("l.safetensors"));
  INFO(r.out);
  REQUIRE(r.status == 0);
  const json j = json::parse(r.out);
  CHECK(j["output_ids"].get<std::vector<int32_t>>() == greedy);
  CHECK(j["prompt_ids"].get<std::vector<int32_t>>() == prompt);

  st::SafetensorsFile dump(tmp.path("l.safetensors")), exp(dir + "/expected.safetensors");
  const auto *pl = dump.find("prefill_logits"), *sl = dump.find("step_logits");
  REQUIRE(pl);
  REQUIRE(sl);
  CHECK(pl->shape == exp.find("prefill_logits_1")->shape);
  CHECK(sl->shape == exp.find("step_logits_1")->shape);
  CHECK(test::rel_l2(reinterpret_cast<const float*>(pl->data),
                     reinterpret_cast<const float*>(exp.find("prefill_logits_1")->data), pl->numel()) < 1e-4);
  CHECK(test::rel_l2(reinterpret_cast<const float*>(sl->data),
                     reinterpret_cast<const float*>(exp.find("step_logits_1")->data), sl->numel()) < 1e-4);
}

TEST_CASE("afd-run runs the bundled model by default and samples reproducibly", "[afd-run]") {
  const auto a = run_afd("--max-new-tokens 8 --temperature 0.8 --top-p 0.9 --seed 3 --json");
  const auto b = run_afd("--max-new-tokens 8 --temperature 0.8 --top-p 0.9 --seed 3 --json");
  INFO(a.out);
  REQUIRE(a.status == 0);
  REQUIRE(b.status == 0);
  const json ja = json::parse(a.out), jb = json::parse(b.out);
  CHECK(ja["output_ids"] == jb["output_ids"]);
  CHECK(ja["prompt_ids"] == json::array({0}));  // the model's BOS
  CHECK(ja["model"].get<std::string>().find("pystdlib-moe") != std::string::npos);
  CHECK(ja["output_ids"].size() == 8);
}

TEST_CASE("afd-run reports bad input in one sentence and exits non-zero", "[afd-run]") {
  auto expect = [](const std::string& args, const std::string& needle) {
    const auto r = run_afd(args);
    INFO(args << "\n" << r.out);
    CHECK(r.status != 0);
    CHECK_THAT(r.out, Contains(needle));
  };
  expect("--model /nonexistent/model", "/nonexistent/model");
  expect("--prompt-ids 1,x,3", "'x' is not a token id");
  expect("--prompt-ids 5000000", "outside the vocabulary");
  expect("--engine warp", "--engine warp is not available");
  expect("--temperature -1", "temperature");
  expect("--top-p 0", "top_p");
  expect("--max-new-tokens 5000", "exceeds the model's context");
  test::TempDir tmp;
  test::write_text(tmp.path("config.json"), "{\"model_type\": \"gpt2\"}");
  expect("--model " + tmp.path(), "model_type");
}

TEST_CASE("afd-run --config takes the model and defaults from YAML, flags override it", "[afd-run]") {
  const std::string cfg = test::source_dir() + "/configs/pystdlib-moe.yaml";
  const auto a = run_afd("--config " + cfg + " --json --ignore-eos");
  INFO(a.out);
  REQUIRE(a.status == 0);
  CHECK(json::parse(a.out)["output_ids"].size() == 48);
  const auto b = run_afd("--config " + cfg + " --json --max-new-tokens 3");
  REQUIRE(b.status == 0);
  CHECK(json::parse(b.out)["output_ids"].size() == 3);
  test::TempDir tmp;
  test::write_text(tmp.path("bad.yaml"), "model: {path: x}\nengin: reference\n");
  const auto c = run_afd("--config " + tmp.path("bad.yaml"));
  CHECK(c.status != 0);
  CHECK_THAT(c.out, Contains("unknown key 'engin'"));
}
