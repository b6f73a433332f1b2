#include "server/engine_driver.h"

#include <utility>
#include <vector>

#include "util/error.h"

namespace afd::server {

EngineDriver::EngineDriver(std::unique_ptr<engine::Engine> eng) : eng_(std::move(eng)) {
  KvManager& kv = eng_->attn().kv();
  kv_capacity_ = kv.total_blocks() * kv.block_size();
  stats_.kv_blocks_total = kv.total_blocks();
  thread_ = std::thread([this] { loop(); });
}

EngineDriver::~EngineDriver() { stop(); }

int64_t EngineDriver::submit(engine::GenRequest r, EventFn fn) {
  // The engine's callback looks the request's function up by id; holding mu_ across submit and insertion keeps
  // the driver (which takes mu_ to deliver) from seeing the request before its function is registered.
  std::lock_guard<std::mutex> l(mu_);
  AFD_REQUIRE(!stopping_, "the server is shutting down");
  const int64_t id = eng_->submit(std::move(r), [this](int64_t rid, int32_t token, engine::FinishReason fin) {
    // The last event waits until the driver has retired the request (see loop), so a consumer that sees it also
    // sees the request's KV blocks freed and in-flight count lowered. This runs on the driver thread.
    if (fin != engine::FinishReason::kNone) {
      finals_[rid] = TokenEvent{rid, token, fin, {}};
      return;
    }
    std::shared_ptr<EventFn> f;
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = fns_.find(rid);
      if (it == fns_.end()) return;
      f = it->second;
    }
    (*f)(TokenEvent{rid, token, fin, {}});
  });
  fns_.emplace(id, std::make_shared<EventFn>(std::move(fn)));
  ++in_flight_;
  cv_.notify_one();
  return id;
}

bool EngineDriver::cancel(int64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  if (!fns_.count(id)) return false;
  eng_->cancel(id);
  return true;
}

void EngineDriver::cancel_all() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [id, fn] : fns_) eng_->cancel(id);
}

DriverStats EngineDriver::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

void EngineDriver::wait_idle() {
  std::unique_lock<std::mutex> l(mu_);
  idle_cv_.wait(l, [&] { return in_flight_ == 0; });
}

void EngineDriver::stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

// Called with mu_ held, on the driver thread.
void EngineDriver::publish() {
  const engine::StepStats& s = eng_->last_step();
  const engine::StatsTotals& t = eng_->totals();
  KvManager& kv = eng_->attn().kv();
  stats_.in_flight = in_flight_;
  stats_.running = static_cast<int64_t>(eng_->running());  // admitted to the scheduler (holding KV)
  stats_.waiting = stats_.in_flight > stats_.running ? stats_.in_flight - stats_.running : 0;
  stats_.kv_blocks_used = kv.total_blocks() - kv.free_blocks();
  stats_.gpu_memory_bytes = eng_->ffn().device_memory_bytes();
  stats_.steps = t.steps;
  stats_.tokens = t.tokens;
  stats_.last_step_s = s.step_s;
  stats_.step_s_total = t.step_s;
  stats_.last_overlap = s.overlap();
  stats_.overlap_total = t.overlap();
}

void EngineDriver::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return in_flight_ > 0 || stopping_; });
      if (in_flight_ == 0) return;  // stopping, and nothing left to finish
    }
    // Tokens are delivered inside step() through the callbacks registered in submit(). When a backend fails inside a
    // step, the engine ends that step's sequences (kFailed) and the others stay queued for the next step; only a
    // failure that ended nothing (outside any step) ends every request in flight, so the loop cannot spin on it.
    std::string failure;
    try {
      eng_->step();
    } catch (const std::exception& e) {
      failure = e.what();
    }
    std::vector<std::pair<std::shared_ptr<EventFn>, TokenEvent>> calls;  // made after unlocking
    std::unique_lock<std::mutex> l(mu_);
    bool ended_any = false;
    for (auto& s : eng_->take_finished()) {
      ended_any = true;
      auto fi = finals_.find(s->id);
      TokenEvent last = fi != finals_.end() ? fi->second : TokenEvent{s->id, -1, s->finish, {}};
      if (fi != finals_.end()) finals_.erase(fi);
      auto it = fns_.find(s->id);
      if (it == fns_.end()) continue;
      last.error = s->error;
      calls.emplace_back(it->second, last);
      if (s->finish == engine::FinishReason::kRejected || s->finish == engine::FinishReason::kFailed) {
        ++stats_.rejected;
      } else if (s->finish == engine::FinishReason::kCancelled) {
        ++stats_.cancelled;
      }
      ++stats_.finished;
      fns_.erase(it);
      --in_flight_;
    }
    if (!failure.empty() && !ended_any) {
      for (auto& [id, fn] : fns_)
        calls.emplace_back(fn, TokenEvent{id, -1, engine::FinishReason::kFailed, "engine failure: " + failure});
      stats_.rejected += static_cast<int64_t>(fns_.size());
      fns_.clear();
      finals_.clear();
      in_flight_ = 0;
    }
    publish();
    if (in_flight_ == 0) idle_cv_.notify_all();
    l.unlock();
    for (auto& [fn, ev] : calls) (*fn)(ev);
  }
}

}  // namespace afd::server
