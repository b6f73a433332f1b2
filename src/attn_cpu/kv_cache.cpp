#include "attn_cpu/kv_cache.h"

#include <cstdlib>
#include <cstring>

#include "cpu/attn_kernels.h"
#include "util/error.h"
#include "util/numeric.h"

namespace afd::attn {

namespace {

// bf16 bits -> e4m3 (the store rule in kv_cache.h), for every bf16 value: 64 KiB, built once.
const uint8_t* bf16_to_fp8_table() {
  static const std::vector<uint8_t> t = [] {
    std::vector<uint8_t> v(65536);
    for (int i = 0; i < 65536; ++i) v[i] = f32_to_fp8_e4m3(bf16_to_f32(static_cast<uint16_t>(i)));
    return v;
  }();
  return t.data();
}

}  // namespace

void PagedKvCache::FreeDeleter::operator()(uint8_t* p) const { std::free(p); }

uint16_t PagedKvCache::get(const uint8_t* base, int64_t e) const {
  if (layout_.dtype == KvDtype::kBf16) {
    uint16_t v;
    std::memcpy(&v, base + 2 * e, 2);
    return v;
  }
  uint16_t v;
  cpu::fp8_to_bf16_scalar(base + e, &v, 1);
  return v;
}

void PagedKvCache::put(uint8_t* base, int64_t e, uint16_t v) const {
  if (layout_.dtype == KvDtype::kBf16)
    std::memcpy(base + 2 * e, &v, 2);
  else
    base[e] = bf16_to_fp8_table()[v];
}

PagedKvCache::PagedKvCache(const KvLayout& layout, int64_t pool_blocks, int max_seqs)
    : layout_(layout), total_blocks_(pool_blocks) {
  AFD_REQUIRE(layout.block_size > 0 && layout.layers > 0 && layout.kv_heads > 0 && layout.k_dim > 0,
              "the KV cache layout needs positive block size, layers, heads and row width");
  AFD_REQUIRE(layout.row_layout == KvRowLayout::kRows || layout.pairs_possible(),
              "the paired KV layout needs separate V rows, an even K width and a block size that is a multiple of 16 "
              "(got k_dim ", layout.k_dim, ", v_dim ", layout.v_dim, ", block size ", layout.block_size, ")");
  AFD_REQUIRE(pool_blocks > 0 && pool_blocks < (int64_t{1} << 31), "the KV cache pool needs between 1 and 2^31 blocks (got ",
              pool_blocks, ")");
  AFD_REQUIRE(max_seqs > 0, "the KV cache needs at least one sequence slot");
  const int64_t bytes = pool_blocks * layout.block_bytes();
  void* p = nullptr;
  // 2 MiB alignment lets the kernel back the pool with transparent huge pages.
  if (posix_memalign(&p, size_t{2} << 20, static_cast<size_t>(bytes)) != 0 || !p)
    fail("cannot allocate the KV cache pool of ", pool_blocks, " blocks (", bytes / (1 << 20), " MiB)");
  pool_.reset(static_cast<uint8_t*>(p));
  free_.reserve(pool_blocks);
  for (int64_t b = pool_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
  slots_.resize(max_seqs);
  for (int s = max_seqs - 1; s >= 0; --s) free_slots_.push_back(s);
}

int PagedKvCache::open() {
  AFD_REQUIRE(!free_slots_.empty(), "the KV cache has no free sequence slot (all ", slots_.size(), " are open)");
  const int s = free_slots_.back();
  free_slots_.pop_back();
  slots_[s].open = true;
  slots_[s].blocks.clear();
  return s;
}

bool PagedKvCache::reserve(int slot, int total_len) {
  AFD_REQUIRE(slot >= 0 && slot < max_seqs() && slots_[slot].open, "KV cache slot ", slot, " is not open");
  AFD_REQUIRE(total_len >= 0, "cannot reserve a negative length (", total_len, ") in KV cache slot ", slot);
  Slot& s = slots_[slot];
  const int64_t need = (static_cast<int64_t>(total_len) + layout_.block_size - 1) / layout_.block_size;
  const int64_t have = static_cast<int64_t>(s.blocks.size());
  if (need <= have) return true;
  if (need - have > free_blocks()) return false;  // all or nothing: a failed reserve changes nothing
  for (int64_t i = have; i < need; ++i) {
    s.blocks.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void PagedKvCache::close(int slot) {
  AFD_REQUIRE(slot >= 0 && slot < max_seqs() && slots_[slot].open, "KV cache slot ", slot, " is not open");
  Slot& s = slots_[slot];
  for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) free_.push_back(*it);
  s.blocks.clear();
  s.open = false;
  free_slots_.push_back(slot);
}

int64_t PagedKvCache::capacity(int slot) const {
  AFD_REQUIRE(slot >= 0 && slot < max_seqs() && slots_[slot].open, "KV cache slot ", slot, " is not open");
  return static_cast<int64_t>(slots_[slot].blocks.size()) * layout_.block_size;
}

uint16_t* PagedKvCache::k_row(int32_t block, int layer, int kv_head, int pos) const {
  AFD_CHECK(layout_.row_layout == KvRowLayout::kRows && layout_.dtype == KvDtype::kBf16);
  return k_rows(block, layer, kv_head) + static_cast<int64_t>(pos) * layout_.k_dim;
}

uint16_t* PagedKvCache::v_row(int32_t block, int layer, int kv_head, int pos) const {
  AFD_CHECK(layout_.row_layout == KvRowLayout::kRows && layout_.dtype == KvDtype::kBf16);
  return v_rows(block, layer, kv_head) + static_cast<int64_t>(pos) * layout_.v_dim;
}

// Element indices in a section: kRows K[t][c] at t k_dim + c, V[t][c] at t v_dim + c; kPairs K[t][c] at
// 2 ((c / 2) block_size + t) + c % 2, V[t][c] at 2 ((t / 2) v_dim + c) + t % 2 (see the top of kv_cache.h).
int64_t PagedKvCache::k_elem(int pos, int c) const {
  return layout_.row_layout == KvRowLayout::kRows ? static_cast<int64_t>(pos) * layout_.k_dim + c
                                                  : 2 * (static_cast<int64_t>(c / 2) * layout_.block_size + pos) + c % 2;
}

int64_t PagedKvCache::v_elem(int pos, int c) const {
  return layout_.row_layout == KvRowLayout::kRows ? static_cast<int64_t>(pos) * layout_.v_dim + c
                                                  : 2 * (static_cast<int64_t>(pos / 2) * layout_.v_dim + c) + pos % 2;
}

// bf16 rows are stored as they come; every other case element by element.
void PagedKvCache::store_k(int32_t block, int layer, int kv_head, int pos, const uint16_t* row) {
  uint8_t* k = k_bytes(block, layer, kv_head);
  if (layout_.row_layout == KvRowLayout::kRows && layout_.dtype == KvDtype::kBf16) {
    std::memcpy(k + 2 * k_elem(pos, 0), row, 2 * static_cast<size_t>(layout_.k_dim));
    return;
  }
  for (int c = 0; c < layout_.k_dim; ++c) put(k, k_elem(pos, c), row[c]);
}

void PagedKvCache::store_v(int32_t block, int layer, int kv_head, int pos, const uint16_t* row) {
  uint8_t* v = v_bytes(block, layer, kv_head);
  if (layout_.row_layout == KvRowLayout::kRows && layout_.dtype == KvDtype::kBf16) {
    std::memcpy(v + 2 * v_elem(pos, 0), row, 2 * static_cast<size_t>(layout_.v_dim));
    return;
  }
  for (int c = 0; c < layout_.v_dim; ++c) put(v, v_elem(pos, c), row[c]);
}

void PagedKvCache::load_k(int32_t block, int layer, int kv_head, int pos, uint16_t* row) const {
  const uint8_t* k = k_bytes(block, layer, kv_head);
  for (int c = 0; c < layout_.k_dim; ++c) row[c] = get(k, k_elem(pos, c));
}

void PagedKvCache::load_v(int32_t block, int layer, int kv_head, int pos, uint16_t* row) const {
  const uint8_t* v = v_bytes(block, layer, kv_head);
  for (int c = 0; c < layout_.v_dim; ++c) row[c] = get(v, v_elem(pos, c));
}

void PagedKvCache::fill(uint16_t bits) {
  const int64_t n = total_blocks_ * layout_.layer_block_elems() * layout_.layers;
  uint8_t* p = pool_.get();
  if (layout_.dtype == KvDtype::kBf16) {
    for (int64_t i = 0; i < n; ++i) std::memcpy(p + 2 * i, &bits, 2);
  } else {
    std::memset(p, bf16_to_fp8_table()[bits], static_cast<size_t>(n));
  }
}

}  // namespace afd::attn
