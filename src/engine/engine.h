// The AFD engine: an attention backend and an FFN backend joined by the micro-batch pipeline, fed by the
// continuous-batching scheduler. Thread-safe submit/cancel; step() runs on one driver thread.
//
// A step is a round of the pipeline's lanes: every lane with work runs one step of its sequences (decode: one token
// each). Rounds are not separated by a barrier: a lane that finishes early starts its next step at once (inside the
// same step() call), so the last lane's final layers overlap the first layers of the next round; step() returns
// when every lane has finished its step of this round. Statistics of a round cover the wall time since the previous
// round ended (or since step() was called, when nothing was running).
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/pipeline.h"
#include "engine/scheduler.h"
#include "engine/step_stats.h"
#include "iface/attn_backend.h"
#include "iface/ffn_backend.h"

namespace afd::engine {

struct EngineOptions {
  int micro_batches = 2;
  SchedulerOptions scheduler;
  bool trace = false;     // keep every step's spans (for write_chrome_trace)
  int trace_steps = 16;   // at most this many steps are kept
};

class Engine {
 public:
  // The backends may be shared by several engines in turn (e.g. a benchmark sweep that keeps the GPU weights placed);
  // an engine must have finished its requests before the next one uses the same KV pool.
  Engine(std::shared_ptr<AttnBackend> attn, std::shared_ptr<FfnBackend> ffn, const EngineOptions& opt);
  ~Engine();

  const ModelConfig& config() const { return attn_->config(); }
  AttnBackend& attn() { return *attn_; }
  FfnBackend& ffn() { return *ffn_; }

  // Queues a request; returns its id. Validates it (ids in the vocabulary, sampling parameters) and throws
  // afd::Error naming the problem. Safe from any thread.
  int64_t submit(GenRequest r, TokenCallback cb = {});
  void cancel(int64_t id);  // safe from any thread; takes effect at the next step

  // One round (admit, plan each lane, run the pipeline, deliver tokens). Returns false when there was nothing to do.
  bool step();
  void run_until_idle();
  bool idle();

  // Finished sequences (tokens, finish reason, logits when asked), in the order they finished; moved out.
  std::vector<std::unique_ptr<Sequence>> take_finished();

  // Scheduler queue sizes; read them on the thread that runs step().
  size_t waiting() const { return sched_.waiting(); }
  size_t running() const { return sched_.running(); }

  const StatsTotals& totals() const { return totals_; }
  const StepStats& last_step() const { return last_; }
  const std::vector<StepStats>& traced_steps() const { return traced_; }

 private:
  void finish(std::unique_ptr<Sequence> s);
  void take_incoming();
  void finish_all(std::vector<std::unique_ptr<Sequence>>& done);
  void start_idle_lanes(int64_t round);
  void collect_lane(int lane, StepStats& st);
  bool round_running() const;  // a lane of the current round is still in flight

  std::shared_ptr<AttnBackend> attn_;
  std::shared_ptr<FfnBackend> ffn_;
  EngineOptions opt_;
  Scheduler sched_;
  Pipeline pipe_;
  std::mutex in_mu_;
  std::deque<std::unique_ptr<Sequence>> incoming_;
  std::vector<int64_t> cancels_;
  std::atomic<int64_t> next_id_{1};
  std::vector<std::unique_ptr<Sequence>> finished_;
  std::vector<int64_t> lane_round_;  // the round of each lane's step in flight
  int64_t round_ = 0;
  Clock::time_point round_end_;      // when the previous round ended
  StatsTotals totals_;
  StepStats last_;
  std::vector<StepStats> traced_;
  int64_t steps_ = 0;
};

}  // namespace afd::engine
