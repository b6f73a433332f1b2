#include "attn_cpu/kv_fill.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "util/error.h"
#include "util/numeric.h"

namespace afd::attn {

namespace {

// 256 quantiles of N(0, 1) at (i + 0.5) / 256: one random byte picks a value (mean 0, variance ~0.98).
const std::array<float, 256>& normal_table() {
  static const std::array<float, 256> t = [] {
    std::array<float, 256> a{};
    for (int i = 0; i < 256; ++i) {
      const double p = (i + 0.5) / 256.0;
      double lo = -8, hi = 8;  // bisection on Phi(x) = erfc(-x / sqrt 2) / 2
      for (int it = 0; it < 60; ++it) {
        const double mid = 0.5 * (lo + hi);
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
      }
      a[i] = static_cast<float>(0.5 * (lo + hi));
    }
    return a;
  }();
  return t;
}

// bf16 by truncation: the values are finite and random, so rounding buys nothing and its NaN branch costs.
inline uint16_t bf16_trunc(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);
}

// One row of `n` values: ~N(0, 1) times gain[c]; one 64-bit hash gives 8 values.
void fill_row(uint16_t* row, int n, uint64_t key, const float* gain) {
  const auto& tab = normal_table();
  for (int c0 = 0; c0 < n; c0 += 8) {
    const uint64_t bits = splitmix64(key + static_cast<uint64_t>(c0 >> 3));
    const int m = std::min(8, n - c0);
    for (int i = 0; i < m; ++i) row[c0 + i] = bf16_trunc(tab[(bits >> (8 * i)) & 0xff] * gain[c0 + i]);
  }
}

}  // namespace

void fill_kv_synthetic(PagedKvCache& cache, ThreadPool& pool, int slot, int len, uint64_t seed,
                       const KvFillGains& gains) {
  const KvLayout& lay = cache.layout();
  AFD_REQUIRE(len >= 0 && len <= cache.capacity(slot), "a synthetic KV fill of ", len, " positions does not fit KV slot ",
              slot, " (", cache.capacity(slot), " positions reserved)");
  AFD_REQUIRE(gains.k_gain.empty() || static_cast<int>(gains.k_gain.size()) == lay.layers,
              "synthetic KV fill: ", gains.k_gain.size(), " layer gains for ", lay.layers, " layers");
  const int bs = lay.block_size;
  const int blocks = (len + bs - 1) / bs;
  const int32_t* table = cache.block_table(slot);
  // One work item per (block, layer): bs positions per head, large enough to amortise scheduling. Rows are formed
  // in a buffer and written through the cache's store helpers, whatever its row layout.
  pool.parallel_for(blocks * lay.layers, [&](int item, int) {
    const int j = item / lay.layers, l = item % lay.layers;
    const uint16_t* gain = gains.k_gain.empty() ? nullptr : gains.k_gain[l];
    std::vector<float> kg(static_cast<size_t>(lay.k_dim), 1.0f), vg(static_cast<size_t>(lay.v_dim), 1.0f);
    for (int c = 0; gain && c < std::min(gains.k_gain_len, lay.k_dim); ++c) kg[c] = bf16_to_f32(gain[c]);
    std::vector<uint16_t> k(static_cast<size_t>(lay.k_dim)), v(static_cast<size_t>(lay.v_dim));
    const int rows = std::min(bs, len - j * bs);
    for (int h = 0; h < lay.kv_heads; ++h) {
      for (int r = 0; r < rows; ++r) {
        const uint64_t pos = static_cast<uint64_t>(j) * bs + r;
        // Distinct row keys: (layer, head, position, K|V) mixed with the seed; columns count up from the key.
        const uint64_t key = splitmix64(seed ^ splitmix64(((static_cast<uint64_t>(l) * lay.kv_heads + h) << 33) | (pos << 1)));
        fill_row(k.data(), lay.k_dim, key << 8, kg.data());
        cache.store_k(table[j], l, h, r, k.data());  // the cache's row layout
        if (lay.v_dim == 0) continue;
        fill_row(v.data(), lay.v_dim, (key << 8) ^ (uint64_t{1} << 63), vg.data());
        cache.store_v(table[j], l, h, r, v.data());
      }
    }
  });
}

}  // namespace afd::attn
