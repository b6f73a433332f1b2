#include "engine/scheduler.h"

#include <algorithm>

#include "util/error.h"
#include "util/numeric.h"

namespace afd::engine {

const char* finish_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kLength: return "length";
    case FinishReason::kEos: return "eos";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kRejected: return "rejected";
    case FinishReason::kFailed: return "failed";
  }
  return "?";
}

void Scheduler::add(std::unique_ptr<Sequence> s) { waiting_.push_back(std::move(s)); }

bool Scheduler::cancel(int64_t id) {
  for (auto& s : waiting_)
    if (s->id == id && s->finish == FinishReason::kNone) return (s->finish = FinishReason::kCancelled, true);
  for (auto& s : running_)
    if (s->id == id && s->finish == FinishReason::kNone) return (s->finish = FinishReason::kCancelled, true);
  return false;
}

void Scheduler::retire(std::vector<std::unique_ptr<Sequence>>& finished) {
  auto done = [](const std::unique_ptr<Sequence>& s) { return s->finish != FinishReason::kNone; };
  for (auto& s : running_)
    if (done(s)) {
      kv_.close(s->slot);
      s->slot = -1;
      finished.push_back(std::move(s));
    }
  std::erase_if(running_, [](const auto& s) { return !s; });
  for (auto& s : waiting_)
    if (done(s)) finished.push_back(std::move(s));
  std::erase_if(waiting_, [](const auto& s) { return !s; });
}

std::vector<StepItem> Scheduler::plan(std::vector<std::unique_ptr<Sequence>>& finished) {
  retire(finished);
  const int64_t pool_positions = kv_.total_blocks() * kv_.block_size();
  while (!waiting_.empty() && static_cast<int>(running_.size()) < opt_.max_batch) {
    Sequence& s = *waiting_.front();
    const int footprint = static_cast<int>(s.req.prompt.size()) + (s.req.score_only ? 0 : s.req.max_new_tokens);
    if (footprint > opt_.max_context || footprint > pool_positions) {
      s.finish = FinishReason::kRejected;
      s.error = footprint > opt_.max_context
                    ? "prompt + max_new_tokens = " + std::to_string(footprint) +
                          " positions exceed the model's context of " + std::to_string(opt_.max_context)
                    : "prompt + max_new_tokens = " + std::to_string(footprint) +
                          " positions exceed the whole KV pool (" + std::to_string(pool_positions) + ")";
      finished.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
      continue;
    }
    const int slot = kv_.open();
    if (!kv_.reserve(slot, footprint)) {  // not now: wait for running sequences to free blocks
      kv_.close(slot);
      break;
    }
    const int prompt_len = static_cast<int>(s.req.prompt.size());
    if (s.req.synthetic_context && prompt_len > 1) {
      try {
        if (!fill_) fail("this engine cannot fill a KV cache with synthetic values");
        fill_(slot, prompt_len - 1, splitmix64(static_cast<uint64_t>(s.id)));
      } catch (const Error& e) {  // the backend cannot: the request can never run here
        kv_.close(slot);
        s.finish = FinishReason::kRejected;
        s.error = std::string("synthetic_context: ") + e.what();
        finished.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
        continue;
      }
      s.cached = prompt_len - 1;
    }
    s.slot = slot;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  // Decode tokens first (one each, never starved), then prefill chunks in admission order fill the budget.
  std::vector<StepItem> items;
  int budget = opt_.max_step_tokens;
  for (auto& s : running_)
    if (!s->prefilling() && budget > 0) {
      items.push_back({s.get(), 1, true});
      --budget;
    }
  for (auto& s : running_) {
    if (!s->prefilling() || budget <= 0) continue;
    const int left = static_cast<int>(s->req.prompt.size()) - s->cached;
    const int n = std::min(left, budget);
    budget -= n;
    items.push_back({s.get(), n, n == left && !s->req.score_only && s->req.max_new_tokens > 0});
  }
  return items;
}

}  // namespace afd::engine
