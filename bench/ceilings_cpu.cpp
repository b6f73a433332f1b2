#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "bench/ceilings.h"
#include "cpu/dnnl_linear.h"
#include "cpu/peak.h"
#include "util/numeric.h"

namespace afd::bench {

namespace {
using Clock = std::chrono::steady_clock;

// Best of `reps` passes of all threads summing their slice of a `bytes` buffer.
double read_bandwidth(size_t bytes, int reps) {
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<uint64_t> buf(bytes / 8);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = i * 0x9e3779b97f4a7c15ull;
  double best = 0;
  std::vector<uint64_t> sink(threads);
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const size_t n = buf.size() / threads, b = t * n;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = b; i + 3 < b + n; i += 4) {
          s0 += buf[i];
          s1 += buf[i + 1];
          s2 += buf[i + 2];
          s3 += buf[i + 3];
        }
        sink[t] = s0 + s1 + s2 + s3;
      });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, static_cast<double>(bytes) / s);
  }
  return best;
}

double gemm_rate(int m, int k, int n, int reps, std::string* impl) {
  std::vector<uint16_t> w(static_cast<size_t>(n) * k);
  for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_bf16(static_cast<float>((i * 2654435761u) % 1000) / 1000.0f - 0.5f);
  cpu::DnnlLinear lin(w, {}, n, k);
  *impl = lin.impl();
  std::vector<float> x(static_cast<size_t>(m) * k, 0.25f), y(static_cast<size_t>(m) * n);
  lin.forward(x.data(), m, y.data());  // warm-up
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    lin.forward(x.data(), m, y.data());
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, 2.0 * m * k * n / s);
  }
  return best;
}
}  // namespace

Ceilings measure_ceilings(bool quick, bool want_gpu) {
  Ceilings c;
  c.host_read_bw = read_bandwidth(quick ? (size_t{128} << 20) : (size_t{1} << 30), quick ? 3 : 5);
  c.cpu_gemm_flops = quick ? gemm_rate(256, 1024, 1024, 3, &c.cpu_gemm_impl) : gemm_rate(512, 4096, 4096, 5, &c.cpu_gemm_impl);
  const cpu::Isa isa = cpu::best_isa();
  c.cpu_peak_isa = cpu::isa_name(isa);
  c.cpu_peak_flops = cpu::peak_flops(isa, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  if (want_gpu) c.has_gpu = measure_gpu_ceilings(c, quick);
  return c;
}

}  // namespace afd::bench
