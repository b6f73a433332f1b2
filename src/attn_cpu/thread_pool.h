// A pool of pinned worker threads for the attention half. parallel_for(n, f) runs f(item, worker) for every
// item in [0, n) with dynamic scheduling (an atomic counter), the calling thread taking part as worker 0, and
// returns when all items are done. Workers sleep on a condition variable between calls; nothing is allocated
// per call, so per-worker scratch sized at construction is all a hot path needs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace afd::attn {

class ThreadPool {
 public:
  // threads: total workers including the caller (>= 1); pin: bind worker w to the w-th CPU this process may use.
  explicit ThreadPool(int threads, bool pin = true);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(threads_.size()) + 1; }

  // f(int item, int worker), worker in [0, size()). The first exception thrown by any f is rethrown here.
  template <typename F>
  void parallel_for(int n, F&& f) {
    using Fn = std::remove_reference_t<F>;
    run(n, [](void* ctx, int item, int worker) { (*static_cast<Fn*>(ctx))(item, worker); }, &f);
  }

 private:
  using Trampoline = void (*)(void*, int, int);
  void run(int n, Trampoline fn, void* ctx);
  void work(int worker);  // takes items until none are left
  void loop(int worker);

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;  // bumped once per run(); a worker runs each generation once
  int busy_ = 0;             // workers (excluding the caller) still inside the current generation
  bool stop_ = false;
  // The current call; written under mu_ before generation_ is bumped.
  Trampoline fn_ = nullptr;
  void* ctx_ = nullptr;
  int n_ = 0;
  std::atomic<int> next_{0};
  std::exception_ptr error_;
};

}  // namespace afd::attn
