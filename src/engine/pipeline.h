// The ping-pong micro-batch pipeline: one step's tokens are cut into M micro-batches; the attention side (the
// calling thread, which drives the attention backend's worker pool) and the FFN side (one driver thread owned
// here) walk the layers, each waiting only on the dependency edges
//     attn(mb, l) after ffn(mb, l - 1)        ffn(mb, l) after attn(mb, l)
// so that attention of one micro-batch overlaps the FFN of another. With M = 1 the two sides strictly alternate.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/scheduler.h"
#include "engine/step_stats.h"
#include "iface/attn_backend.h"
#include "iface/ffn_backend.h"

namespace afd::engine {

class Pipeline {
 public:
  Pipeline(AttnBackend& attn, FfnBackend& ffn, int micro_batches);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Runs one step. For items with `sample`, sampled[i] receives the next token (else -1). Items whose request
  // wants all logits get their rows appended to seq->logits. Throws what either side threw.
  StepStats run(const std::vector<StepItem>& items, std::vector<int32_t>& sampled, bool keep_spans);

  int micro_batches() const { return max_mb_; }

 private:
  struct MicroBatch;
  void split(const std::vector<StepItem>& items);
  void ffn_loop();
  void ffn_step();
  void head(MicroBatch& mb);
  void span(SpanKind k, int mb, int layer, Clock::time_point b);

  AttnBackend& attn_;
  FfnBackend& ffn_;
  int max_mb_;
  std::vector<MicroBatch> mbs_;
  int active_ = 0;  // micro-batches in use this step

  // Shared between the two threads, under mu_: layers done per micro-batch on each side.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> attn_done_, ffn_done_;
  bool step_pending_ = false, ffn_finished_ = false, quit_ = false, abort_ = false;
  std::exception_ptr ffn_error_;
  std::thread ffn_thread_;

  std::mutex span_mu_;
  StepStats* stats_ = nullptr;
  bool keep_spans_ = false;
  std::vector<int32_t>* sampled_ = nullptr;
  const std::vector<StepItem>* current_items_ = nullptr;
};

}  // namespace afd::engine
