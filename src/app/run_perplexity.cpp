// afd-run's perplexity job (models/pystdlib-moe/ppl_ref.json): ids = [BOS] + encode(text) (no other specials),
// windows of --ppl-window tokens, the first --ppl-windows of them, next-token NLL within each window. The AFD engine
// scores a group of windows as one batch (score-only requests); the reference engine runs them one by one.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/prompt.h"
#include "model/perplexity.h"
#include "model/reference.h"
#include "util/error.h"
#include "util/progress.h"

namespace afd::app {

namespace {
constexpr int kEngineGroup = 8;  // windows scored together by the AFD engine (bounds the logits kept in memory)

std::vector<int32_t> eval_ids(const RunOptions& o, const ModelConfig& cfg, const tok::Tokenizer& tk) {
  std::ifstream in(o.perplexity_file, std::ios::binary);
  AFD_REQUIRE(in.good(), o.perplexity_file, ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  const int bos = tk.bos_id() >= 0 ? tk.bos_id() : cfg.bos_token_id;
  AFD_REQUIRE(bos >= 0, o.model, ": neither the tokenizer nor config.json names a BOS token");
  std::vector<int32_t> ids{bos};
  tk.encode_into(ss.str(), /*add_special=*/false, ids);
  return ids;
}
}  // namespace

int run_perplexity(const RunOptions& o) {
  AFD_REQUIRE(o.engine == "reference" || o.engine == "afd", "--engine ", o.engine,
              " is not available (afd, reference)");
  AFD_REQUIRE(!o.synthetic, "--perplexity needs a trained checkpoint with a tokenizer, not a synthetic model");
  const std::optional<tok::Tokenizer> tk = find_tokenizer(o.model);
  AFD_REQUIRE(tk.has_value(), o.model, " has no tokenizer.json, which --perplexity needs");

  std::unique_ptr<ReferenceModel> ref;
  std::unique_ptr<engine::Engine> eng;
  if (o.engine == "reference") {
    ref = std::make_unique<ReferenceModel>(load_ref_weights(o.model, !o.json));
  } else {
    RuntimeOptions ro = o.runtime;
    ro.show_progress = !o.json;
    eng = make_engine(o.source(), ro);
  }
  const ModelConfig& cfg = ref ? ref->config() : eng->config();
  AFD_REQUIRE(o.ppl_window <= cfg.max_position_embeddings, "--ppl-window ", o.ppl_window,
              " exceeds the model's context of ", cfg.max_position_embeddings, " positions");
  const std::vector<int32_t> ids = eval_ids(o, cfg, *tk);

  WindowLogitsFn score;
  if (ref) {
    score = [&](const std::vector<Window>& ws) {
      std::vector<std::vector<float>> out;
      for (const Window& w : ws) {
        RefKvCache cache = ref->new_cache();
        out.push_back(ref->forward(w.ids, w.len, cache, /*all_logits=*/true));
      }
      return out;
    };
  } else {
    score = [&](const std::vector<Window>& ws) {
      std::vector<int64_t> order;
      for (const Window& w : ws) {
        engine::GenRequest r;
        r.prompt.assign(w.ids, w.ids + w.len);
        r.score_only = true;
        r.max_new_tokens = 0;
        order.push_back(eng->submit(std::move(r)));
      }
      eng->run_until_idle();
      std::map<int64_t, std::vector<float>> by_id;
      for (auto& s : eng->take_finished()) {
        AFD_REQUIRE(s->finish == engine::FinishReason::kLength, "a perplexity window was ",
                    engine::finish_name(s->finish), (s->error.empty() ? "" : ": " + s->error));
        by_id[s->id] = std::move(s->logits);
      }
      std::vector<std::vector<float>> out;
      for (int64_t id : order) out.push_back(std::move(by_id[id]));
      return out;
    };
  }
  Progress bar("perplexity", static_cast<uint64_t>(o.ppl_windows));
  const PerplexityResult r = perplexity(ids, o.ppl_window, o.ppl_windows, cfg.vocab_size, ref ? 1 : kEngineGroup,
                                        score, [&](int, int) { bar.add(1); });
  bar.finish();
  if (o.json) {
    nlohmann::json j{{"model", o.model},       {"engine", o.engine},      {"file", o.perplexity_file},
                     {"perplexity", r.perplexity}, {"predicted_tokens", r.predicted_tokens},
                     {"windows", r.windows},   {"window", o.ppl_window},  {"total_tokens", ids.size()}};
    if (eng) j["ffn"] = eng->ffn().name();
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("perplexity %.4f over %lld predicted tokens (%d windows of %d; %zu tokens in the file with BOS)\n",
                r.perplexity, static_cast<long long>(r.predicted_tokens), r.windows, o.ppl_window, ids.size());
  }
  if (eng && o.stats) std::fprintf(stderr, "afd-run: %s\n", eng->totals().summary().c_str());
  return 0;
}

}  // namespace afd::app
