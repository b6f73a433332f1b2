// Cross-connection batching for FfnServer: the requests of several attention processes that are pending at the same
// time for the same work (FFN_HALF of one layer, or LOGITS, or SAMPLE) run as ONE backend call over their
// concatenated rows, and each request gets its own rows back. Row order inside a request is kept.
//
// Invariants:
//  - one backend call at a time (backends are not thread-safe); requests are taken oldest first, so none starves;
//  - a batch never exceeds max_rows rows unless it is a single request (which runs alone, as without batching);
//  - a request waits for company at most `window`, and only while another connection is busy (it has a request
//    pending or finished one within kBusyFor) and has nothing pending: a lone client is never delayed;
//  - window 0 disables batching: one request per backend call, in arrival order.
// Concatenation is exact for a backend whose rows are independent. The CPU FFN is not so by construction (oneDNN
// may pick another kernel or blocking for another row count, and an expert GEMM then holds other requests' rows);
// measured bit-identical with f32 weights (AVX-512 and AVX2) and bf16 gemm:jit, AMX not measured:
// tests/transport/test_transport_batching.cpp requires bitwise equality on the f32 path, closeness otherwise, and
// greedy tokens of whole engines equal to the single-process engine's.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <vector>

#include "iface/ffn_backend.h"
#include "transport/tcp_protocol.h"

namespace afd::transport {

struct BatchOptions {
  std::chrono::microseconds window{100};  // 0: no batching
  int max_rows = 512;                     // rows per backend call at most (the backend's token capacity)
};

struct BatchStats {
  int64_t requests = 0;       // FFN_HALF, LOGITS and SAMPLE requests served
  int64_t calls = 0;          // backend calls made for them
  int64_t rows = 0;           // rows (tokens) over all calls
  int64_t batched_calls = 0;  // calls that served more than one request
  double rows_per_call() const { return calls ? static_cast<double>(rows) / calls : 0; }
  double requests_per_call() const { return calls ? static_cast<double>(requests) / calls : 0; }
};

class FfnBatcher {
 public:
  // A connection's time since its last request after which it no longer counts as busy (nothing is awaited from it).
  static constexpr auto kBusyFor = std::chrono::milliseconds(50);

  // One request. The caller owns every buffer and keeps them alive until run() returns.
  struct Job {
    MsgType kind = MsgType::kFfnHalf;  // kFfnHalf, kLogits or kSample
    int layer = 0;                     // kFfnHalf only
    int n = 0;
    uint16_t* x = nullptr;             // [n, hidden]: in and out for kFfnHalf, input otherwise
    float* logits = nullptr;           // kLogits: out [n, vocab]
    const SamplingParams* params = nullptr;  // kSample: [n]
    const uint64_t* steps = nullptr;         // kSample: [n]
    int32_t* ids = nullptr;                  // kSample: out [n]
    int client = 0;                          // the connection (add_client)
    // Set by the batcher.
    bool done = false;
    std::exception_ptr error;
  };

  FfnBatcher(FfnBackend& ffn, BatchOptions opt) : ffn_(ffn), opt_(opt) {}

  int add_client();
  void remove_client(int client);
  // Runs the job, alone or batched with others' (blocking; thread-safe). Rethrows the backend's failure.
  void run(Job& job);
  BatchStats stats() const;

 private:
  using Clock = std::chrono::steady_clock;
  bool same_work(const Job& a, const Job& b) const;
  bool awaiting_others() const;  // under mu_: a busy connection has nothing pending
  std::vector<Job*> take_batch();  // under mu_
  void execute(const std::vector<Job*>& batch);  // backend call(s) without mu_

  FfnBackend& ffn_;
  BatchOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> pending_;            // oldest first
  bool executing_ = false;              // a thread is calling the backend (the leader)
  std::map<int, Clock::time_point> last_done_;  // by connection: when its last request finished
  int next_client_ = 1;
  BatchStats stats_;
  // Concatenation scratch (used by the leader only).
  std::vector<uint16_t> cat_x_;
  std::vector<float> cat_logits_;
  std::vector<SamplingParams> cat_params_;
  std::vector<uint64_t> cat_steps_;
  std::vector<int32_t> cat_ids_;
};

}  // namespace afd::transport
