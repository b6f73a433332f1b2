// The synthetic KV fill (CpuAttention::fill_synthetic): every position of every layer of the slot is written with
// finite values of a sane scale, nothing outside it changes, and the values depend only on the seed.
#include <catch2/catch.hpp>

#include <cmath>
#include <utility>
#include <vector>

#include "attn_harness.h"
#include "util/error.h"

using namespace afd;
using namespace afd::test;

namespace {
bool is_nan_bf16(uint16_t v) { return (v & 0x7fff) > 0x7f80; }

// Every element of positions [0, len) of `slot` (K rows, then V rows), layer by layer, head by head, read through
// the cache's load helpers (either row layout).
std::vector<uint16_t> slot_values(attn::PagedKvCache& c, int slot, int len) {
  const attn::KvLayout& lay = c.layout();
  std::vector<uint16_t> out, k(static_cast<size_t>(lay.k_dim)), v(static_cast<size_t>(lay.v_dim));
  for (int l = 0; l < lay.layers; ++l)
    for (int h = 0; h < lay.kv_heads; ++h)
      for (int p = 0; p < len; ++p) {
        const int32_t b = c.block_table(slot)[p / lay.block_size];
        c.load_k(b, l, h, p % lay.block_size, k.data());
        out.insert(out.end(), k.begin(), k.end());
        if (lay.v_dim > 0) {
          c.load_v(b, l, h, p % lay.block_size, v.data());
          out.insert(out.end(), v.begin(), v.end());
        }
      }
  return out;
}

int64_t written_in_pool(attn::PagedKvCache& c) {
  const attn::KvLayout& lay = c.layout();
  int64_t n = 0;
  for (int64_t b = 0; b < c.total_blocks(); ++b)
    for (int l = 0; l < lay.layers; ++l) {
      const uint16_t* p = c.k_rows(static_cast<int32_t>(b), l, 0);
      for (int64_t i = 0; i < lay.layer_block_elems(); ++i) n += !is_nan_bf16(p[i]);
    }
  return n;
}
}  // namespace

// In both row layouts of the GQA caches (kv_pairs 1: K and V in dword pairs; 0: plain rows; MLA is always rows).
TEST_CASE("synthetic KV fill writes every position of every layer of its slot and nothing else", "[attn][cache]") {
  const std::pair<const char*, int> cases[] = {{"dsv2lite_tiny", -1}, {"qwen3moe_tiny", 1}, {"qwen3moe_tiny", 0},
                                               {"mixtral_tiny", 1}, {"mixtral_tiny", 0}};
  for (const auto& [name, kv_pairs] : cases) {
    INFO(name << " kv_pairs " << kv_pairs);
    attn::CpuAttnOptions o;
    o.threads = 2;
    o.block_size = 16;
    o.pool_blocks = 12;
    o.max_seqs = 4;
    o.kv_pairs = kv_pairs;
    attn::CpuAttention a(fixture_weights(name).bf16, o);
    attn::PagedKvCache& c = a.cache();
    const attn::KvLayout& lay = c.layout();
    CHECK((lay.row_layout == attn::KvRowLayout::kPairs) == (kv_pairs == 1));
    c.fill(kNanBf16);
    const int s0 = a.kv().open(), s1 = a.kv().open(), s2 = a.kv().open();
    REQUIRE(a.kv().reserve(s0, 20));
    REQUIRE(a.kv().reserve(s1, 45));  // 3 blocks; positions 37..47 of the last one stay unwritten (with pairs,
                                      // the high half of the V pair of positions 36 and 37 too)
    REQUIRE(a.kv().reserve(s2, 16));
    constexpr int kLen = 37;
    a.fill_synthetic(s1, kLen, 99);

    const std::vector<uint16_t> got = slot_values(c, s1, kLen);
    int64_t nan = 0;
    double sq = 0;
    for (uint16_t v : got) {
      nan += is_nan_bf16(v) || std::isinf(bf16_to_f32(v));
      sq += static_cast<double>(bf16_to_f32(v)) * bf16_to_f32(v);
    }
    CHECK(nan == 0);
    const double rms = std::sqrt(sq / static_cast<double>(got.size()));
    CHECK(rms > 0.05);
    CHECK(rms < 20.0);
    // Exactly the filled range is written: the pool's non-NaN count is its size, so slots s0, s2, the free blocks
    // and the tail of s1's last block are untouched.
    CHECK(written_in_pool(c) == static_cast<int64_t>(got.size()));
    CHECK(got.size() == static_cast<size_t>(kLen) * lay.layers * lay.kv_heads * (lay.k_dim + lay.v_dim));
    // Rows differ between positions and layers (not one row copied everywhere).
    const size_t row = static_cast<size_t>(lay.k_dim + lay.v_dim);
    CHECK(!std::equal(got.begin(), got.begin() + row, got.begin() + row));
    CHECK(!std::equal(got.begin(), got.begin() + row, got.end() - row));

    a.fill_synthetic(s1, kLen, 99);  // the same seed: the same values
    CHECK(slot_values(c, s1, kLen) == got);
    a.fill_synthetic(s1, kLen, 100);
    CHECK(slot_values(c, s1, kLen) != got);
    CHECK(written_in_pool(c) == static_cast<int64_t>(got.size()));

    CHECK_THROWS_WITH(a.fill_synthetic(s1, 49, 1), Catch::Matchers::Contains("does not fit KV slot"));
    a.kv().close(s2);
    CHECK_THROWS_AS(a.fill_synthetic(s2, 1, 1), afd::Error);  // closed slot
  }
}
