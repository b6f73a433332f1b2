// The paged KV cache (allocation, free, exhaustion) and the worker pool.
#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <stdexcept>

#include "attn_harness.h"
#include "attn_cpu/kv_cache.h"
#include "attn_cpu/thread_pool.h"
#include "util/error.h"

using namespace afd;
using namespace afd::test;

TEST_CASE("paged KV cache allocates, frees and reports exhaustion", "[attn][cache]") {
  attn::KvLayout lay = kv_layout(3, 8, 8);
  attn::PagedKvCache c(lay, 5, 2);
  CHECK(c.total_blocks() == 5);
  const int a = c.open();
  CHECK(c.reserve(a, 64));  // 4 blocks
  CHECK(c.free_blocks() == 1);
  CHECK(c.capacity(a) == 64);
  CHECK_FALSE(c.reserve(a, 97));  // needs 7 blocks in all: refused, nothing taken
  CHECK(c.free_blocks() == 1);
  const int b = c.open();
  CHECK_THROWS_AS(c.open(), afd::Error);  // both slots in use
  CHECK(c.reserve(b, 16));
  CHECK_FALSE(c.reserve(b, 17));
  // Distinct blocks: every (block, layer, head) region is disjoint.
  std::set<const uint16_t*> seen;
  for (int s : {a, b})
    for (int64_t j = 0; j < c.capacity(s) / 16; ++j)
      for (int l = 0; l < 2; ++l)
        for (int hh = 0; hh < 3; ++hh) {
          CHECK(seen.insert(c.k_rows(c.block_table(s)[j], l, hh)).second);
          CHECK(seen.insert(c.v_rows(c.block_table(s)[j], l, hh)).second);
        }
  c.close(a);
  CHECK(c.free_blocks() == 4);
  CHECK(c.reserve(b, 80));
  CHECK_THROWS_AS(c.close(a), afd::Error);  // already closed
  CHECK_THROWS_AS(c.reserve(a, 1), afd::Error);
}

// KvRowLayout::kPairs puts K[t][c] at kp element 2 ((c / 2) * block_size + t) + c % 2 and V[t][c] at vp element
// 2 ((t / 2) * v_dim + c) + t % 2 of the (block, layer, head) sections; a store writes only its own position.
TEST_CASE("paired KV layout: stores land where the kernels read, loads give the rows back", "[attn][cache]") {
  attn::KvLayout lay = kv_layout(2, 6, 5);
  lay.row_layout = attn::KvRowLayout::kPairs;
  attn::PagedKvCache c(lay, 3, 1);
  c.fill(kNanBf16);
  auto kval = [](int t, int col) { return static_cast<uint16_t>(0x3f80 + t * 16 + col); };
  auto vval = [](int t, int col) { return static_cast<uint16_t>(0x4080 + t * 16 + col); };
  const int block = 1, layer = 1, head = 1;
  for (int t : {0, 3, 4, 15}) {
    uint16_t k[6], v[5];
    for (int j = 0; j < 6; ++j) k[j] = kval(t, j);
    for (int j = 0; j < 5; ++j) v[j] = vval(t, j);
    c.store_k(block, layer, head, t, k);
    c.store_v(block, layer, head, t, v);
  }
  const uint16_t* kp = c.k_rows(block, layer, head);
  const uint16_t* vp = c.v_rows(block, layer, head);
  CHECK(vp == kp + 16 * 6);  // V section right after the K section
  int64_t written = 0;
  for (int64_t i = 0; i < lay.layer_block_elems() * lay.layers * c.total_blocks(); ++i)
    written += c.k_rows(0, 0, 0)[i] != kNanBf16;
  CHECK(written == 4 * (6 + 5));
  for (int t : {0, 3, 4, 15}) {
    for (int col = 0; col < 6; ++col) CHECK(kp[2 * ((col / 2) * 16 + t) + col % 2] == kval(t, col));
    for (int col = 0; col < 5; ++col) CHECK(vp[2 * ((t / 2) * 5 + col) + t % 2] == vval(t, col));
    uint16_t k[6], v[5];
    c.load_k(block, layer, head, t, k);
    c.load_v(block, layer, head, t, v);
    for (int col = 0; col < 6; ++col) CHECK(k[col] == kval(t, col));
    for (int col = 0; col < 5; ++col) CHECK(v[col] == vval(t, col));
  }
  CHECK(vp[2 * (2 * 5 + 0) + 1] == kNanBf16);  // position 5 (pair row 2, high half) was never written

  attn::KvLayout bad = lay;
  bad.block_size = 24;  // not a multiple of 16
  CHECK_FALSE(bad.pairs_possible());
  CHECK_THROWS_AS(attn::PagedKvCache(bad, 1, 1), afd::Error);
  bad = lay;
  bad.v_dim = 0;  // MLA: V aliases K
  CHECK_THROWS_AS(attn::PagedKvCache(bad, 1, 1), afd::Error);
  bad = lay;
  bad.k_dim = 7;
  CHECK_THROWS_AS(attn::PagedKvCache(bad, 1, 1), afd::Error);
}

TEST_CASE("attn_half reports an exhausted pool as an error", "[attn][cache]") {
  attn::CpuAttnOptions o;
  o.threads = 2;
  o.block_size = 16;
  o.pool_blocks = 4;
  o.max_seqs = 4;
  attn::CpuAttention a(fixture_weights("qwen3moe_tiny").bf16, o);
  const int h = a.config().hidden_size;
  const int s0 = a.kv().open();
  REQUIRE(a.kv().reserve(s0, 64));
  CHECK_FALSE(a.kv().reserve(s0, 65));
  const int s1 = a.kv().open();
  CHECK_FALSE(a.kv().reserve(s1, 1));
  std::vector<uint16_t> x = random_x(2, h, 3);
  const int32_t slots[2] = {s0, s1}, start[3] = {0, 1, 2}, cached[2] = {0, 0};
  AttnBatch b{2, 2, slots, start, cached};
  try {
    a.attn_half(0, b, x.data());
    FAIL("attn_half ran without KV room");
  } catch (const afd::Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("reserve") != std::string::npos);
    CHECK(msg.find("0 of 4 blocks free") != std::string::npos);
  }
  a.kv().close(s0);
  CHECK(a.kv().reserve(s1, 1));
  const int32_t one_slot = s1, one_start[2] = {0, 1}, zero = 0;
  AttnBatch b1{1, 1, &one_slot, one_start, &zero};
  a.attn_half(0, b1, x.data());
  CHECK(std::isfinite(bf16_to_f32(x[0])));
}

TEST_CASE("the worker pool runs every item once and forwards exceptions", "[attn][pool]") {
  attn::ThreadPool pool(3, false);
  std::vector<std::atomic<int>> hits(1000);
  for (int rep = 0; rep < 20; ++rep) pool.parallel_for(1000, [&](int i, int w) {
    REQUIRE(w >= 0);
    REQUIRE(w < 3);
    hits[i].fetch_add(1);
  });
  for (auto& h : hits) CHECK(h.load() == 20);
  CHECK_THROWS_AS(pool.parallel_for(100, [](int i, int) {
    if (i == 42) throw std::runtime_error("item 42");
  }), std::runtime_error);
  int sum = 0;
  pool.parallel_for(1, [&](int i, int) { sum += i + 1; });
  CHECK(sum == 1);
}
