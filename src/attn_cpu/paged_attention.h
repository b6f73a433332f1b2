// The attention core over the paged cache, flash-decoding style. A call is planned into work items
// (sequence, kv head, tile of query rows, KV chunk); each item runs block by block (the paired layout) or span by
// span of several blocks (the rows layout) with an online softmax (running max m, sum l, unnormalised
// accumulator) into its slot of the partial buffer, and a second pass merges
// the chunks of each (sequence, kv head, tile): O = sum_j acc_j e^(m_j - M) / sum_j l_j e^(m_j - M).
// Splitting the KV range is what lets one long sequence use every worker.
//
// Query rows of a (sequence, kv head) are r = i * heads_per_kv + j for new token i and head j of the group
// (token-major), so one tile shares every K/V block it reads between heads and tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "attn_cpu/kv_cache.h"
#include "attn_cpu/thread_pool.h"
#include "cpu/attn_kernels.h"

namespace afd::attn {

struct AttnCoreParams {
  int num_seqs = 0;
  const int32_t* seq_slot = nullptr;     // [num_seqs] cache slot of each sequence
  const int32_t* token_start = nullptr;  // [num_seqs + 1] first token of each sequence in q / o
  const int32_t* cached_len = nullptr;   // [num_seqs] positions before this step; token i sits at cached_len + i
  int layer = 0;
  int heads_per_kv = 0;                  // query heads sharing one kv head (GQA group; MLA: all heads)
  int qk_dim = 0;                        // width of q and K rows (MLA: kv_lora + rope)
  int v_dim = 0;                         // width of V rows and of o (MLA: kv_lora; V = K[:, :kv_lora])
  bool v_in_k = false;                   // MLA: values are the first v_dim columns of the K rows
  const uint16_t* q = nullptr;           // [tokens, kv_heads * heads_per_kv, qk_dim] bf16, RoPE applied
  uint16_t* o = nullptr;                 // [tokens, kv_heads * heads_per_kv, v_dim] bf16 out
  float scale = 1.0f;                    // softmax scale
  int sliding_window = 0;                // 0 = full causal; else key t is seen by query p iff p - W < t <= p
};

class PagedAttention {
 public:
  static constexpr int kMaxRows = 128;  // query rows per work item (the tile): all 128 MLA heads of a token
  // kRows items with at most this many query rows (MLA decode with 16 heads, GQA decode in the rows layout) pack
  // Q^T into pairs once and run qk_qpacked per block: the AMX kernel then reads K rows straight from the cache
  // instead of packing K^T per block for one 16-row tile. More rows amortise that packing (qk), as in V3 decode.
  static constexpr int kMaxQPackedRows = 16;
  // kRows items run in spans of up to this many positions (several cache blocks): qk_qpacked (or, with more
  // rows, qk) per block into the span's score columns, then one softmax step, one accumulator rescale and one
  // pv_vpacked over the span's value rows packed into pairs, so the per-step costs (accumulator tiles loaded and
  // stored, softmax and rescale passes) are paid once per span instead of once per block. With 128 rows (V3
  // decode) the accumulators are 256 KB, so this matters most there (bench/RESULTS.md).
  static constexpr int kSpan = cpu::kMaxBlockRows;

  // min_chunk: the shortest KV range worth a work item of its own (rounded up to whole blocks).
  // items_per_worker: how many work items a call aims for per worker when it splits KV ranges (more even out
  // workers that run at different speeds; each costs a partial accumulator written and merged).
  PagedAttention(const PagedKvCache& cache, const cpu::AttnKernels& kernels, int workers, int min_chunk,
                 int items_per_worker = kItemsPerWorker);
  static constexpr int kItemsPerWorker = 4;

  void run(const AttnCoreParams& p, ThreadPool& pool);
  const cpu::AttnKernels& kernels() const { return *kernels_; }

 private:
  struct Item {
    int seq, kv_head, row0, rows;  // rows [row0, row0 + rows) of (seq, kv_head)
    int kv_begin, kv_end;          // positions of this chunk
    int64_t partial;               // float offset of [m[rows], l[rows], acc[rows][v_dim]] in partial_
  };
  struct Group {                   // the chunks of one (seq, kv head, tile), merged together
    int first_item, num_items;
  };
  struct Scratch {                 // per worker, sized at construction
    std::vector<uint16_t> q;       // [kMaxRows][qk_dim]
    std::vector<uint32_t> qt;      // Q^T pairs of a tile of <= kMaxQPackedRows rows (cpu::pack_qt_pairs)
    std::vector<float> s;          // [kMaxRows][block_size] by blocks, [kMaxRows][kSpan] in spans
    std::vector<uint16_t> p;       // the same shape, bf16 probabilities
    std::vector<uint32_t> vp;      // kRows: a span's value rows in pairs, [kSpan / 2][round_up(v width, 16)]
    std::vector<uint16_t> kv;      // fp8 caches: a block's (or span's, [kSpan] rows) K and V sections as bf16
  };
  void plan(const AttnCoreParams& p, int workers);
  void run_item(const AttnCoreParams& p, const Item& it, Scratch& sc);
  // fp8 caches: K rows [r0, r0 + nr) of one (block, layer, kv head) section into k as bf16, and (a separate V
  // section) its V rows into v.
  void fp8_rows(int layer, int kv_head, int32_t block, int r0, int nr, uint16_t* k, uint16_t* v) const;
  // kRows: the cache bytes a decode step reads next after positions below tn (the K rows of the next block, then
  // its V rows when V has a section of its own), for prefetching; nothing (count 0) past the item's range.
  struct NextRows {
    const uint8_t* bytes = nullptr;
    int64_t count = 0;
  };
  NextRows next_rows(const AttnCoreParams& p, const Item& it, const int32_t* table, int tn) const;
  // One online-softmax step of a tile over scores sc.s [rows][stride] of positions [t0, t0 + nt), the
  // accumulators rescaled; sc.p gets the bf16 probabilities.
  void softmax_step(const AttnCoreParams& p, Scratch& sc, int rows, int t0, int nt, int stride, const int* lo,
                    const int* hi, float* m, float* l, float* acc) const;
  // run_item's loop for kRows items (with <= kMaxQPackedRows rows, Q^T already packed into sc.qt).
  void run_spans(const AttnCoreParams& p, const Item& it, Scratch& sc, const int* lo, const int* hi, float* m,
                 float* l, float* acc);
  void merge(const AttnCoreParams& p, const Group& g);

  const PagedKvCache& cache_;
  const cpu::AttnKernels* kernels_;
  int min_chunk_;
  int items_per_worker_;
  std::vector<Scratch> scratch_;
  // Plan of the current call; vectors keep their capacity across calls (steady state allocates nothing).
  std::vector<Item> items_;
  std::vector<Group> groups_;
  std::vector<float> partial_;
};

}  // namespace afd::attn
