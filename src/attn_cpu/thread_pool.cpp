#include "attn_cpu/thread_pool.h"

#include <pthread.h>
#include <sched.h>

namespace afd::attn {

namespace {
// The w-th CPU of this process's affinity mask (wrapping), or -1 when the mask cannot be read.
int nth_allowed_cpu(int w) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
  const int count = CPU_COUNT(&set);
  if (count == 0) return -1;
  int want = w % count;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set) && want-- == 0) return c;
  return -1;
}
}  // namespace

ThreadPool::ThreadPool(int threads, bool pin) {
  if (threads < 1) threads = 1;
  for (int w = 1; w < threads; ++w) {
    threads_.emplace_back([this, w] { loop(w); });
    if (pin) {
      const int cpu = nth_allowed_cpu(w);
      if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        pthread_setaffinity_np(threads_.back().native_handle(), sizeof(set), &set);  // best effort
      }
    }
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::work(int worker) {
  for (int i = next_.fetch_add(1); i < n_; i = next_.fetch_add(1)) {
    try {
      fn_(ctx_, i, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(n_);  // stop handing out items
    }
  }
}

void ThreadPool::loop(int worker) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    work(worker);
    std::lock_guard<std::mutex> lock(mu_);
    if (--busy_ == 0) done_.notify_one();
  }
}

void ThreadPool::run(int n, Trampoline fn, void* ctx) {
  if (n <= 0) return;
  if (threads_.empty() || n == 1) {
    for (int i = 0; i < n; ++i) fn(ctx, i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    next_.store(0);
    error_ = nullptr;
    busy_ = static_cast<int>(threads_.size());
    ++generation_;
  }
  wake_.notify_all();
  work(0);
  std::exception_ptr err;
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return busy_ == 0; });
    err = error_;
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace afd::attn
