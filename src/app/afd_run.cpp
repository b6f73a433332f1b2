// afd-run: load a model and generate (or measure perplexity). --engine reference runs the float32 oracle forward.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "app/openmp_policy.h"
#include "app/run_options.h"
#include "app/runtime_flags.h"
#include "model/run_config.h"
#include "util/error.h"

namespace {

// The bundled model: $AFD_DEFAULT_MODEL when set (binaries moved away from the source tree), else the build's copy.
std::string default_model() {
  const char* env = std::getenv("AFD_DEFAULT_MODEL");
  return env && *env ? env : AFD_DEFAULT_MODEL;
}

void apply_config(const std::string& path, const CLI::App& app, afd::app::RunOptions& o) {
  const afd::RunConfig rc = afd::load_run_config(path);
  if (!app.count("--model")) {
    o.model = rc.model_path;
    o.synthetic = rc.synthetic;
  }
  if (!app.count("--engine") && rc.engine) o.engine = *rc.engine;
  if (!app.count("--max-new-tokens") && rc.max_new_tokens) o.max_new_tokens = *rc.max_new_tokens;
  if (!app.count("--temperature") && rc.temperature) o.sampling.temperature = *rc.temperature;
  if (!app.count("--top-k") && rc.top_k) o.sampling.top_k = *rc.top_k;
  if (!app.count("--top-p") && rc.top_p) o.sampling.top_p = *rc.top_p;
  if (!app.count("--seed") && rc.seed) o.sampling.seed = *rc.seed;
  afd::app::apply_runtime_config(rc, app, o.runtime);
}

}  // namespace

int main(int argc, char** argv) {
  afd::app::prefer_passive_openmp(argv);
  afd::app::RunOptions o;
  o.model = default_model();
  std::string config;
  CLI::App app{"afd-run: generate with an afd engine from a Hugging Face MoE checkpoint "
               "(DeepSeek-V3/V2, Qwen3-MoE, Mixtral)."};
  app.add_option("--config", config,
                 "Runtime YAML (configs/*.yaml): model.path, engine, generation defaults. Flags given on the "
                 "command line override it.");
  app.add_option("--model", o.model,
                 "Checkpoint directory (config.json + safetensors, tokenizer.json for text). Default: the bundled "
                 "pystdlib-moe model ($AFD_DEFAULT_MODEL overrides where it is looked for).");
  app.add_option("--engine", o.engine,
                 "Engine: 'afd' (attention on CPU threads, FFN on the GPU or CPU, pipelined micro-batches) or "
                 "'reference' (float32 oracle forward, one prompt, CPU only).");
  afd::app::add_runtime_flags(app, o.runtime);
  app.add_flag("--dry-run", o.dry_run,
               "Print the memory plan (host weights and KV capacity, weights per GPU, the decode-step bound at "
               "--max-batch and --context) and exit without loading or allocating anything.");
  app.add_option("--context", o.plan_context, "Context length for --dry-run's bound.");
  app.add_flag("--stats", o.stats, "Print pipeline statistics: busy and idle time of each side, overlap.");
  app.add_option("--trace", o.trace_file, "Write a Chrome trace (Perfetto) of the first steps' spans to this file.");
  app.add_option("--requests", o.requests_file,
                 "JSONL requests run as one batch: {\"prompt\" | \"prompt_ids\", \"max_new_tokens\", "
                 "\"temperature\", \"top_k\", \"top_p\", \"seed\", \"ignore_eos\", \"stop\" (a string or a list)} per line.");
  app.add_option("--prompt", o.prompt, "Prompt text, encoded with the model's tokenizer (BOS added as it says).");
  app.add_flag("--chat", o.chat, "Render --prompt as a user turn with the model's chat template.");
  app.add_option("--system", o.system, "A system message for --chat.");
  app.add_option("--prompt-ids", o.prompt_ids,
                 "Prompt as comma-separated token ids, e.g. 3,1,4; give it several times for a batch. Without "
                 "--prompt/--prompt-ids: the BOS token.");
  app.add_option("--max-new-tokens", o.max_new_tokens, "Tokens to generate.")->check(CLI::NonNegativeNumber);
  app.add_option("--temperature", o.sampling.temperature, "Sampling temperature; 0 = greedy (ties: lower id).");
  app.add_option("--top-k", o.sampling.top_k, "Sample among the k most likely tokens; 0 = all.");
  app.add_option("--top-p", o.sampling.top_p, "Nucleus sampling mass in (0, 1]; 1 = all.");
  app.add_option("--seed", o.sampling.seed, "Seed of the sampler (same seed, same output).");
  app.add_flag("--ignore-eos", o.ignore_eos, "Keep generating after an end-of-sequence token.");
  app.add_option("--stop", o.stop,
                 "Stop string (repeatable; needs the model's tokenizer.json): a request ends as soon as its decoded "
                 "text contains one; the text is cut just before it, the tokens after the one that completed it are "
                 "not generated, and finish_reason is \"stop\". Taken literally: pass a newline as $'\\n'; one "
                 "starting with '-' as --stop=-x. Requests in --requests may carry their own \"stop\" instead.")
      ->allow_extra_args(false);
  app.add_flag("--json", o.json,
               "Print one JSON object (prompt_ids, output_ids, text, finish_reason, timings) instead of streaming.");
  app.add_option("--dump-logits", o.dump_logits,
                 "Write a safetensors file with f32 prefill_logits [prompt_len, vocab] and step_logits [N, vocab].");
  app.add_option("--perplexity", o.perplexity_file,
                 "Report the perplexity of a text file instead of generating: [BOS] + its tokens, cut into windows.");
  app.add_option("--ppl-window", o.ppl_window, "Tokens per perplexity window.")->check(CLI::Range(2, 1 << 20));
  app.add_option("--ppl-windows", o.ppl_windows, "How many windows (from the start of the file) to evaluate.")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    if (!config.empty()) apply_config(config, app, o);
    if (o.dry_run) return afd::app::run_dry_run(o);
    if (!o.perplexity_file.empty()) return afd::app::run_perplexity(o);
    return o.engine == "reference" ? afd::app::run_generate(o) : afd::app::run_engine_generate(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "afd-run: error: %s\n", e.what());
    return 1;
  }
}
