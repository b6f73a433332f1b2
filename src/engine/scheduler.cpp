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
  auto done = [](const std::unique_ptr<Sequence>& s) { return s->finish != FinishReason::kNone && !s->in_flight; };
  for (auto& s : running_)
    if (done(s)) {
      kv_.close(s->slot);
      s->slot = -1;
      s->lane = -1;
      finished.push_back(std::move(s));
    }
  std::erase_if(running_, [](const auto& s) { return !s; });
  for (auto& s : waiting_)
    if (done(s)) finished.push_back(std::move(s));
  std::erase_if(waiting_, [](const auto& s) { return !s; });
}

void Scheduler::fail_in_flight(const std::string& why, std::vector<std::unique_ptr<Sequence>>& finished) {
  for (auto& s : running_)
    if (s->in_flight) {
      s->in_flight = false;
      s->finish = FinishReason::kFailed;
      s->error = why;
    }
  retire(finished);
}

int Scheduler::lane_budget() const { return std::max(1, opt_.max_step_tokens / std::max(1, opt_.lanes)); }

double Scheduler::step_cost(const Sequence& s) const {
  const int n = s.prefilling() ? std::min(static_cast<int>(s.req.prompt.size()) - s.cached, lane_budget()) : 1;
  return n * (1.0 + (s.cached + n) / 512.0);
}

std::vector<double> Scheduler::lane_loads() const {
  std::vector<double> load(std::max(1, opt_.lanes), 0.0);
  for (const auto& s : running_)
    if (s->finish == FinishReason::kNone) load[s->lane] += step_cost(*s);
  return load;
}

void Scheduler::admit(std::vector<std::unique_ptr<Sequence>>& finished) {
  const int64_t pool_positions = kv_.total_blocks() * kv_.block_size();
  std::vector<double> load = lane_loads();
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
    s.lane = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[s.lane] += step_cost(s);
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

std::vector<StepItem> Scheduler::plan(int lane, std::vector<std::unique_ptr<Sequence>>& finished) {
  AFD_CHECK(lane >= 0 && lane < std::max(1, opt_.lanes));
  retire(finished);
  admit(finished);
  // Decode tokens first (one each, never starved), then prefill chunks in admission order fill the lane's budget.
  // Prefill never starves either: a lane holding more decoding sequences than its budget (lanes are balanced by
  // cost, not count) still gives its prefills a quarter of its budget, within max_step_tokens (the per-call
  // capacity; decodes < max_batch <= max_step_tokens while any sequence prefills, so there is room for one token).
  std::vector<StepItem> items;
  const int share = lane_budget();
  int decodes = 0;
  for (auto& s : running_)
    if (s->lane == lane && !s->in_flight && s->finish == FinishReason::kNone && !s->prefilling()) {
      items.push_back({s.get(), 1, true});
      ++decodes;
    }
  int budget = std::max(share - decodes, std::min(opt_.max_step_tokens - decodes, std::max(1, share / 4)));
  for (auto& s : running_) {
    if (s->lane != lane || s->in_flight || s->finish != FinishReason::kNone || !s->prefilling() || budget <= 0)
      continue;
    const int left = static_cast<int>(s->req.prompt.size()) - s->cached;
    const int n = std::min(left, budget);
    budget -= n;
    items.push_back({s.get(), n, n == left && !s->req.score_only && s->req.max_new_tokens > 0});
  }
  for (const StepItem& it : items) it.seq->in_flight = true;
  return items;
}

void Scheduler::collect(int lane, const std::vector<StepItem>& items,
                        std::vector<std::unique_ptr<Sequence>>& finished) {
  for (const StepItem& it : items) it.seq->in_flight = false;
  retire(finished);
  rebalance(lane);
}

// Moves sequences of `lane` (none in flight: its step was just collected) to the lightest lane while that narrows the
// gap: a sequence of cost c moved across a gap d leaves a gap |d - 2c| < d exactly when c < d.
void Scheduler::rebalance(int lane) {
  if (opt_.lanes <= 1) return;
  std::vector<double> load = lane_loads();
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
    Sequence& s = **it;
    if (s.lane != lane || s.in_flight || s.finish != FinishReason::kNone) continue;
    const int to = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    const double c = step_cost(s);
    if (to == lane || c >= load[lane] - load[to]) continue;
    load[lane] -= c;
    load[to] += c;
    s.lane = to;
  }
}

}  // namespace afd::engine
