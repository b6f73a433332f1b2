// The one thread that drives an Engine for a server or an embedding program. Other threads submit and cancel;
// results come back through each request's callback, called on the driver thread (callbacks must not block: they
// hand the event to their consumer's queue and return).
//
// Invariants: Engine::step() and take_finished() run only on the driver thread; `in_flight_` counts requests
// submitted and not yet finished, and the driver sleeps on `cv_` exactly when it is zero (no busy-wait). Every
// submitted request gets exactly one event with finish != kNone, after all its tokens. Callbacks are called without
// the driver's lock held, so they may call submit() and cancel().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/engine.h"

namespace afd::server {

// One event of a request: a generated token (token >= 0), and/or its end (finish != kNone; token -1 when the
// request ended without a new token). `error` says why a request was rejected.
struct TokenEvent {
  int64_t request_id = 0;
  int32_t token = -1;
  engine::FinishReason finish = engine::FinishReason::kNone;
  std::string error;
};
using EventFn = std::function<void(const TokenEvent&)>;

// What /metrics and afd_get_stats report; refreshed by the driver after every step.
struct DriverStats {
  int64_t in_flight = 0;        // submitted, not finished
  int64_t running = 0;          // sequences in the last step
  int64_t waiting = 0;          // in_flight - running: submitted, not yet admitted by the scheduler
  int64_t gpu_memory_bytes = 0; // what the FFN side holds on its GPU (0 for the CPU FFN)
  int64_t kv_blocks_used = 0, kv_blocks_total = 0;
  int64_t steps = 0, tokens = 0;  // totals
  double last_step_s = 0, step_s_total = 0, last_overlap = 0, overlap_total = 0;
  int64_t finished = 0, cancelled = 0, rejected = 0;
};

class EngineDriver {
 public:
  explicit EngineDriver(std::unique_ptr<engine::Engine> eng);
  ~EngineDriver();  // finishes what runs (see stop), then joins
  EngineDriver(const EngineDriver&) = delete;
  EngineDriver& operator=(const EngineDriver&) = delete;

  const ModelConfig& config() const { return eng_->config(); }
  int64_t kv_capacity_positions() const { return kv_capacity_; }

  // Queues a request; throws afd::Error (from Engine::submit) when it is invalid. Safe from any thread.
  int64_t submit(engine::GenRequest r, EventFn fn);
  bool cancel(int64_t id);  // false when no such request is in flight
  void cancel_all();
  DriverStats stats() const;
  // Waits until no request is in flight.
  void wait_idle();
  // Lets running requests finish, then ends the driver thread; submit() throws afterwards.
  void stop();

 private:
  void loop();
  void publish();

  std::unique_ptr<engine::Engine> eng_;
  int64_t kv_capacity_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::map<int64_t, std::shared_ptr<EventFn>> fns_;  // every request in flight; called without mu_ held
  std::map<int64_t, TokenEvent> finals_;  // last events held until their request is retired (driver thread only)
  int64_t in_flight_ = 0;
  bool stopping_ = false;
  DriverStats stats_;
  std::thread thread_;
};

}  // namespace afd::server
