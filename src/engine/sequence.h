// A generation request and the engine's state for it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/sampler.h"

namespace afd::engine {

struct GenRequest {
  std::vector<int32_t> prompt;       // token ids, at least one
  SamplingParams sampling;
  int max_new_tokens = 16;
  bool ignore_eos = false;
  bool all_logits = false;           // keep f32 logits of every prompt position and every step (tests, dumps)
  bool score_only = false;           // run the prompt, sample nothing (perplexity); implies all_logits
  // Benchmark facility: at admission the KV cache of prompt positions [0, prompt_len - 1) is filled with random
  // values (AttnBackend::fill_synthetic) instead of being computed, and only the last prompt token runs through the
  // model. The text is meaningless; what follows costs exactly what it costs after a real prefill of the prompt
  // (same KV lengths, same blocks). With all_logits, rows start at the last prompt position. Not with score_only.
  bool synthetic_context = false;
};

// kRejected: the scheduler could not run the request (it can never fit); kFailed: a backend failed while it ran
// (e.g. a remote FFN side went away) — trying again later may succeed.
enum class FinishReason { kNone, kLength, kEos, kCancelled, kRejected, kFailed };
const char* finish_name(FinishReason r);

// Called on the engine's thread for each generated token; `finished` is set with the last one (and alone, with
// token -1, when a request ends without a new token: cancelled, rejected, or a score_only request).
using TokenCallback = std::function<void(int64_t request_id, int32_t token, FinishReason finished)>;

struct Sequence {
  int64_t id = 0;
  GenRequest req;
  TokenCallback on_token;
  int slot = -1;                     // KV slot while admitted
  int lane = -1;                     // the pipeline lane (micro-batch) it runs in while admitted
  bool in_flight = false;            // part of a lane's step that has not been collected yet
  int cached = 0;                    // positions in the KV cache
  std::vector<int32_t> tokens;       // prompt, then generated tokens; tokens[cached..] are not yet cached
  int generated = 0;
  FinishReason finish = FinishReason::kNone;
  std::string error;                 // why a request was rejected
  std::vector<float> logits;         // all_logits: [prompt_len + generated, vocab] rows, in order
  bool prefilling() const { return cached < static_cast<int>(req.prompt.size()); }
};

}  // namespace afd::engine
