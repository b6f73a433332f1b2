#include "model/perplexity.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace afd {

double token_nll(const float* logits, int vocab, int32_t target) {
  const float mx = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  return std::log(sum) + mx - logits[target];
}

PerplexityResult perplexity(const std::vector<int32_t>& ids, int window, int max_windows, int vocab, int group,
                            const WindowLogitsFn& window_logits, const std::function<void(int, int)>& on_window) {
  AFD_CHECK(group >= 1);
  AFD_REQUIRE(window >= 2, "perplexity window ", window, " must be at least 2 tokens");
  AFD_REQUIRE(max_windows >= 1, "perplexity needs at least one window");
  const int64_t total = static_cast<int64_t>(ids.size());
  int64_t available = total / window + (total % window >= 2 ? 1 : 0);
  const int windows = static_cast<int>(std::min<int64_t>(available, max_windows));
  AFD_REQUIRE(windows >= 1, "the text has ", total, " tokens: too few for one perplexity window");
  PerplexityResult r;
  for (int first = 0; first < windows; first += group) {
    std::vector<Window> batch;
    for (int w = first; w < std::min(windows, first + group); ++w) {
      const int64_t start = static_cast<int64_t>(w) * window;
      batch.push_back({ids.data() + start, static_cast<int>(std::min<int64_t>(window, total - start))});
    }
    const std::vector<std::vector<float>> logits = window_logits(batch);
    AFD_CHECK(logits.size() == batch.size());
    for (size_t b = 0; b < batch.size(); ++b) {
      const int len = batch[b].len;
      AFD_CHECK(logits[b].size() == static_cast<size_t>(len) * vocab);
      for (int t = 0; t + 1 < len; ++t)
        r.nll_sum += token_nll(&logits[b][static_cast<size_t>(t) * vocab], vocab, batch[b].ids[t + 1]);
      r.predicted_tokens += len - 1;
      r.windows += 1;
      if (on_window) on_window(r.windows, windows);
    }
  }
  r.perplexity = std::exp(r.nll_sum / static_cast<double>(r.predicted_tokens));
  return r;
}

}  // namespace afd
