// afd-run's generation job: prompt -> tokens, streamed as text (or ids) as they are produced.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "app/prompt.h"
#include "app/timing.h"
#include "model/reference.h"
#include "model/safetensors.h"
#include "tokenizer/text_stream.h"
#include "util/error.h"

namespace afd::app {

int run_generate(const RunOptions& o) {
  AFD_REQUIRE(o.engine == "reference", "--engine ", o.engine, " is not available (reference)");
  validate(o.sampling);
  AFD_REQUIRE(!o.synthetic, "--engine reference needs a checkpoint directory, not a synthetic model");
  const auto t0 = Clock::now();
  ReferenceModel model(load_ref_weights(o.model, !o.json));
  const ModelConfig& cfg = model.config();
  const std::optional<tok::Tokenizer> tk = find_tokenizer(o.model);
  AFD_REQUIRE(o.stop.empty() || tk.has_value(), "--stop needs the model's tokenizer.json, which ", o.model,
              " does not have");
  const auto t1 = Clock::now();

  const std::vector<int32_t> prompt = prompt_ids(o, cfg, tk);
  const int T = static_cast<int>(prompt.size()), V = cfg.vocab_size;
  AFD_REQUIRE(T + o.max_new_tokens <= cfg.max_position_embeddings, "prompt (", T, " tokens) + --max-new-tokens ",
              o.max_new_tokens, " exceeds the model's context of ", cfg.max_position_embeddings, " positions");

  RefKvCache cache = model.new_cache();
  Sampler sampler(o.sampling);
  const bool dump = !o.dump_logits.empty();
  std::vector<float> prefill_logits, step_logits;
  std::vector<float> logits = model.forward(prompt.data(), T, cache, dump);
  if (dump) {
    prefill_logits = logits;
    logits.assign(prefill_logits.end() - V, prefill_logits.end());
  }
  const auto t2 = Clock::now();

  // Text streams as it completes (never a broken UTF-8 sequence, never a stop string); without a tokenizer, ids.
  std::optional<tok::TextStream> stream;
  if (tk) stream.emplace(*tk, o.stop);
  if (!o.json && tk && !o.chat && o.prompt_ids.empty()) std::fputs(tk->decode(prompt, true).c_str(), stdout);
  std::vector<int32_t> out;
  std::string text, finish = "length";
  for (int step = 0; step < o.max_new_tokens; ++step) {
    if (dump) step_logits.insert(step_logits.end(), logits.begin(), logits.end());
    const int32_t next = sampler.sample(logits.data(), V);
    out.push_back(next);
    const std::string piece = stream ? stream->push(next) : (step ? " " : "") + std::to_string(next);
    text += piece;
    if (!o.json) {
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
    }
    if (stream && stream->stopped()) {
      finish = "stop";
      break;
    }
    const auto& eos = cfg.eos_token_ids;
    if (!o.ignore_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) {
      finish = "eos";
      break;
    }
    if (step + 1 < o.max_new_tokens) logits = model.forward(&next, 1, cache, false);
  }
  if (stream) {
    const std::string rest = stream->finish();
    text += rest;
    if (!o.json) std::fputs(rest.c_str(), stdout);
  }
  const auto t3 = Clock::now();
  const double decode_s = secs(t2, t3);

  if (dump) {
    const int N = static_cast<int>(out.size());
    st::write_file(o.dump_logits,
                   {{"prefill_logits", st::DType::F32, {T, V}, prefill_logits.data()},
                    {"step_logits", st::DType::F32, {N, V}, step_logits.data()}},
                   {{"engine", o.engine}, {"model", o.model}});
  }
  const double tps = decode_s > 0 ? static_cast<double>(out.size()) / decode_s : 0.0;
  if (o.json) {
    nlohmann::json j = {{"model", o.model},      {"engine", o.engine},         {"prompt_ids", prompt},
                        {"output_ids", out},     {"finish_reason", finish},    {"load_s", secs(t0, t1)},
                        {"prefill_s", secs(t1, t2)}, {"decode_s", decode_s},   {"decode_tokens_per_s", tps}};
    if (tk) j["text"] = text;
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("\n");
    std::fflush(stdout);  // before the summary on stderr
    std::fprintf(stderr, "afd-run: %s, %d prompt tokens, %zu generated (%s) in %.3f s, %.1f tok/s\n",
                 cfg.arch_name(), T, out.size(), finish.c_str(), decode_s, tps);
  }
  return 0;
}

}  // namespace afd::app
