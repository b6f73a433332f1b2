// What afd-run was asked to do (command line, optionally seeded from a YAML config).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "app/engine_factory.h"
#include "model/sampler.h"

namespace afd::app {

struct RunOptions {
  std::string model;                    // checkpoint directory (unless synthetic)
  std::optional<SyntheticSpec> synthetic;
  ModelSource source() const { return {synthetic ? std::string() : model, synthetic}; }
  bool dry_run = false;                 // print the memory plan and exit
  int plan_context = 4096;              // context length the dry-run bound is computed for
  std::string engine = "afd";     // afd | reference
  RuntimeOptions runtime;         // the afd engine's
  bool stats = false;             // print pipeline statistics
  std::string trace_file;         // Chrome trace of the first steps
  std::vector<std::string> prompt_ids;  // each comma-separated ids; several run as one batch
  std::string requests_file;      // JSONL requests, run as one batch
  std::string prompt;      // text, encoded with the model's tokenizer
  bool chat = false;       // render `prompt` (and `system`) with the model's chat template
  std::string system;
  int max_new_tokens = 32;
  SamplingParams sampling;
  bool ignore_eos = false;
  std::vector<std::string> stop;  // stop strings: a request ends when its decoded text contains one (needs tokenizer)
  bool json = false;
  std::string dump_logits;
  std::string perplexity_file;
  int ppl_window = 512;
  int ppl_windows = 64;
};

// The jobs; each returns the process exit code and throws afd::Error on bad input.
int run_generate(const RunOptions& o);          // --engine reference: one prompt, the float32 oracle
int run_engine_generate(const RunOptions& o);   // --engine afd: one or many prompts as one batch
int run_perplexity(const RunOptions& o);
int run_dry_run(const RunOptions& o);           // --dry-run: the memory plan, nothing allocated

}  // namespace afd::app
