#include "engine/engine.h"

#include <algorithm>

#include "util/error.h"

namespace afd::engine {

Engine::Engine(std::shared_ptr<AttnBackend> attn, std::shared_ptr<FfnBackend> ffn, const EngineOptions& opt)
    : attn_(std::move(attn)),
      ffn_(std::move(ffn)),
      opt_(opt),
      sched_(
          attn_->kv(),
          [&] {
            SchedulerOptions s = opt.scheduler;
            if (s.max_context <= 0) s.max_context = attn_->config().max_position_embeddings;
            s.lanes = opt.micro_batches;
            return s;
          }(),
          // GenRequest::synthetic_context: the attention side fills the KV cache it owns.
          [this](int slot, int len, uint64_t seed) { attn_->fill_synthetic(slot, len, seed); }),
      pipe_(*attn_, *ffn_, opt.micro_batches),
      lane_round_(opt.micro_batches, 0) {
  AFD_REQUIRE(opt.scheduler.max_step_tokens >= opt.scheduler.max_batch, "max_step_tokens (",
              opt.scheduler.max_step_tokens, ") must be at least max_batch (", opt.scheduler.max_batch, ")");
  AFD_REQUIRE(attn_->config().num_layers == ffn_->config().num_layers &&
                  attn_->config().hidden_size == ffn_->config().hidden_size,
              "the attention side (", attn_->name(), ") and the FFN side (", ffn_->name(), ") hold different models");
}

Engine::~Engine() = default;

int64_t Engine::submit(GenRequest r, TokenCallback cb) {
  const ModelConfig& c = config();
  AFD_REQUIRE(!r.prompt.empty(), "the prompt is empty");
  for (int32_t id : r.prompt)
    AFD_REQUIRE(id >= 0 && id < c.vocab_size, "prompt token id ", id, " is outside the vocabulary (", c.vocab_size,
                " ids)");
  AFD_REQUIRE(r.max_new_tokens >= 0, "max_new_tokens ", r.max_new_tokens, " must be >= 0");
  validate(r.sampling);
  AFD_REQUIRE(!(r.synthetic_context && r.score_only), "synthetic_context cannot be scored (score_only): its prompt "
              "positions are not computed");
  auto s = std::make_unique<Sequence>();
  s->id = next_id_++;
  s->tokens = r.prompt;
  s->req = std::move(r);
  s->on_token = std::move(cb);
  const int64_t id = s->id;
  std::lock_guard<std::mutex> l(in_mu_);
  incoming_.push_back(std::move(s));
  return id;
}

void Engine::cancel(int64_t id) {
  std::lock_guard<std::mutex> l(in_mu_);
  cancels_.push_back(id);
}

bool Engine::idle() {
  std::lock_guard<std::mutex> l(in_mu_);
  return incoming_.empty() && sched_.waiting() == 0 && sched_.running() == 0;
}

void Engine::finish(std::unique_ptr<Sequence> s) {
  // Requests that end without a last token (cancelled, rejected, scored) still get one final callback.
  const bool told = s->finish == FinishReason::kEos || (s->finish == FinishReason::kLength && s->generated > 0);
  if (!told && s->on_token) s->on_token(s->id, -1, s->finish);
  finished_.push_back(std::move(s));
}

void Engine::take_incoming() {
  std::lock_guard<std::mutex> l(in_mu_);
  while (!incoming_.empty()) {
    sched_.add(std::move(incoming_.front()));
    incoming_.pop_front();
  }
  for (int64_t id : cancels_) sched_.cancel(id);
  cancels_.clear();
}

void Engine::finish_all(std::vector<std::unique_ptr<Sequence>>& done) {
  for (auto& s : done) finish(std::move(s));
  done.clear();
}

bool Engine::round_running() const {
  for (int l = 0; l < pipe_.lanes(); ++l)
    if (pipe_.in_flight(l) && lane_round_[l] <= round_) return true;
  return false;
}

// Plans and starts every idle lane that has work. A request that asks for no new tokens finishes once its prompt is
// cached (or at once if it is not scoring).
void Engine::start_idle_lanes(int64_t round) {
  std::vector<std::unique_ptr<Sequence>> done;
  for (int l = 0; l < pipe_.lanes(); ++l) {
    if (pipe_.in_flight(l)) continue;
    std::vector<StepItem> items = sched_.plan(l, done);
    if (items.empty()) continue;
    pipe_.start(l, std::move(items));
    lane_round_[l] = round;
  }
  finish_all(done);
}

// A lane's step has finished: its tokens are delivered, finished sequences leave, and the lanes are evened out.
void Engine::collect_lane(int lane, StepStats& st) {
  const std::vector<StepItem>& items = pipe_.items(lane);
  const std::vector<int32_t>& sampled = pipe_.sampled(lane);
  ++st.micro_batches;
  st.sequences += static_cast<int>(items.size());
  const auto& eos = config().eos_token_ids;
  for (size_t i = 0; i < items.size(); ++i) {
    Sequence& s = *items[i].seq;
    st.tokens += items[i].count;
    s.cached += items[i].count;
    if (s.finish != FinishReason::kNone) continue;  // cancelled while its step ran
    if ((s.req.score_only || s.req.max_new_tokens == 0) && !s.prefilling()) s.finish = FinishReason::kLength;
    if (!items[i].sample) continue;
    const int32_t t = sampled[i];
    s.tokens.push_back(t);
    ++s.generated;
    if (!s.req.ignore_eos && std::find(eos.begin(), eos.end(), t) != eos.end())
      s.finish = FinishReason::kEos;
    else if (s.generated >= s.req.max_new_tokens)
      s.finish = FinishReason::kLength;
    if (s.on_token) s.on_token(s.id, t, s.finish);
  }
  std::vector<std::unique_ptr<Sequence>> done;
  sched_.collect(lane, items, done);
  finish_all(done);
}

bool Engine::step() {
  take_incoming();
  const bool continuing = pipe_.any_in_flight();
  StepStats st;
  st.begin = continuing ? round_end_ : Clock::now();
  const bool keep = opt_.trace && static_cast<int>(traced_.size()) < opt_.trace_steps;
  pipe_.set_keep_spans(keep);
  try {
    start_idle_lanes(round_);
    if (!pipe_.any_in_flight()) return false;
    while (round_running()) {
      const int lane = pipe_.run_until_lane_done();
      collect_lane(lane, st);
      // Its next step starts now if this round's other lanes are still running (their last layers overlap it);
      // else at the next call.
      if (round_running()) {
        take_incoming();
        start_idle_lanes(round_ + 1);
      }
    }
  } catch (const std::exception& e) {
    // A backend failed mid-step (e.g. a remote FFN side went away): the pipeline is drained, and the sequences
    // that were in a step have a partial step in the KV cache, so they end now, failed with the reason; the engine
    // stays usable for new requests.
    pipe_.abort();  // already drained when the pipeline threw; not when starting a lane did
    std::vector<std::unique_ptr<Sequence>> done;
    sched_.fail_in_flight(e.what(), done);
    finish_all(done);
    round_end_ = Clock::now();
    ++round_;
    throw;
  }
  round_end_ = Clock::now();
  st.step_s = std::chrono::duration<double>(round_end_ - st.begin).count();
  pipe_.take_busy(st);
  if (!keep) st.spans.clear();
  st.step = steps_++;
  ++round_;
  totals_.add(st);
  last_ = st;
  if (keep) traced_.push_back(std::move(st));
  return true;
}

void Engine::run_until_idle() {
  while (step() || !idle()) {
  }
}

std::vector<std::unique_ptr<Sequence>> Engine::take_finished() { return std::move(finished_); }

}  // namespace afd::engine
