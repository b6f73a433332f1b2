// Perplexity by the procedure of models/pystdlib-moe/ppl_ref.json: the token stream is cut into windows of
// `window` tokens starting at 0, window, 2*window, ... (the first `max_windows`; a last partial window of at least two
// tokens counts too); each window predicts its own tokens 1..len-1 from 0..len-2, with no context carried across
// windows; ppl = exp(sum of next-token NLL / count). Engine-agnostic: `window_logits` returns, for each window of
// a group of up to `group` windows, its [len, vocab] f32 logits run from an empty cache (an engine can batch them).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace afd {

struct PerplexityResult {
  double perplexity = 0;
  double nll_sum = 0;
  int64_t predicted_tokens = 0;
  int windows = 0;
};

struct Window {
  const int32_t* ids;
  int len;
};
using WindowLogitsFn = std::function<std::vector<std::vector<float>>(const std::vector<Window>& windows)>;

PerplexityResult perplexity(const std::vector<int32_t>& ids, int window, int max_windows, int vocab, int group,
                            const WindowLogitsFn& window_logits, const std::function<void(int, int)>& on_window = {});

// -log softmax(logits)[target], computed in double.
double token_nll(const float* logits, int vocab, int32_t target);

}  // namespace afd
