// The ping-pong micro-batch pipeline. The running sequences are split into M lanes (micro-batches); each lane runs
// its own steps (embed, every layer, head and sampling). The attention side (the calling thread, which drives the
// attention backend's worker pool) and the FFN side (one driver thread owned here) each take their lanes' work in
// the order it became ready, waiting only on the dependency edges
//     attn(lane, l) after ffn(lane, l - 1)        ffn(lane, l) after attn(lane, l)
// so that the attention of one lane overlaps the FFN of another. Lanes are not joined at step boundaries: a lane
// whose step has finished starts its next one (start()) while the others are still in their last layers, so the
// last layer's FFN and the LM head of one lane overlap the next step's first layers of another. With M = 1 the two
// sides strictly alternate.
//
// Invariants: a lane is idle or in flight; an in-flight lane is in exactly one place (queued for the attention
// side, in attention, queued for the FFN side, in FFN or head, or finished and waiting to be collected by
// run_until_lane_done()). Each side's queue is first-in first-out, so no lane gets more than one layer ahead of
// another that is ready.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
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
  Pipeline(AttnBackend& attn, FfnBackend& ffn, int lanes);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  int lanes() const { return static_cast<int>(lanes_.size()); }
  bool in_flight(int lane) const { return lanes_[lane].in_flight; }
  bool any_in_flight() const;

  // Attention side: starts a step of an idle lane over `items` (non-empty; the sequences stay unchanged until the
  // step is collected): embeds its tokens and queues its first layer.
  void start(int lane, std::vector<StepItem> items);
  // Attention side: runs queued attention work until some lane's step has finished (its FFN side has run the head
  // and sampled), and returns that lane, now idle. Requires any_in_flight(). Throws what either side threw; then every
  // lane is idle and both queues are empty.
  int run_until_lane_done();

  // Attention side, after a failure outside run_until_lane_done(): waits for the FFN side to finish what it is
  // doing, drops all queued work and marks every lane idle.
  void abort() { drain_after_error(); }

  // The last step of `lane`: its items and, for items with `sample`, the sampled token (else -1).
  const std::vector<StepItem>& items(int lane) const { return lanes_[lane].items; }
  const std::vector<int32_t>& sampled(int lane) const { return lanes_[lane].sampled; }

  // Busy time of each side, transfers, per-GPU busy time and (with keep_spans) spans since the last call, added
  // into `into`.
  void take_busy(StepStats& into);
  void set_keep_spans(bool keep) {
    std::lock_guard<std::mutex> l(span_mu_);
    keep_spans_ = keep;
  }

 private:
  struct Lane {
    std::vector<StepItem> items;
    std::vector<int32_t> ids, slot, start, cached;
    uint16_t* x = nullptr;  // [tokens, hidden] bf16 residual stream, from ffn.alloc_host
    size_t x_cap = 0;       // elements x holds
    std::vector<uint16_t> rows;  // gathered rows to sample
    std::vector<SamplingParams> params;
    std::vector<uint64_t> steps;
    std::vector<int32_t> out_ids;
    std::vector<int> out_item;
    std::vector<int32_t> sampled;
    bool in_flight = false;
    AttnBatch batch() const {
      return {static_cast<int>(ids.size()), static_cast<int>(slot.size()), slot.data(), start.data(), cached.data()};
    }
  };
  struct Work {
    int lane, layer;  // layer == num_layers on the attention queue: the lane's step has finished
  };
  void ffn_loop();
  void head(Lane& lane);
  void span(SpanKind k, int lane, int layer, Clock::time_point b);
  std::exception_ptr drain_after_error();

  AttnBackend& attn_;
  FfnBackend& ffn_;
  std::vector<Lane> lanes_;
  int layers_;

  // Shared between the two threads, under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Work> attn_q_, ffn_q_;
  bool ffn_running_ = false;  // the FFN thread is executing a Work it popped
  bool quit_ = false, abort_ = false;
  std::exception_ptr ffn_error_;
  std::thread ffn_thread_;

  std::mutex span_mu_;  // guards busy_ and keep_spans_
  StepStats busy_;      // accumulated since take_busy()
  bool keep_spans_ = false;
};

}  // namespace afd::engine
