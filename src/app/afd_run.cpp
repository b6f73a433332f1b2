// afd-run: load a model and generate. With --engine reference it runs the float32 oracle forward.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/reference.h"
#include "model/run_config.h"
#include "model/safetensors.h"
#include "model/sampler.h"
#include "util/error.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    size_t pos = 0;
    long long v = 0;
    try {
      v = std::stoll(tok, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    AFD_REQUIRE(pos > 0 && pos == tok.size() && v >= 0 && v < (1ll << 31), "--prompt-ids: '", tok,
                "' is not a token id (expected comma-separated non-negative integers)");
    ids.push_back(static_cast<int32_t>(v));
  }
  AFD_REQUIRE(!ids.empty(), "--prompt-ids is empty");
  return ids;
}

// The bundled model: $AFD_DEFAULT_MODEL when set (binaries moved away from the source tree), else the build's copy.
std::string default_model() {
  const char* env = std::getenv("AFD_DEFAULT_MODEL");
  return env && *env ? env : AFD_DEFAULT_MODEL;
}

struct Options {
  std::string model = default_model();
  std::string engine = "reference";
  std::string prompt_ids;
  int max_new_tokens = 32;
  afd::SamplingParams sampling;
  bool ignore_eos = false;
  bool json = false;
  std::string dump_logits;
};

int run(const Options& o) {
  AFD_REQUIRE(o.engine == "reference", "--engine ", o.engine, " is not available (reference)");
  afd::validate(o.sampling);
  const auto t0 = Clock::now();
  afd::ReferenceModel model(afd::load_ref_weights(o.model, !o.json));
  const afd::ModelConfig& cfg = model.config();
  const auto t1 = Clock::now();

  std::vector<int32_t> prompt;
  if (!o.prompt_ids.empty()) {
    prompt = parse_ids(o.prompt_ids);
  } else {
    AFD_REQUIRE(cfg.bos_token_id >= 0, o.model, ": the model has no bos_token_id; give --prompt-ids");
    prompt = {cfg.bos_token_id};
  }
  const int T = static_cast<int>(prompt.size()), V = cfg.vocab_size;
  AFD_REQUIRE(T + o.max_new_tokens <= cfg.max_position_embeddings, "prompt (", T, " tokens) + --max-new-tokens ",
              o.max_new_tokens, " exceeds the model's context of ", cfg.max_position_embeddings, " positions");

  afd::RefKvCache cache = model.new_cache();
  afd::Sampler sampler(o.sampling);
  const bool dump = !o.dump_logits.empty();
  std::vector<float> prefill_logits, step_logits;
  std::vector<float> logits = model.forward(prompt.data(), T, cache, dump);
  if (dump) {
    prefill_logits = logits;
    logits.assign(prefill_logits.end() - V, prefill_logits.end());
  }
  const auto t2 = Clock::now();

  std::vector<int32_t> out;
  std::string finish = "length";
  for (int step = 0; step < o.max_new_tokens; ++step) {
    if (dump) step_logits.insert(step_logits.end(), logits.begin(), logits.end());
    const int32_t next = sampler.sample(logits.data(), V);
    out.push_back(next);
    if (!o.json) {
      std::printf("%s%d", step ? " " : "", next);
      std::fflush(stdout);
    }
    const bool eos = std::find(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end(), next) != cfg.eos_token_ids.end();
    if (eos && !o.ignore_eos) {
      finish = "eos";
      break;
    }
    if (step + 1 < o.max_new_tokens) logits = model.forward(&next, 1, cache, false);
  }
  const auto t3 = Clock::now();
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  const double decode_s = secs(t2, t3);

  if (dump) {
    const int N = static_cast<int>(out.size());
    afd::st::write_file(o.dump_logits,
                        {{"prefill_logits", afd::st::DType::F32, {T, V}, prefill_logits.data()},
                         {"step_logits", afd::st::DType::F32, {N, V}, step_logits.data()}},
                        {{"engine", o.engine}, {"model", o.model}});
  }
  if (o.json) {
    nlohmann::json j = {{"model", o.model},
                        {"engine", o.engine},
                        {"prompt_ids", prompt},
                        {"output_ids", out},
                        {"finish_reason", finish},
                        {"load_s", secs(t0, t1)},
                        {"prefill_s", secs(t1, t2)},
                        {"decode_s", decode_s},
                        {"decode_tokens_per_s", decode_s > 0 ? out.size() / decode_s : 0.0}};
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("\n");
    std::fprintf(stderr, "afd-run: %s, %d prompt tokens, %zu generated (%s) in %.3f s, %.1f tok/s\n",
                 cfg.arch_name(), T, out.size(), finish.c_str(), decode_s,
                 decode_s > 0 ? out.size() / decode_s : 0.0);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"afd-run: generate with an afd engine from a Hugging Face MoE checkpoint "
               "(DeepSeek-V3/V2, Qwen3-MoE, Mixtral)."};
  app.add_option("--model", o.model,
                 "Checkpoint directory (config.json + safetensors). Default: the bundled pystdlib-moe model "
                 "($AFD_DEFAULT_MODEL overrides where it is looked for).");
  app.add_option("--engine", o.engine, "Engine: 'reference' (float32 oracle forward, CPU only).");
  app.add_option("--prompt-ids", o.prompt_ids,
                 "Prompt as comma-separated token ids, e.g. 3,1,4. Default: the model's BOS token alone.");
  app.add_option("--max-new-tokens", o.max_new_tokens, "Tokens to generate.")->check(CLI::NonNegativeNumber);
  app.add_option("--temperature", o.sampling.temperature, "Sampling temperature; 0 = greedy (ties: lower id).");
  app.add_option("--top-k", o.sampling.top_k, "Sample among the k most likely tokens; 0 = all.");
  app.add_option("--top-p", o.sampling.top_p, "Nucleus sampling mass in (0, 1]; 1 = all.");
  app.add_option("--seed", o.sampling.seed, "Seed of the sampler (same seed, same output).");
  app.add_flag("--ignore-eos", o.ignore_eos, "Keep generating after an end-of-sequence token.");
  app.add_flag("--json", o.json,
               "Print one JSON object (prompt_ids, output_ids, finish_reason, timings) instead of streaming ids.");
  app.add_option("--dump-logits", o.dump_logits,
                 "Write a safetensors file with f32 prefill_logits [prompt_len, vocab] and step_logits [N, vocab].");
  std::string config;
  app.add_option("--config", config,
                 "Runtime YAML (configs/*.yaml): model.path, engine, generation defaults. Flags given on the "
                 "command line override it.");
  CLI11_PARSE(app, argc, argv);
  try {
    if (!config.empty()) {
      const afd::RunConfig rc = afd::load_run_config(config);
      if (!app.count("--model")) o.model = rc.model_path;
      if (!app.count("--engine") && rc.engine) o.engine = *rc.engine;
      if (!app.count("--max-new-tokens") && rc.max_new_tokens) o.max_new_tokens = *rc.max_new_tokens;
      if (!app.count("--temperature") && rc.temperature) o.sampling.temperature = *rc.temperature;
      if (!app.count("--top-k") && rc.top_k) o.sampling.top_k = *rc.top_k;
      if (!app.count("--top-p") && rc.top_p) o.sampling.top_p = *rc.top_p;
      if (!app.count("--seed") && rc.seed) o.sampling.seed = *rc.seed;
    }
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "afd-run: error: %s\n", e.what());
    return 1;
  }
}
