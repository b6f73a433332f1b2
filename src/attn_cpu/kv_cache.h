// The paged KV cache in host memory: one pool of fixed-size blocks allocated at construction, a block table per
// sequence slot, allocation on reserve() and release on close().
//
// Layout of one block (block b holds positions [j*block_size, (j+1)*block_size) of the sequence whose table
// has b at index j), for every layer l, at element offset (b * layers + l) * layer_block_elems():
//   [kv_heads][ K: [block_size][k_dim] | V: [block_size][v_dim] ]
// so everything one (layer, kv head) reads in a block is one contiguous run (K rows then V rows), which is what
// a decode stream over the cache wants.
// GQA: k_dim = v_dim = head_dim. MLA (absorbed, MODEL_SPEC 2.4): kv_heads = 1, k_dim = kv_lora + rope (the
// normalised latent followed by the rotated k_pe), v_dim = 0: the values are the first kv_lora columns of K.
// Storage is bf16 (KvDtype::kBf16). A quantised dtype would add per-(block, layer, head) scales after the V
// section of each layer block; the addressing helpers below are the only place that knows the layout.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "iface/attn_backend.h"

namespace afd::attn {

enum class KvDtype { kBf16 };

struct KvLayout {
  int layers = 0;      // model layers sharing the block
  int kv_heads = 0;    // K/V heads per layer (1 for MLA)
  int k_dim = 0;       // K row width (MLA: kv_lora_rank + qk_rope_dim)
  int v_dim = 0;       // V row width (0 for MLA: V aliases the latent part of K)
  int block_size = 0;  // positions per block
  KvDtype dtype = KvDtype::kBf16;

  int64_t layer_block_elems() const { return static_cast<int64_t>(kv_heads) * block_size * (k_dim + v_dim); }
  int64_t block_bytes() const { return layer_block_elems() * layers * static_cast<int64_t>(sizeof(uint16_t)); }
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

  uint16_t* k_rows(int32_t block, int layer, int kv_head) const {
    return pool_.get() + (static_cast<int64_t>(block) * layout_.layers + layer) * layout_.layer_block_elems() +
           static_cast<int64_t>(kv_head) * layout_.block_size * (layout_.k_dim + layout_.v_dim);
  }
  uint16_t* v_rows(int32_t block, int layer, int kv_head) const {
    return k_rows(block, layer, kv_head) + static_cast<int64_t>(layout_.block_size) * layout_.k_dim;
  }

  // Sets every element of the pool to `bits` (tests fill it with NaN so reads of unwritten rows show up).
  void fill(uint16_t bits);

 private:
  struct Slot {
    bool open = false;
    std::vector<int32_t> blocks;
  };
  struct FreeDeleter {
    void operator()(uint16_t* p) const;
  };
  KvLayout layout_;
  int64_t total_blocks_ = 0;
  std::unique_ptr<uint16_t, FreeDeleter> pool_;
  std::vector<int32_t> free_;  // free block ids (a stack)
  std::vector<Slot> slots_;
  std::vector<int> free_slots_;
};

}  // namespace afd::attn
