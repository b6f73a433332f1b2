#include "cpu/peak.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>


namespace afd::cpu {

namespace {
// Eight independent multiply-add chains as named locals (x -> x m + c converges to 1, so values stay bounded).
double scalar_chains(int64_t iters) {
  volatile float mul = 0.999f, add = 0.001f;
  const float m = mul, c = add;
  float a0 = 0.1f, a1 = 0.2f, a2 = 0.3f, a3 = 0.4f, a4 = 0.5f, a5 = 0.6f, a6 = 0.7f, a7 = 0.8f;
  for (int64_t i = 0; i < iters; ++i) {
    a0 = a0 * m + c;
    a1 = a1 * m + c;
    a2 = a2 * m + c;
    a3 = a3 * m + c;
    a4 = a4 * m + c;
    a5 = a5 * m + c;
    a6 = a6 * m + c;
    a7 = a7 * m + c;
  }
  volatile float sink = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
  (void)sink;
  return 2.0 * 8 * static_cast<double>(iters);
}
}  // namespace

double peak_loop_scalar(int64_t iters) { return scalar_chains(iters); }

double peak_flops(Isa isa, int threads) {
  if (!cpu_supports(isa) || threads < 1) return 0;
  double (*loop)(int64_t) = isa == Isa::kAmx          ? peak_loop_amx
                            : isa == Isa::kAvx512Bf16 ? peak_loop_avx512
                            : isa == Isa::kAvx2       ? peak_loop_avx2
                                                      : peak_loop_scalar;
  // Calibrate one thread to ~20 ms, then run every thread together; best of three.
  int64_t iters = 1 << 12;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    loop(iters);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0.02 || iters > (int64_t{1} << 40)) break;
    iters *= 2;
  }
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<double> flop(threads);
    std::atomic<int> ready{0};
    std::vector<std::thread> pool;
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < threads) {
        }
        flop[t] = loop(iters);
      });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double sum = 0;
    for (double f : flop) sum += f;
    best = std::max(best, sum / s);
  }
  return best;
}

}  // namespace afd::cpu
