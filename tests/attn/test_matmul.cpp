// attn::Matmul (the projections) against a float32 reference at odd row counts, batched and not, bf16 and f32
// weights: every m, including ones never seen before, runs through the strategy the constructor chose (blocked
// weights with shared fixed-M primitives where oneDNN allows it); two Matmuls of one shape share their primitives
// but keep their own weights; rows past m are never written.
#include <catch2/catch.hpp>

#include <cmath>
#include <tuple>
#include <vector>

#include "attn_cpu/matmul.h"
#include "../test_util.h"
#include "cpu/dnnl_linear.h"
#include "util/numeric.h"

using namespace afd;

namespace {

std::vector<uint16_t> to_bf16(const std::vector<float>& f) {
  std::vector<uint16_t> r(f.size());
  for (size_t i = 0; i < f.size(); ++i) r[i] = f32_to_bf16(f[i]);
  return r;
}

void check(attn::Matmul& mm, dnnl::stream& s, const std::vector<uint16_t>& w, int batch, int k, int n, int m,
           uint64_t seed) {
  const std::vector<uint16_t> x = to_bf16(test::random_floats(static_cast<size_t>(batch) * m * k, seed));
  std::vector<float> y(static_cast<size_t>(batch) * m * n + 7, NAN);
  mm.run(s, x.data(), m, y.data());
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double want = 0, mag = 0;
        for (int c = 0; c < k; ++c) {
          const double p = static_cast<double>(bf16_to_f32(x[(static_cast<size_t>(b) * m + i) * k + c])) *
                           bf16_to_f32(w[(static_cast<size_t>(b) * k + c) * n + j]);
          want += p;
          mag += std::fabs(p);
        }
        const float got = y[(static_cast<size_t>(b) * m + i) * n + j];
        INFO("batch " << batch << " k " << k << " n " << n << " m " << m << " at " << b << "," << i << "," << j
                      << " impl " << mm.impl());
        REQUIRE(std::fabs(got - want) <= 1e-5 * mag + 1e-6);  // fp32 accumulation of exact bf16 products
      }
  for (size_t i = static_cast<size_t>(batch) * m * n; i < y.size(); ++i) REQUIRE(std::isnan(y[i]));
}

}  // namespace

TEST_CASE("projection matmuls equal a float32 reference at every row count, bf16 and f32 weights", "[attn][matmul]") {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  for (bool bf16 : {false, true}) {
    if (bf16 && !cpu::dnnl_has_bf16_matmul()) continue;
    attn::MatmulCache cache;
    for (const auto& [batch, k, n] : {std::tuple{1, 96, 80}, std::tuple{1, 33, 17}, std::tuple{3, 40, 24}}) {
      const std::vector<uint16_t> w1 = to_bf16(test::random_floats(static_cast<size_t>(batch) * k * n, 11 + k));
      const std::vector<uint16_t> w2 = to_bf16(test::random_floats(static_cast<size_t>(batch) * k * n, 23 + k));
      attn::Matmul a(eng, cache, batch, k, n, w1.data(), bf16), b(eng, cache, batch, k, n, w2.data(), bf16);
      for (int m : {1, 2, 5, 16, 37, 1, 130}) {  // 1 again: a primitive made earlier serves it
        check(a, s, w1, batch, k, n, m, 100 + m);
        check(b, s, w2, batch, k, n, m, 200 + m);  // same shape, shared primitive, its own weights
      }
    }
  }
}
