// The paged KV cache in host memory: one pool of fixed-size blocks allocated at construction, a block table per
// sequence slot, allocation on reserve() and release on close().
//
// Sections of one block (block b holds positions [j*block_size, (j+1)*block_size) of the sequence whose table
// has b at index j), for every layer l, at element offset (b * layers + l) * layer_block_elems():
//   [kv_heads][ K section: block_size * k_dim bf16 | V section: block_size * v_dim bf16 ]
// so everything one (layer, kv head) reads in a block is one contiguous run (K then V), which is what a decode
// stream over the cache wants. Inside the sections the rows are stored in one of two layouts (KvRowLayout):
//   kRows:  K[t][c] at k_rows()[t * k_dim + c], V[t][c] at v_rows()[t * v_dim + c]: plain rows.
//   kPairs: the dword-pair layouts the vdpbf16ps / AMX kernels read directly (cpu::QkPackedParams, PvPackedParams):
//           K section = kp[j][t], j < k_dim / 2, t < block_size (row stride block_size pairs), the pair
//             (K[t][2j], K[t][2j + 1]) at elements 2 (j * block_size + t) and 2 (j * block_size + t) + 1;
//           V section = vp[tp][c], tp < block_size / 2, c < v_dim (row stride v_dim pairs), the pair
//             (V[2tp][c], V[2tp + 1][c]) at elements 2 (tp * v_dim + c) and 2 (tp * v_dim + c) + 1.
//           Invariants: v_dim > 0, k_dim even, block_size a multiple of 16 (a 16-lane load of kp at a multiple of
//           16 below round_up(nt, 16) never leaves the block). Positions never written hold whatever was there.
// GQA: k_dim = v_dim = head_dim, either layout. MLA (absorbed, MODEL_SPEC 2.4): kv_heads = 1, k_dim = kv_lora +
// rope (the normalised latent followed by the rotated k_pe), v_dim = 0: the values are the first kv_lora columns of
// the K rows, so MLA is always kRows. Elements are bf16 (KvDtype::kBf16) or float8_e4m3fn (kFp8E4m3: one byte per
// element at the same element index, written as e4m3(bf16 value) rounded to nearest even and saturated at +-448,
// scale 1, as vLLM's fp8 KV cache; read back exactly as bf16). The helpers below are the only place that knows
// where a position's values live: write through store_k / store_v (any layout, any dtype), read rows with load_k /
// load_v; readers of whole sections take k_bytes / v_bytes and the element size.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "iface/attn_backend.h"
#include "util/kv_dtype.h"

namespace afd::attn {

using afd::KvDtype;  // util/kv_dtype.h: the element types, their names and parser
using afd::kv_dtype_bytes;
using afd::kv_dtype_name;
using afd::parse_kv_dtype;
enum class KvRowLayout { kRows, kPairs };  // see the top of this file

struct KvLayout {
  int layers = 0;      // model layers sharing the block
  int kv_heads = 0;    // K/V heads per layer (1 for MLA)
  int k_dim = 0;       // K row width (MLA: kv_lora_rank + qk_rope_dim)
  int v_dim = 0;       // V row width (0 for MLA: V aliases the latent part of K)
  int block_size = 0;  // positions per block
  KvDtype dtype = KvDtype::kBf16;
  KvRowLayout row_layout = KvRowLayout::kRows;

  // Whether kPairs can hold this shape (separate V, even k_dim, block_size a multiple of 16).
  bool pairs_possible() const { return v_dim > 0 && k_dim % 2 == 0 && block_size % 16 == 0; }
  int64_t layer_block_elems() const { return static_cast<int64_t>(kv_heads) * block_size * (k_dim + v_dim); }
  int elem_bytes() const { return kv_dtype_bytes(dtype); }
  int64_t block_bytes() const { return layer_block_elems() * layers * elem_bytes(); }
};

class PagedKvCache : public KvManager {
 public:
  // pool_blocks blocks of layout.block_bytes() each, max_seqs slots. Throws afd::Error when the pool cannot be
  // allocated.
  PagedKvCache(const KvLayout& layout, int64_t pool_blocks, int max_seqs);

  int open() override;
  bool reserve(int slot, int total_len) override;
  void close(int slot) override;
  int64_t free_blocks() const override { return static_cast<int64_t>(free_.size()); }
  int64_t total_blocks() const override { return total_blocks_; }
  int block_size() const override { return layout_.block_size; }

  const KvLayout& layout() const { return layout_; }
  int max_seqs() const { return static_cast<int>(slots_.size()); }
  // Positions `slot` has blocks for; throws afd::Error for a slot that is not open.
  int64_t capacity(int slot) const;
  // The block table of `slot`: capacity(slot) / block_size() block ids.
  const int32_t* block_table(int slot) const { return slots_[slot].blocks.data(); }

  // Section bases of one (block, layer, kv head): K then V, laid out as `layout().row_layout` says, elements of
  // layout().elem_bytes() bytes.
  uint8_t* k_bytes(int32_t block, int layer, int kv_head) const {
    return pool_.get() + ((static_cast<int64_t>(block) * layout_.layers + layer) * layout_.layer_block_elems() +
                          static_cast<int64_t>(kv_head) * layout_.block_size * (layout_.k_dim + layout_.v_dim)) *
                             layout_.elem_bytes();
  }
  uint8_t* v_bytes(int32_t block, int layer, int kv_head) const {
    return k_bytes(block, layer, kv_head) + static_cast<int64_t>(layout_.block_size) * layout_.k_dim * layout_.elem_bytes();
  }
  // The same sections as bf16 elements: bf16 caches only.
  uint16_t* k_rows(int32_t block, int layer, int kv_head) const {
    return reinterpret_cast<uint16_t*>(k_bytes(block, layer, kv_head));
  }
  uint16_t* v_rows(int32_t block, int layer, int kv_head) const {
    return reinterpret_cast<uint16_t*>(v_bytes(block, layer, kv_head));
  }

  // kRows bf16 caches only: the K / V row of position `pos` (0 <= pos < block_size) in a block (rows of a block
  // are consecutive: row stride k_dim / v_dim).
  uint16_t* k_row(int32_t block, int layer, int kv_head, int pos) const;
  uint16_t* v_row(int32_t block, int layer, int kv_head, int pos) const;

  // One position's K row (k_dim bf16 values) / V row (v_dim) into / out of a block, in either layout and dtype
  // (fp8: rounded on store, exact on load); 0 <= pos < block_size. A store writes exactly that position's values.
  void store_k(int32_t block, int layer, int kv_head, int pos, const uint16_t* row);
  void store_v(int32_t block, int layer, int kv_head, int pos, const uint16_t* row);
  void load_k(int32_t block, int layer, int kv_head, int pos, uint16_t* row) const;
  void load_v(int32_t block, int layer, int kv_head, int pos, uint16_t* row) const;

  // Sets every element of the pool to the bf16 value `bits` in the cache's dtype (tests fill it with NaN so reads
  // of unwritten rows show up).
  void fill(uint16_t bits);

 private:
  struct Slot {
    bool open = false;
    std::vector<int32_t> blocks;
  };
  struct FreeDeleter {
    void operator()(uint8_t* p) const;
  };
  // Element index of position pos, column c in a K / V section (the row layout's rule).
  int64_t k_elem(int pos, int c) const;
  int64_t v_elem(int pos, int c) const;
  // Element e of the section at `base` (bytes), as bf16 / from bf16, in the cache's dtype.
  uint16_t get(const uint8_t* base, int64_t e) const;
  void put(uint8_t* base, int64_t e, uint16_t v) const;
  KvLayout layout_;
  int64_t total_blocks_ = 0;
  std::unique_ptr<uint8_t, FreeDeleter> pool_;
  std::vector<int32_t> free_;  // free block ids (a stack)
  std::vector<Slot> slots_;
  std::vector<int> free_slots_;
};

}  // namespace afd::attn
