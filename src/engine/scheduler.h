// Continuous batching: requests join and leave between steps; each step mixes chunked prefill with decode.
//
// Admission is FCFS and bounded by max_batch running sequences and by KV blocks: a request is admitted only when
// its whole footprint (prompt + max_new_tokens positions) can be reserved, so a running sequence never runs out of
// KV mid-generation (no preemption needed). A request that could never fit the pool is rejected with a reason.
// A synthetic_context request gets its KV filled at admission and starts with cached = prompt_len - 1.
//
// Lanes: the running sequences are split into `lanes` groups (the pipeline's micro-batches), each planned and run
// on its own (plan(lane)). An admitted sequence joins the lane with the least work; a lane whose step has ended
// hands sequences to lighter lanes (rebalance) so that lanes stay even as sequences finish. A sequence in a step
// (in_flight) is never retired, moved or planned again until that step is collected.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/sequence.h"
#include "iface/attn_backend.h"

namespace afd::engine {

struct SchedulerOptions {
  int max_batch = 64;           // running sequences at most
  int max_step_tokens = 512;    // tokens per step (decode tokens count 1 each; prefill chunks fill the rest)
  int max_context = 0;          // positions a sequence may reach (the model's max_position_embeddings)
  int lanes = 1;                // micro-batches; each lane's step gets max_step_tokens / lanes (at least 1)
};

// One step's work for one sequence: tokens[first .. first+count) at positions first.. (first == seq->cached).
struct StepItem {
  Sequence* seq;
  int count;
  bool sample;  // the step ends at the last prompt token or a decode token: a next token is sampled
};

// Fills positions [0, len) of a KV slot with synthetic values (AttnBackend::fill_synthetic); throws afd::Error when
// the backend cannot.
using SyntheticKvFill = std::function<void(int slot, int len, uint64_t seed)>;

class Scheduler {
 public:
  // `fill` serves GenRequest::synthetic_context; without one such requests are rejected.
  Scheduler(KvManager& kv, const SchedulerOptions& opt, SyntheticKvFill fill = {})
      : kv_(kv), opt_(opt), fill_(std::move(fill)) {}

  void add(std::unique_ptr<Sequence> s);
  // Admits what fits, then plans the next step of `lane` (empty when it has nothing to run) and marks its sequences
  // in flight. Rejected requests are finished here.
  std::vector<StepItem> plan(int lane, std::vector<std::unique_ptr<Sequence>>& finished);
  // After a step: its sequences are no longer in flight; frees finished sequences' KV, moves them out, and evens out
  // the lanes with the sequences of the lane that ran.
  void collect(int lane, const std::vector<StepItem>& items, std::vector<std::unique_ptr<Sequence>>& finished);
  // After a failed step: every sequence in flight ends failed with `why`, is freed and moved out.
  void fail_in_flight(const std::string& why, std::vector<std::unique_ptr<Sequence>>& finished);
  // Frees the KV of finished sequences that are not in flight and moves them out.
  void retire(std::vector<std::unique_ptr<Sequence>>& finished);
  bool cancel(int64_t id);  // marks a waiting or running request cancelled; it leaves at the next plan/retire

  size_t waiting() const { return waiting_.size(); }
  size_t running() const { return running_.size(); }

 private:
  void admit(std::vector<std::unique_ptr<Sequence>>& finished);
  int lane_budget() const;
  double step_cost(const Sequence& s) const;
  std::vector<double> lane_loads() const;
  void rebalance(int lane);

  KvManager& kv_;
  SchedulerOptions opt_;
  SyntheticKvFill fill_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;
};

}  // namespace afd::engine
