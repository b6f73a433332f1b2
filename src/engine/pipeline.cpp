#include "engine/pipeline.h"

#include <algorithm>

#include "util/error.h"

namespace afd::engine {

// One micro-batch: the sequences' tokens back to back, in the layout AttnBatch describes.
struct Pipeline::MicroBatch {
  std::vector<int> items;                       // indices into the step's items
  std::vector<int32_t> ids, slot, start, cached;
  uint16_t* x = nullptr;                        // [tokens, hidden] bf16 residual stream, from ffn.alloc_host
  size_t x_cap = 0;                             // elements x holds
  std::vector<uint16_t> rows;                   // gathered rows to sample
  std::vector<SamplingParams> params;
  std::vector<uint64_t> steps;
  std::vector<int32_t> out_ids;
  std::vector<int> out_item;
  double cost = 0;
  AttnBatch batch() const {
    return {static_cast<int>(ids.size()), static_cast<int>(slot.size()), slot.data(), start.data(), cached.data()};
  }
};

Pipeline::Pipeline(AttnBackend& attn, FfnBackend& ffn, int micro_batches)
    : attn_(attn), ffn_(ffn), max_mb_(micro_batches) {
  AFD_REQUIRE(micro_batches >= 1 && micro_batches <= 16, "micro_batches = ", micro_batches, " must be in 1..16");
  mbs_.resize(max_mb_);
  attn_done_.assign(max_mb_, 0);
  ffn_done_.assign(max_mb_, 0);
  ffn_thread_ = std::thread([this] { ffn_loop(); });
}

Pipeline::~Pipeline() {
  {
    std::lock_guard<std::mutex> l(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  ffn_thread_.join();
  for (auto& m : mbs_)
    if (m.x) ffn_.free_host(m.x);
}

// Longest-processing-time split: sequences (kept whole) go to the micro-batch with the least cost so far. The cost
// weighs both sides: tokens (FFN work) and positions attended over (attention work).
void Pipeline::split(const std::vector<StepItem>& items) {
  active_ = std::min<int>(max_mb_, static_cast<int>(items.size()));
  for (auto& m : mbs_) {
    m.items.clear();
    m.cost = 0;
  }
  std::vector<int> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  auto cost = [&](int i) { return items[i].count * (1.0 + (items[i].seq->cached + items[i].count) / 512.0); };
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return cost(a) > cost(b); });
  for (int i : order) {
    auto it = std::min_element(mbs_.begin(), mbs_.begin() + active_,
                               [](const MicroBatch& a, const MicroBatch& b) { return a.cost < b.cost; });
    it->items.push_back(i);
    it->cost += cost(i);
  }
  const int h = attn_.config().hidden_size;
  for (int m = 0; m < active_; ++m) {
    MicroBatch& mb = mbs_[m];
    std::sort(mb.items.begin(), mb.items.end());
    mb.ids.clear();
    mb.slot.clear();
    mb.cached.clear();
    mb.start.assign(1, 0);
    for (int i : mb.items) {
      const StepItem& it = items[i];
      const Sequence& s = *it.seq;
      mb.ids.insert(mb.ids.end(), s.tokens.begin() + s.cached, s.tokens.begin() + s.cached + it.count);
      mb.slot.push_back(s.slot);
      mb.cached.push_back(s.cached);
      mb.start.push_back(static_cast<int32_t>(mb.ids.size()));
    }
    const size_t need = mb.ids.size() * h;
    if (mb.x_cap < need) {  // grow-only: after the largest step no allocation happens here again
      if (mb.x) ffn_.free_host(mb.x);
      mb.x = static_cast<uint16_t*>(ffn_.alloc_host(need * sizeof(uint16_t)));
      mb.x_cap = need;
    }
  }
}

void Pipeline::span(SpanKind k, int mb, int layer, Clock::time_point b) {
  const auto e = Clock::now();
  std::lock_guard<std::mutex> l(span_mu_);
  const double d = std::chrono::duration<double>(e - b).count();
  if (k == SpanKind::kFfn || k == SpanKind::kHead)
    stats_->ffn_s += d;
  else
    stats_->attn_s += d;
  if (keep_spans_) stats_->spans.push_back({k, mb, layer, b, e});
}

StepStats Pipeline::run(const std::vector<StepItem>& items, std::vector<int32_t>& sampled, bool keep_spans) {
  StepStats st;
  st.begin = Clock::now();
  sampled.assign(items.size(), -1);
  if (items.empty()) return st;
  split(items);
  st.micro_batches = active_;
  st.sequences = static_cast<int>(items.size());
  for (int m = 0; m < active_; ++m) st.tokens += static_cast<int>(mbs_[m].ids.size());
  stats_ = &st;
  keep_spans_ = keep_spans;
  sampled_ = &sampled;
  current_items_ = &items;
  const int layers = attn_.config().num_layers;
  {
    std::lock_guard<std::mutex> l(mu_);
    std::fill(attn_done_.begin(), attn_done_.end(), 0);
    std::fill(ffn_done_.begin(), ffn_done_.end(), 0);
    ffn_finished_ = false;
    abort_ = false;
    ffn_error_ = nullptr;
    step_pending_ = true;
  }
  cv_.notify_all();
  std::exception_ptr attn_error;
  try {
    for (int m = 0; m < active_; ++m) {
      const auto b = Clock::now();
      attn_.embed(mbs_[m].ids.data(), static_cast<int>(mbs_[m].ids.size()), mbs_[m].x);
      span(SpanKind::kEmbed, m, 0, b);
    }
    for (int l = 0; l < layers; ++l) {
      for (int m = 0; m < active_; ++m) {
        {
          std::unique_lock<std::mutex> lk(mu_);
          cv_.wait(lk, [&] { return ffn_done_[m] >= l || ffn_error_; });
          if (ffn_error_) break;
        }
        const auto b = Clock::now();
        attn_.attn_half(l, mbs_[m].batch(), mbs_[m].x);
        span(SpanKind::kAttn, m, l, b);
        {
          std::lock_guard<std::mutex> lk(mu_);
          attn_done_[m] = l + 1;
        }
        cv_.notify_all();
      }
    }
  } catch (...) {
    attn_error = std::current_exception();
  }
  {
    std::unique_lock<std::mutex> lk(mu_);
    if (attn_error) abort_ = true;
    cv_.notify_all();
    cv_.wait(lk, [&] { return ffn_finished_; });
  }
  st.step_s = std::chrono::duration<double>(Clock::now() - st.begin).count();
  stats_ = nullptr;
  if (attn_error) std::rethrow_exception(attn_error);
  if (ffn_error_) std::rethrow_exception(ffn_error_);
  return st;
}

void Pipeline::ffn_loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return step_pending_ || quit_; });
      if (quit_) return;
      step_pending_ = false;
    }
    try {
      ffn_step();
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      ffn_error_ = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      ffn_finished_ = true;
    }
    cv_.notify_all();
  }
}

void Pipeline::ffn_step() {
  const int layers = ffn_.config().num_layers;
  for (int l = 0; l < layers; ++l) {
    for (int m = 0; m < active_; ++m) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return attn_done_[m] > l || abort_; });
        if (abort_) return;
      }
      const auto b = Clock::now();
      ffn_.ffn_half(l, mbs_[m].x, static_cast<int>(mbs_[m].ids.size()));
      span(SpanKind::kFfn, m, l, b);
      {
        std::lock_guard<std::mutex> lk(span_mu_);
        stats_->xfer_s += ffn_.last_transfer_seconds();
        add_gpu_busy(stats_->gpu_busy_s, ffn_.last_device_busy_seconds());
      }
      {
        std::lock_guard<std::mutex> lk(mu_);
        ffn_done_[m] = l + 1;
      }
      cv_.notify_all();
      if (l == layers - 1) {
        const auto hb = Clock::now();
        head(mbs_[m]);
        span(SpanKind::kHead, m, l, hb);
      }
    }
  }
}

// Final norm + LM head of micro-batch `mb`: logits rows for all_logits requests, a sampled token for each item
// that asks for one (the last row of its tokens).
void Pipeline::head(MicroBatch& mb) {
  const std::vector<StepItem>& items = *current_items_;
  const int h = ffn_.config().hidden_size, V = ffn_.config().vocab_size;
  mb.rows.clear();
  mb.params.clear();
  mb.steps.clear();
  mb.out_item.clear();
  for (size_t j = 0; j < mb.items.size(); ++j) {
    const StepItem& it = items[mb.items[j]];
    Sequence& s = *it.seq;
    const uint16_t* first = mb.x + static_cast<size_t>(mb.start[j]) * h;
    if (s.req.all_logits || s.req.score_only) {
      const size_t old = s.logits.size();
      s.logits.resize(old + static_cast<size_t>(it.count) * V);
      ffn_.logits(first, it.count, s.logits.data() + old);
    }
    if (!it.sample) continue;
    const uint16_t* last = first + static_cast<size_t>(it.count - 1) * h;
    mb.rows.insert(mb.rows.end(), last, last + h);
    mb.params.push_back(s.req.sampling);
    mb.steps.push_back(static_cast<uint64_t>(s.generated));
    mb.out_item.push_back(mb.items[j]);
  }
  if (mb.out_item.empty()) return;
  mb.out_ids.resize(mb.out_item.size());
  ffn_.sample(mb.rows.data(), static_cast<int>(mb.out_item.size()), mb.params.data(), mb.steps.data(),
              mb.out_ids.data());
  for (size_t r = 0; r < mb.out_item.size(); ++r) (*sampled_)[mb.out_item[r]] = mb.out_ids[r];
}

}  // namespace afd::engine
