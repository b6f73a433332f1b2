#include "engine/pipeline.h"

#include <algorithm>

#include "util/error.h"

namespace afd::engine {

Pipeline::Pipeline(AttnBackend& attn, FfnBackend& ffn, int lanes)
    : attn_(attn), ffn_(ffn), layers_(attn.config().num_layers) {
  AFD_REQUIRE(lanes >= 1 && lanes <= 16, "micro_batches = ", lanes, " must be in 1..16");
  lanes_.resize(lanes);
  ffn_thread_ = std::thread([this] { ffn_loop(); });
}

Pipeline::~Pipeline() {
  {
    std::lock_guard<std::mutex> l(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  ffn_thread_.join();
  for (auto& m : lanes_)
    if (m.x) ffn_.free_host(m.x);
}

bool Pipeline::any_in_flight() const {
  return std::any_of(lanes_.begin(), lanes_.end(), [](const Lane& l) { return l.in_flight; });
}

void Pipeline::span(SpanKind k, int lane, int layer, Clock::time_point b) {
  const auto e = Clock::now();
  std::lock_guard<std::mutex> l(span_mu_);
  const double d = std::chrono::duration<double>(e - b).count();
  if (k == SpanKind::kFfn || k == SpanKind::kHead)
    busy_.ffn_s += d;
  else
    busy_.attn_s += d;
  if (keep_spans_) busy_.spans.push_back({k, lane, layer, b, e});
}

void Pipeline::take_busy(StepStats& into) {
  std::lock_guard<std::mutex> l(span_mu_);
  into.attn_s += busy_.attn_s;
  into.ffn_s += busy_.ffn_s;
  into.xfer_s += busy_.xfer_s;
  add_gpu_busy(into.gpu_busy_s, busy_.gpu_busy_s);
  into.spans.insert(into.spans.end(), busy_.spans.begin(), busy_.spans.end());
  busy_ = StepStats{};
}

void Pipeline::start(int lane, std::vector<StepItem> items) {
  Lane& ln = lanes_.at(lane);
  AFD_CHECK(!ln.in_flight && !items.empty());
  ln.items = std::move(items);
  ln.sampled.assign(ln.items.size(), -1);
  ln.ids.clear();
  ln.slot.clear();
  ln.cached.clear();
  ln.start.assign(1, 0);
  for (const StepItem& it : ln.items) {
    const Sequence& s = *it.seq;
    ln.ids.insert(ln.ids.end(), s.tokens.begin() + s.cached, s.tokens.begin() + s.cached + it.count);
    ln.slot.push_back(s.slot);
    ln.cached.push_back(s.cached);
    ln.start.push_back(static_cast<int32_t>(ln.ids.size()));
  }
  const size_t need = ln.ids.size() * static_cast<size_t>(attn_.config().hidden_size);
  if (ln.x_cap < need) {  // grow-only: after the largest step no allocation happens here again
    if (ln.x) ffn_.free_host(ln.x);
    ln.x = nullptr;
    ln.x_cap = 0;
    ln.x = static_cast<uint16_t*>(ffn_.alloc_host(need * sizeof(uint16_t)));
    ln.x_cap = need;
  }
  const auto b = Clock::now();
  attn_.embed(ln.ids.data(), static_cast<int>(ln.ids.size()), ln.x);
  span(SpanKind::kEmbed, lane, 0, b);
  ln.in_flight = true;
  std::lock_guard<std::mutex> l(mu_);
  attn_q_.push_back({lane, 0});
}

// After a failure on either side: waits for the FFN thread to put down what it is doing, empties both queues and
// marks every lane idle. Returns the FFN side's error, if it was that side's.
std::exception_ptr Pipeline::drain_after_error() {
  std::exception_ptr e;
  {
    std::unique_lock<std::mutex> lk(mu_);
    abort_ = true;
    cv_.wait(lk, [&] { return !ffn_running_; });
    e = ffn_error_;
    ffn_error_ = nullptr;
    attn_q_.clear();
    ffn_q_.clear();
    abort_ = false;
  }
  for (Lane& l : lanes_) l.in_flight = false;
  return e;
}

int Pipeline::run_until_lane_done() {
  AFD_CHECK(any_in_flight());
  for (;;) {
    Work w;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return !attn_q_.empty() || ffn_error_; });
      if (ffn_error_) {
        lk.unlock();
        std::rethrow_exception(drain_after_error());
      }
      w = attn_q_.front();
      attn_q_.pop_front();
    }
    Lane& ln = lanes_[w.lane];
    if (w.layer == layers_) {
      ln.in_flight = false;
      return w.lane;
    }
    try {
      const auto b = Clock::now();
      attn_.attn_half(w.layer, ln.batch(), ln.x);
      span(SpanKind::kAttn, w.lane, w.layer, b);
    } catch (...) {
      drain_after_error();
      throw;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      ffn_q_.push_back(w);
    }
    cv_.notify_all();
  }
}

void Pipeline::ffn_loop() {
  for (;;) {
    Work w;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return quit_ || (!abort_ && !ffn_error_ && !ffn_q_.empty()); });
      if (quit_) return;
      w = ffn_q_.front();
      ffn_q_.pop_front();
      ffn_running_ = true;
    }
    std::exception_ptr error;
    try {
      Lane& ln = lanes_[w.lane];
      const auto b = Clock::now();
      ffn_.ffn_half(w.layer, ln.x, static_cast<int>(ln.ids.size()));
      span(SpanKind::kFfn, w.lane, w.layer, b);
      {
        std::lock_guard<std::mutex> lk(span_mu_);
        busy_.xfer_s += ffn_.last_transfer_seconds();
        add_gpu_busy(busy_.gpu_busy_s, ffn_.last_device_busy_seconds());
      }
      if (w.layer == layers_ - 1) {
        const auto hb = Clock::now();
        head(ln);
        span(SpanKind::kHead, w.lane, w.layer, hb);
      }
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      ffn_running_ = false;
      if (error)
        ffn_error_ = error;
      else if (!abort_)
        attn_q_.push_back({w.lane, w.layer + 1});  // layer + 1 == layers_: the lane's step has finished
    }
    cv_.notify_all();
  }
}

// Final norm + LM head of a lane: logits rows for all_logits requests, a sampled token for each item that asks for
// one (the last row of its tokens).
void Pipeline::head(Lane& ln) {
  const int h = ffn_.config().hidden_size, V = ffn_.config().vocab_size;
  ln.rows.clear();
  ln.params.clear();
  ln.steps.clear();
  ln.out_item.clear();
  for (size_t j = 0; j < ln.items.size(); ++j) {
    const StepItem& it = ln.items[j];
    Sequence& s = *it.seq;
    const uint16_t* first = ln.x + static_cast<size_t>(ln.start[j]) * h;
    if (s.req.all_logits || s.req.score_only) {
      const size_t old = s.logits.size();
      s.logits.resize(old + static_cast<size_t>(it.count) * V);
      ffn_.logits(first, it.count, s.logits.data() + old);
    }
    if (!it.sample) continue;
    const uint16_t* last = first + static_cast<size_t>(it.count - 1) * h;
    ln.rows.insert(ln.rows.end(), last, last + h);
    ln.params.push_back(s.req.sampling);
    ln.steps.push_back(static_cast<uint64_t>(s.generated));
    ln.out_item.push_back(static_cast<int>(j));
  }
  if (ln.out_item.empty()) return;
  ln.out_ids.resize(ln.out_item.size());
  ffn_.sample(ln.rows.data(), static_cast<int>(ln.out_item.size()), ln.params.data(), ln.steps.data(),
              ln.out_ids.data());
  for (size_t r = 0; r < ln.out_item.size(); ++r) ln.sampled[ln.out_item[r]] = ln.out_ids[r];
}

}  // namespace afd::engine
