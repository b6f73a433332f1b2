// afd-run as a user runs it: --json output, --dump-logits against the fixtures, clear errors on bad input.
#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
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
  expect("--ffn-device tpu", "--ffn-device tpu is not one of auto, cpu, gpu");
  expect("--temperature -1", "temperature");
  expect("--engine reference --temperature -1", "temperature");
  expect("--top-p 0", "top_p");
  expect("--max-new-tokens 5000", "the model's context of 1024");
  expect("--engine reference --max-new-tokens 5000", "the model's context of 1024");
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

namespace {
// Quotes one argument for the shell.
std::string sh_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

TEST_CASE("afd-run --prompt text reproduces the demo model's greedy continuations", "[afd-run]") {
  const std::string dir = test::fixture_model("pystdlib-moe");
  const json demo = json::parse(std::ifstream(dir + "/demo_expected.json"));
  for (const auto& c : demo["cases"]) {
    const std::string prompt = c["prompt"].get<std::string>();
    INFO(prompt);
    const auto r = run_afd("--model " + dir + " --engine reference --prompt " + sh_quote(prompt) +
                           " --max-new-tokens 48 --temperature 0 --ignore-eos --json");
    REQUIRE(r.status == 0);
    const json j = json::parse(r.out);
    CHECK(j["prompt_ids"] == c["prompt_ids"]);
    CHECK(j["output_ids"] == c["greedy_ids"]);
  }
}

TEST_CASE("afd-run --perplexity reproduces the reference perplexity of the demo model", "[afd-run][slow]") {
  const std::string dir = test::fixture_model("pystdlib-moe");
  const json ref = json::parse(std::ifstream(dir + "/ppl_ref.json"));
  const auto r = run_afd("--model " + dir + " --engine reference --perplexity " + dir + "/eval.txt --json");
  INFO(r.out);
  REQUIRE(r.status == 0);
  const json j = json::parse(r.out);
  CHECK(j["predicted_tokens"] == ref["predicted_tokens"]);
  CHECK(j["total_tokens"] == ref["total_tokens"]);
  const double want = ref["ppl_float32"].get<double>();
  CHECK(std::abs(j["perplexity"].get<double>() - want) / want < 5e-4);
}

TEST_CASE("afd-run text options fail clearly where they cannot work", "[afd-run]") {
  auto r = run_afd("--model " + test::fixture_model("dsv3_tiny") + " --prompt hello");
  CHECK(r.status != 0);
  CHECK_THAT(r.out, Contains("has no tokenizer.json"));
  r = run_afd("--prompt hi --prompt-ids 1,2");
  CHECK(r.status != 0);
  CHECK_THAT(r.out, Contains("not both"));
  r = run_afd("--perplexity /nonexistent.txt");
  CHECK(r.status != 0);
  CHECK_THAT(r.out, Contains("/nonexistent.txt"));
}

TEST_CASE("afd-run on the AFD engine (CPU FFN) reproduces the fixtures' greedy tokens, one or many prompts", "[afd-run]") {
  const std::string dir = test::fixture_model("qwen3moe_tiny");
  const json ej = json::parse(std::ifstream(dir + "/expected.json"));
  std::string args = "--model " + dir + " --engine afd --ffn-device cpu --attn-threads 2 --micro-batches 2 "
                     "--max-new-tokens 12 --ignore-eos --json";
  for (const auto& c : ej["cases"]) args += " --prompt-ids " + join(c["prompt"].get<std::vector<int32_t>>());
  const auto r = run_afd(args);
  INFO(r.out);
  REQUIRE(r.status == 0);
  std::stringstream lines(r.out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line)) {
    const json j = json::parse(line);
    REQUIRE(i < ej["cases"].size());
    CHECK(j["prompt_ids"] == ej["cases"][i]["prompt"]);
    CHECK(j["output_ids"] == ej["cases"][i]["greedy"]);
    ++i;
  }
  CHECK(i == ej["cases"].size());
}

TEST_CASE("afd-run --requests, --stats and --trace on the AFD engine", "[afd-run]") {
  test::TempDir tmp;
  test::write_text(tmp.path("r.jsonl"),
                   "{\"prompt\": \"import os\\n\", \"max_new_tokens\": 5}\n\n"
                   "{\"prompt_ids\": [0, 333, 286], \"max_new_tokens\": 3, \"temperature\": 0.7, \"seed\": 9}\n");
  const auto r = run_afd("--ffn-device cpu --attn-threads 2 --requests " + tmp.path("r.jsonl") +
                         " --stats --trace " + tmp.path("t.json"));
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("[1] ") && Contains("[2] ") && Contains("overlap"));
  const json trace = json::parse(test::read_text(tmp.path("t.json")));
  REQUIRE(trace["traceEvents"].size() > 10);
  bool attn = false, ffn = false;
  for (const auto& e : trace["traceEvents"]) {
    attn |= e.value("cat", "") == "attn";
    ffn |= e.value("cat", "") == "ffn";
  }
  CHECK(attn);
  CHECK(ffn);
  test::write_text(tmp.path("bad.jsonl"), "{\"prompt_ids\": \"nope\"}\n");
  const auto bad = run_afd("--ffn-device cpu --requests " + tmp.path("bad.jsonl"));
  CHECK(bad.status != 0);
  CHECK_THAT(bad.out, Contains("bad.jsonl:1"));
}

TEST_CASE("afd-run --dump-logits on the AFD engine is within bf16 tolerance of the fixture", "[afd-run]") {
  // Measured: the bf16 engine's logits differ from transformers' float32 ones by <= 2.6e-2 relative L2 on these
  // fixtures (one bf16 rounding per op through the layers); 3e-2 catches any real error (a wrong row or layer).
  // dsv3_tiny is left out on purpose: its sigmoid router has near-ties that the bf16 rounding of the router input
  // flips at a few positions (measured: positions 7, 11, 13 of this case, 0.5-0.9 relative error there, the
  // same flips with an f32 attention side), as a bf16 transformers run would; its greedy tokens still match
  // (tests/engine).
  for (const char* name : {"dsv2lite_tiny", "qwen3moe_tiny", "mixtral_swa_tiny"}) {
    INFO(name);
    const std::string dir = test::fixture_model(name);
    const json ej = json::parse(std::ifstream(dir + "/expected.json"));
    test::TempDir tmp;
    const auto r = run_afd("--model " + dir + " --ffn-device cpu --attn-threads 2 --prompt-ids " +
                           join(ej["cases"][2]["prompt"].get<std::vector<int32_t>>()) +
                           " --max-new-tokens 12 --ignore-eos --json --dump-logits " + tmp.path("l.safetensors"));
    REQUIRE(r.status == 0);
    st::SafetensorsFile dump(tmp.path("l.safetensors")), exp(dir + "/expected.safetensors");
    for (const char* t : {"prefill_logits", "step_logits"}) {
      const auto* got = dump.find(t);
      const auto* want = exp.find(std::string(t) + "_2");
      REQUIRE(got);
      REQUIRE(got->shape == want->shape);
      const double err = test::rel_l2(reinterpret_cast<const float*>(got->data),
                                      reinterpret_cast<const float*>(want->data), got->numel());
      CHECK(err < 3e-2);
    }
  }
}

TEST_CASE("afd-run --dry-run prints the memory plan of the full-size configs without allocating", "[afd-run]") {
  const auto r = run_afd("--config " + test::source_dir() + "/configs/deepseek.yaml --dry-run --json");
  INFO(r.out);
  REQUIRE(r.status == 0);
  const json j = json::parse(r.out);
  CHECK(j["layers"] == 61);
  CHECK(j["gpus"] == 8);
  CHECK(j["fp8_experts"] == true);
  CHECK(j["kv_bytes_per_token"] == 576 * 2 * 61);
  CHECK(j["kv_elem_bytes"] == 2);
  // A decode step reads every layer's attention weights once (bf16) and computes the projections besides the KV.
  CHECK(j["step_attn_weight_bytes"].get<double>() == j["host_attn_bytes"].get<double>());
  CHECK(j["step_proj_flops"].get<double>() == j["batch"].get<double>() * j["host_attn_bytes"].get<double>());
  CHECK(j["step_kv_bytes"].get<double>() ==
        j["batch"].get<double>() * j["context"].get<double>() * j["kv_bytes_per_token"].get<double>());
  const auto f8 = run_afd("--config " + test::source_dir() + "/configs/deepseek.yaml --dry-run --json --kv-cache-dtype fp8_e4m3");
  REQUIRE(f8.status == 0);
  CHECK(json::parse(f8.out)["kv_bytes_per_token"] == 576 * 61);  // one byte per element: twice the tokens
  const auto bad = run_afd("--config " + test::source_dir() + "/configs/deepseek.yaml --dry-run --kv-cache-dtype fp16");
  CHECK(bad.status != 0);
  CHECK_THAT(bad.out, Contains("--kv-cache-dtype") && Contains("fp16"));
  CHECK(j["per_gpu_bytes"].get<int64_t>() < (int64_t{141} << 30));  // fits an H200
  const auto text = run_afd("--config " + test::source_dir() + "/configs/qwen3-30b-a3b.yaml --dry-run");
  REQUIRE(text.status == 0);
  CHECK_THAT(text.out, Contains("memory plan: qwen3_moe, 48 of 48 layers") && Contains("bound"));
}

TEST_CASE("afd-run --perplexity through the AFD engine (CPU FFN) is within 0.1% of the reference, M = 1 and 2", "[afd-run][slow]") {
  const std::string dir = test::fixture_model("pystdlib-moe");
  const double want = json::parse(std::ifstream(dir + "/ppl_ref.json"))["ppl_float32"].get<double>();
  for (int M : {1, 2}) {
    INFO("M=" << M);
    const auto r = run_afd("--model " + dir + " --ffn-device cpu --micro-batches " + std::to_string(M) +
                           " --perplexity " + dir + "/eval.txt --json");
    INFO(r.out);
    REQUIRE(r.status == 0);
    const json j = json::parse(r.out);
    CHECK(j["predicted_tokens"] == 32704);
    CHECK(std::abs(j["perplexity"].get<double>() - want) / want < 1e-3);
  }
}

// The fp8 KV cache costs some quality (values rounded to e4m3, scale 1): measured +1.3% on the demo model's
// held-out text. It must stay close, and it must differ from bf16 (the rounding really happens).
TEST_CASE("afd-run --perplexity with an fp8 KV cache stays within 2% of the reference", "[afd-run][slow]") {
  const std::string dir = test::fixture_model("pystdlib-moe");
  const double want = json::parse(std::ifstream(dir + "/ppl_ref.json"))["ppl_float32"].get<double>();
  const auto r = run_afd("--model " + dir + " --ffn-device cpu --micro-batches 2 --kv-cache-dtype fp8_e4m3 --perplexity " +
                         dir + "/eval.txt --json");
  INFO(r.out);
  REQUIRE(r.status == 0);
  const json j = json::parse(r.out);
  CHECK(j["predicted_tokens"] == 32704);
  const double ppl = j["perplexity"].get<double>();
  CHECK(ppl > want * 1.001);
  CHECK(ppl < want * 1.02);
}

TEST_CASE("afd-run --stop ends a request at a stop string on both engines and fails clearly without a tokenizer", "[afd-run]") {
  const std::string dir = test::fixture_model("pystdlib-moe");
  for (const std::string engine : {"reference", "afd --ffn-device cpu --attn-threads 2 --micro-batches 2"}) {
    INFO(engine);
    const std::string base = "--model " + dir + " --engine " + engine +
                             " --prompt 'def fibonacci(n):' --max-new-tokens 48 --temperature 0 --ignore-eos --json";
    const auto full = run_afd(base);
    INFO(full.out);
    REQUIRE(full.status == 0);
    const json f = json::parse(full.out);
    const std::string text = f["text"].get<std::string>();
    const auto ids = f["output_ids"].get<std::vector<int32_t>>();
    REQUIRE(ids.size() == 48);
    const size_t at = text.find("Parameters");  // the greedy continuation has a numpydoc docstring
    REQUIRE(at != std::string::npos);
    REQUIRE(at > 0);

    const auto cut = run_afd(base + " --stop Parameters --stop 'never-in-this-text'");
    INFO(cut.out);
    REQUIRE(cut.status == 0);
    const json c = json::parse(cut.out);
    CHECK(c["finish_reason"] == "stop");
    CHECK(c["text"].get<std::string>() == text.substr(0, at));
    const auto cids = c["output_ids"].get<std::vector<int32_t>>();
    CHECK(cids.size() < ids.size());
    CHECK(cids.size() > 1);
    CHECK(std::equal(cids.begin(), cids.end(), ids.begin()));  // the same tokens, up to the stop string's last

    const auto none = run_afd(base + " --stop 'never-in-this-text'");
    REQUIRE(none.status == 0);
    CHECK(json::parse(none.out)["finish_reason"] == "length");
    CHECK(json::parse(none.out)["text"] == text);
  }
  // A request's own "stop" in --requests replaces --stop's; the other request keeps --stop.
  test::TempDir tmp;
  test::write_text(tmp.path("r.jsonl"), "{\"prompt\": \"def fibonacci(n):\", \"stop\": [\"Parameters\"]}\n"
                                        "{\"prompt\": \"def fibonacci(n):\", \"stop\": \"fibonacci function\"}\n"
                                        "{\"prompt\": \"def fibonacci(n):\"}\n");
  const auto r = run_afd("--model " + dir + " --ffn-device cpu --attn-threads 2 --requests " + tmp.path("r.jsonl") +
                         " --max-new-tokens 48 --temperature 0 --ignore-eos --stop Fibonacci --json");
  INFO(r.out);
  REQUIRE(r.status == 0);
  std::stringstream lines(r.out);
  std::vector<json> js;
  for (std::string line; std::getline(lines, line);) js.push_back(json::parse(line));
  REQUIRE(js.size() == 3);
  for (const auto& j : js) CHECK(j["finish_reason"] == "stop");
  CHECK(js[0]["text"].get<std::string>().find("Parameters") == std::string::npos);
  CHECK(js[0]["text"].get<std::string>().find("Fibonacci function") != std::string::npos);
  CHECK(js[1]["text"].get<std::string>() == "\n    \"\"\"\n    Fibonacci function for a ");
  CHECK(js[2]["text"].get<std::string>() == "\n    \"\"\"\n    ");

  for (const std::string engine : {"reference", "afd"}) {
    const auto bad = run_afd("--model " + test::fixture_model("dsv3_tiny") + " --engine " + engine +
                             " --prompt-ids 1,2 --stop x");
    CHECK(bad.status != 0);
    CHECK_THAT(bad.out, Contains("--stop needs the model's tokenizer.json"));
  }
}
