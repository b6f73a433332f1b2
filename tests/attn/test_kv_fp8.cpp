// The fp8 (e4m3) KV cache: the store rule (round to nearest even, saturate at 448), the e4m3 -> bf16 conversion
// kernels on every ISA this CPU has, loads in both row layouts, and the attention core over an fp8 cache, which
// must equal, bit for bit, the core over a bf16 cache holding the same (e4m3-rounded) values: GQA in pairs and in
// rows, MLA with 16 and 128 heads, several sequences of different lengths, decode and prefill, a sliding window,
// unused blocks poisoned with NaN.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "attn_harness.h"
#include "attn_cpu/kv_cache.h"
#include "attn_cpu/paged_attention.h"
#include "attn_cpu/thread_pool.h"
#include "cpu/attn_kernels.h"
#include "cpu/cpu_isa.h"
#include "util/numeric.h"

using namespace afd;
using afd::test::random_floats;

TEST_CASE("float32 -> e4m3 rounds to nearest even and saturates", "[attn][fp8]") {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;
    INFO("code " << c);
    REQUIRE(f32_to_fp8_e4m3(fp8_e4m3_to_f32(static_cast<uint8_t>(c))) == c);  // every value is its own code
  }
  // Between neighbours: below the midpoint -> lower, above -> upper, at it -> the even code.
  for (int c = 0; c < 0x7e; ++c) {
    const float lo = fp8_e4m3_to_f32(static_cast<uint8_t>(c)), hi = fp8_e4m3_to_f32(static_cast<uint8_t>(c + 1));
    const float mid = 0.5f * (lo + hi);
    INFO("between codes " << c << " and " << c + 1);
    CHECK(f32_to_fp8_e4m3(std::nextafter(mid, lo)) == c);
    CHECK(f32_to_fp8_e4m3(std::nextafter(mid, hi)) == c + 1);
    CHECK(f32_to_fp8_e4m3(mid) == (c % 2 == 0 ? c : c + 1));
    CHECK(f32_to_fp8_e4m3(-mid) == ((c % 2 == 0 ? c : c + 1) | 0x80));
  }
  CHECK(f32_to_fp8_e4m3(448.0f) == 0x7e);
  CHECK(f32_to_fp8_e4m3(465.0f) == 0x7e);
  CHECK(f32_to_fp8_e4m3(1e30f) == 0x7e);
  CHECK(f32_to_fp8_e4m3(-1e30f) == 0xfe);
  CHECK(f32_to_fp8_e4m3(INFINITY) == 0x7e);
  CHECK(f32_to_fp8_e4m3(NAN) == 0x7f);
  CHECK(f32_to_fp8_e4m3(1e-4f) == 0x00);  // below half the smallest subnormal (2^-10)
}

TEST_CASE("e4m3 -> bf16 kernels convert every code exactly on every ISA this CPU has", "[attn][fp8][kernels]") {
  std::vector<uint8_t> src(1000 + 37);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>((i * 73 + 11) % 256);  // every code, shuffled
  int tested = 0;
  for (cpu::Isa isa : cpu::kAllIsas) {
    const cpu::AttnKernels* k = cpu::kernels_for(isa);
    if (!k) continue;
    ++tested;
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{255},
                      static_cast<int64_t>(src.size())})
      for (int64_t at : {int64_t{0}, int64_t{3}}) {
        if (at + n > static_cast<int64_t>(src.size())) continue;
        INFO(cpu::isa_name(isa) << " n " << n << " at " << at);
        std::vector<uint16_t> got(static_cast<size_t>(n) + 16, 0x1234);  // past n must stay untouched
        k->fp8_to_bf16(src.data() + at, got.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          const uint8_t c = src[static_cast<size_t>(at + i)];
          const float want = fp8_e4m3_to_f32(c);
          const uint16_t g = got[static_cast<size_t>(i)];
          if (std::isnan(want)) {
            REQUIRE(g == ((c & 0x80) << 8 | 0x7fc0));
          } else {
            REQUIRE(g == f32_to_bf16(want));
            REQUIRE(bf16_to_f32(g) == want);  // exact
          }
        }
        for (size_t i = static_cast<size_t>(n); i < got.size(); ++i) REQUIRE(got[i] == 0x1234);
      }
  }
  REQUIRE(tested >= 1);
}

namespace {

// The bf16 value an fp8 cache holds for `v`.
uint16_t through_fp8(uint16_t v) { return f32_to_bf16(fp8_e4m3_to_f32(f32_to_fp8_e4m3(bf16_to_f32(v)))); }

}  // namespace

TEST_CASE("an fp8 KV cache stores rounded values and loads them back in both layouts", "[attn][fp8][cache]") {
  for (const auto rows : {attn::KvRowLayout::kRows, attn::KvRowLayout::kPairs}) {
    attn::PagedKvCache c(test::kv_layout(2, 18, 10, 16, rows, attn::KvDtype::kFp8E4m3), 3, 1);
    REQUIRE(c.layout().block_bytes() == int64_t{2} * 2 * 16 * (18 + 10));  // one byte per element
    c.fill(0x7fc0);
    std::vector<uint16_t> out(18);
    c.load_k(1, 1, 1, 5, out.data());
    for (uint16_t v : out) REQUIRE((v & 0x7fff) > 0x7f80);  // the NaN fill reads back as NaN
    const auto vals = random_floats(18 * 16, 5, -600.0f, 600.0f);
    for (int pos = 0; pos < 16; ++pos) {
      std::vector<uint16_t> k(18), v(10);
      for (int j = 0; j < 18; ++j) k[j] = f32_to_bf16(vals[pos * 18 + j] * (j % 3 == 0 ? 1e-3f : 1.0f));
      for (int j = 0; j < 10; ++j) v[j] = f32_to_bf16(vals[pos * 18 + 17 - j] * 0.01f);
      c.store_k(2, 1, 1, pos, k.data());
      c.store_v(2, 1, 1, pos, v.data());
      std::vector<uint16_t> kb(18), vb(10);
      c.load_k(2, 1, 1, pos, kb.data());
      c.load_v(2, 1, 1, pos, vb.data());
      for (int j = 0; j < 18; ++j) REQUIRE(kb[j] == through_fp8(k[j]));
      for (int j = 0; j < 10; ++j) REQUIRE(vb[j] == through_fp8(v[j]));
    }
    c.load_k(2, 0, 1, 5, out.data());  // another layer of the same block: untouched
    for (uint16_t v : out) REQUIRE((v & 0x7fff) > 0x7f80);
  }
  REQUIRE_THROWS_WITH(attn::parse_kv_dtype("fp16", "--kv-cache-dtype"),
                      Catch::Contains("--kv-cache-dtype") && Catch::Contains("fp16"));
  CHECK(attn::parse_kv_dtype("fp8", "x") == attn::KvDtype::kFp8E4m3);
  CHECK(attn::parse_kv_dtype("bf16", "x") == attn::KvDtype::kBf16);
}

namespace {

struct CoreCase {
  const char* name;
  int kv_heads, heads_per_kv, k_dim, v_dim, block;
  bool mla, pairs;
  int window;
};

// One call of the attention core over both caches; returns the fp8 and the bf16 outputs.
void run_both(const CoreCase& cc, const cpu::AttnKernels& kern, std::vector<uint16_t>& o8, std::vector<uint16_t>& o16) {
  const std::vector<int> cached = {0, 96, 1033, 5}, fresh = {7, 1, 1, 3};  // prefill, decode, long decode, chunk
  const int S = static_cast<int>(cached.size());
  const auto rows = cc.pairs ? attn::KvRowLayout::kPairs : attn::KvRowLayout::kRows;
  attn::PagedKvCache c8(test::kv_layout(cc.kv_heads, cc.k_dim, cc.v_dim, cc.block, rows, attn::KvDtype::kFp8E4m3), 80, S);
  attn::PagedKvCache c16(test::kv_layout(cc.kv_heads, cc.k_dim, cc.v_dim, cc.block, rows, attn::KvDtype::kBf16), 80, S);
  c8.fill(0x7fc0);
  c16.fill(0x7fc0);
  std::vector<int32_t> slots(S), start{0}, lens(cached.begin(), cached.end());
  const int layer = 1;
  for (int s = 0; s < S; ++s) {
    slots[s] = c8.open();
    REQUIRE(c16.open() == slots[s]);
    const int total = cached[s] + fresh[s];
    REQUIRE(c8.reserve(slots[s], total));
    REQUIRE(c16.reserve(slots[s], total));
    start.push_back(start.back() + fresh[s]);
    for (int pos = 0; pos < total; ++pos) {
      const int32_t blk = c8.block_table(slots[s])[pos / cc.block];
      REQUIRE(c16.block_table(slots[s])[pos / cc.block] == blk);
      for (int h = 0; h < cc.kv_heads; ++h) {
        auto k = random_floats(cc.k_dim, 1000 * s + 10 * pos + h, -3.0f, 3.0f);
        auto v = random_floats(std::max(cc.v_dim, 1), 7000 * s + 10 * pos + h, -3.0f, 3.0f);
        std::vector<uint16_t> kb(cc.k_dim), vb(cc.v_dim), kr(cc.k_dim), vr(cc.v_dim);
        for (int j = 0; j < cc.k_dim; ++j) kr[j] = through_fp8(kb[j] = f32_to_bf16(k[j] == 0 ? 0.25f : k[j]));
        for (int j = 0; j < cc.v_dim; ++j) vr[j] = through_fp8(vb[j] = f32_to_bf16(v[j] == 0 ? 0.25f : v[j]));
        c8.store_k(blk, layer, h, pos % cc.block, kb.data());
        c16.store_k(blk, layer, h, pos % cc.block, kr.data());
        if (cc.v_dim > 0) {
          c8.store_v(blk, layer, h, pos % cc.block, vb.data());
          c16.store_v(blk, layer, h, pos % cc.block, vr.data());
        }
      }
    }
  }
  const int T = start.back(), H = cc.kv_heads * cc.heads_per_kv, vd = cc.mla ? cc.k_dim - 64 : cc.v_dim;
  std::vector<uint16_t> q(static_cast<size_t>(T) * H * cc.k_dim);
  const auto qf = random_floats(q.size(), 99, -1.0f, 1.0f);
  for (size_t i = 0; i < q.size(); ++i) q[i] = f32_to_bf16(qf[i] == 0 ? 0.5f : qf[i]);
  attn::AttnCoreParams p;
  p.num_seqs = S;
  p.seq_slot = slots.data();
  p.token_start = start.data();
  p.cached_len = lens.data();
  p.layer = layer;
  p.heads_per_kv = cc.heads_per_kv;
  p.qk_dim = cc.k_dim;
  p.v_dim = vd;
  p.v_in_k = cc.mla;
  p.q = q.data();
  p.scale = 0.125f;
  p.sliding_window = cc.window;
  attn::ThreadPool pool(2, false);
  o8.assign(static_cast<size_t>(T) * H * vd, 0x7fc0);
  o16.assign(o8.size(), 0x7fc0);
  attn::PagedAttention a8(c8, kern, pool.size(), 64), a16(c16, kern, pool.size(), 64);
  p.o = o8.data();
  a8.run(p, pool);
  p.o = o16.data();
  a16.run(p, pool);
}

}  // namespace

TEST_CASE("attention over an fp8 KV cache equals attention over the same values in bf16, bit for bit",
          "[attn][fp8]") {
  const CoreCase cases[] = {
      {"GQA pairs", 2, 3, 40, 24, 32, false, true, 0},
      {"GQA rows, window", 3, 2, 24, 40, 16, false, false, 50},
      {"MLA 16 heads", 1, 16, 64 + 64, 0, 64, true, false, 0},
      {"MLA 20 heads", 1, 20, 96 + 64, 0, 48, true, false, 0},
  };
  int tested = 0;
  for (cpu::Isa isa : cpu::kAllIsas) {
    const cpu::AttnKernels* k = cpu::kernels_for(isa);
    if (!k) continue;
    ++tested;
    for (const CoreCase& cc : cases) {
      INFO(cpu::isa_name(isa) << " " << cc.name);
      std::vector<uint16_t> o8, o16;
      run_both(cc, *k, o8, o16);
      int differ = 0, nan = 0;
      for (size_t i = 0; i < o8.size(); ++i) {
        differ += o8[i] != o16[i];
        nan += (o8[i] & 0x7fff) > 0x7f80;
      }
      CHECK(nan == 0);
      CHECK(differ == 0);
    }
  }
  REQUIRE(tested >= 1);
}
