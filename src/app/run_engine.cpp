// afd-run's generation job on the AFD engine: one prompt (streamed as it is produced) or many (--prompt-ids given
// several times, or --requests FILE.jsonl) run as one continuously batched workload.
//
// Stop strings (--stop, a request's "stop"): each request's text goes through a tok::TextStream; the token that
// completes a stop string is the request's last (it is cancelled at once, so the engine generates no more for it),
// its output and text end there (the text just before the stop string) and its finish reason is "stop".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "app/prompt.h"
#include "app/timing.h"
#include "model/safetensors.h"
#include "tokenizer/text_stream.h"
#include "util/error.h"

namespace afd::app {

namespace {
using nlohmann::json;

// A request and its stop strings (which the engine does not see: afd-run applies them to the decoded text).
struct RunRequest {
  engine::GenRequest gen;
  std::vector<std::string> stop;
};

RunRequest base_request(const RunOptions& o) {
  RunRequest r;
  r.gen.sampling = o.sampling;
  r.gen.max_new_tokens = o.max_new_tokens;
  r.gen.ignore_eos = o.ignore_eos;
  r.stop = o.stop;
  return r;
}

// A request's output as it is produced: ids up to (and including) the one that completed a stop string, and the
// text of those ids cut before the stop string.
struct RunOutput {
  std::optional<tok::TextStream> text;  // with a tokenizer
  std::vector<int32_t> ids;
  std::string str;
  bool stopped() const { return text && text->stopped(); }
};

// --requests: one JSON object per line: {"prompt": text | "prompt_ids": [ids], "max_new_tokens", "temperature",
// "top_k", "top_p", "seed", "ignore_eos", "stop": string or [strings]}; the command line gives the defaults.
std::vector<RunRequest> read_requests(const RunOptions& o, const std::optional<tok::Tokenizer>& tk) {
  std::ifstream in(o.requests_file);
  AFD_REQUIRE(in.good(), o.requests_file, ": cannot open");
  std::vector<RunRequest> out;
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = o.requests_file + ":" + std::to_string(no);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      fail(where, ": malformed JSON (", e.what(), ")");
    }
    AFD_REQUIRE(j.is_object(), where, ": a request must be a JSON object");
    RunRequest rr = base_request(o);
    engine::GenRequest& r = rr.gen;
    try {
      if (j.contains("prompt_ids")) {
        r.prompt = j["prompt_ids"].get<std::vector<int32_t>>();
      } else {
        AFD_REQUIRE(j.contains("prompt"), where, ": needs \"prompt\" or \"prompt_ids\"");
        AFD_REQUIRE(tk.has_value(), where, ": a text prompt needs the model's tokenizer.json");
        r.prompt = tk->encode(j["prompt"].get<std::string>(), /*add_special=*/true);
      }
      r.max_new_tokens = j.value("max_new_tokens", r.max_new_tokens);
      r.sampling.temperature = j.value("temperature", r.sampling.temperature);
      r.sampling.top_k = j.value("top_k", r.sampling.top_k);
      r.sampling.top_p = j.value("top_p", r.sampling.top_p);
      r.sampling.seed = j.value("seed", r.sampling.seed);
      r.ignore_eos = j.value("ignore_eos", r.ignore_eos);
      if (j.contains("stop"))
        rr.stop = j["stop"].is_string() ? std::vector<std::string>{j["stop"].get<std::string>()}
                                        : j["stop"].get<std::vector<std::string>>();
      AFD_REQUIRE(rr.stop.empty() || tk.has_value(), where, ": \"stop\" needs the model's tokenizer.json");
    } catch (const json::exception& e) {
      fail(where, ": a field has the wrong type (", e.what(), ")");
    }
    out.push_back(std::move(rr));
  }
  AFD_REQUIRE(!out.empty(), o.requests_file, ": no requests");
  return out;
}

}  // namespace

int run_engine_generate(const RunOptions& o) {
  AFD_REQUIRE(o.engine == "afd", "--engine ", o.engine, " is not available (afd, reference)");
  validate(o.sampling);
  const auto t0 = Clock::now();
  RuntimeOptions ro = o.runtime;
  ro.show_progress = !o.json;
  ro.trace = !o.trace_file.empty();
  const std::optional<tok::Tokenizer> tk = o.synthetic ? std::nullopt : find_tokenizer(o.model);
  AFD_REQUIRE(o.stop.empty() || tk.has_value(), "--stop needs the model's tokenizer.json, which ",
              o.source().label(), " does not have");
  std::unique_ptr<engine::Engine> eng = make_engine(o.source(), ro);
  const ModelConfig& cfg = eng->config();
  const auto t1 = Clock::now();

  std::vector<RunRequest> reqs;
  if (!o.requests_file.empty()) {
    reqs = read_requests(o, tk);
  } else if (o.prompt_ids.size() > 1) {
    for (const auto& s : o.prompt_ids) {
      reqs.push_back(base_request(o));
      reqs.back().gen.prompt = parse_id_list(s, "--prompt-ids");
    }
  } else {
    reqs.push_back(base_request(o));
    reqs.back().gen.prompt = prompt_ids(o, cfg, tk);
  }
  const bool dump = !o.dump_logits.empty();
  AFD_REQUIRE(!dump || reqs.size() == 1, "--dump-logits takes one request");
  if (dump) reqs[0].gen.all_logits = true;

  // One request streams its text (or ids) as it is produced; several are printed when done.
  const bool stream = reqs.size() == 1 && !o.json;
  if (stream && tk && !o.chat && o.prompt_ids.empty())
    std::fputs(tk->decode(reqs[0].gen.prompt, true).c_str(), stdout);
  std::vector<RunOutput> outs(reqs.size());
  std::map<int64_t, size_t> index;  // request id -> position in reqs
  auto emit = [&](RunOutput& out, const std::string& piece) {
    out.str += piece;
    if (stream) {
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
    }
  };
  auto on_token = [&](int64_t id, int32_t t, engine::FinishReason) {
    RunOutput& out = outs[index.at(id)];
    if (t < 0 || out.stopped()) return;
    out.ids.push_back(t);
    if (!out.text) return emit(out, (out.ids.size() > 1 ? " " : "") + std::to_string(t));
    emit(out, out.text->push(t));
    if (out.stopped()) eng->cancel(id);  // takes effect before the next step: no token follows this one
  };
  std::vector<int64_t> ids;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (tk) outs[i].text.emplace(*tk, reqs[i].stop);
    ids.push_back(eng->submit(reqs[i].gen, on_token));
    index[ids.back()] = i;
  }
  eng->run_until_idle();
  const auto t2 = Clock::now();
  for (RunOutput& out : outs)
    if (out.text) emit(out, out.text->finish());

  std::map<int64_t, std::unique_ptr<engine::Sequence>> done;
  for (auto& s : eng->take_finished()) done[s->id] = std::move(s);
  int64_t generated = 0;
  for (const RunOutput& out : outs) generated += static_cast<int64_t>(out.ids.size());
  const double run_s = secs(t1, t2);
  for (size_t i = 0; i < ids.size(); ++i) {
    const engine::Sequence& s = *done.at(ids[i]);
    AFD_REQUIRE(s.finish != engine::FinishReason::kRejected && s.finish != engine::FinishReason::kFailed, "request ",
                i + 1, " was ", engine::finish_name(s.finish), ": ", s.error);
    const std::vector<int32_t>& out = outs[i].ids;
    AFD_CHECK(std::equal(out.begin(), out.end(), s.tokens.begin() + static_cast<long>(s.req.prompt.size()),
                         s.tokens.end()), "request ", i + 1, ": the streamed tokens differ from the sequence's");
    const std::string finish = outs[i].stopped() ? "stop" : engine::finish_name(s.finish);
    if (dump) {
      // Rows: every prompt position, then each fed decode token. Step k's logits chose generated token k.
      const int T = static_cast<int>(s.req.prompt.size()), V = cfg.vocab_size, N = static_cast<int>(out.size());
      const float* rows = s.logits.data();
      std::vector<float> steps(rows + static_cast<size_t>(T - 1) * V, rows + static_cast<size_t>(T - 1 + N) * V);
      st::write_file(o.dump_logits,
                     {{"prefill_logits", st::DType::F32, {T, V}, rows},
                      {"step_logits", st::DType::F32, {N, V}, steps.data()}},
                     {{"engine", o.engine}, {"model", o.source().label()}, {"ffn", eng->ffn().name()}});
    }
    if (o.json) {
      json j = {{"model", o.source().label()},           {"engine", o.engine},
                {"ffn", eng->ffn().name()},   {"attention", eng->attn().name()},
                {"prompt_ids", s.req.prompt}, {"output_ids", out},
                {"finish_reason", finish},
                {"load_s", secs(t0, t1)},     {"run_s", run_s},
                {"tokens_per_s", run_s > 0 ? static_cast<double>(generated) / run_s : 0.0},
                {"overlap", eng->totals().overlap()}};
      if (tk) j["text"] = outs[i].str;
      std::cout << j.dump() << std::endl;
    } else if (!stream) {
      std::printf("[%zu] %s\n", i + 1, tk ? outs[i].str.c_str() : json(out).dump().c_str());
    }
  }
  if (stream) std::printf("\n");
  std::fflush(stdout);  // everything on stdout before the summary on stderr
  if (!o.json)
    std::fprintf(stderr, "afd-run: %s | %s | %zu requests, %lld tokens in %.3f s, %.1f tok/s\n",
                 eng->attn().name().c_str(), eng->ffn().name().c_str(), reqs.size(),
                 static_cast<long long>(generated), run_s, run_s > 0 ? generated / run_s : 0.0);
  if (o.stats) std::fprintf(stderr, "afd-run: %s\n", eng->totals().summary().c_str());
  if (!o.trace_file.empty()) engine::write_chrome_trace(o.trace_file, eng->traced_steps());
  return 0;
}

}  // namespace afd::app
