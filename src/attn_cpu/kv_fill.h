// Synthetic KV contents for benchmarks: random rows of the scale a real prefill leaves, written straight into the
// paged cache, so decode at long contexts can be measured without computing the prefill.
//
// Invariants: exactly positions [0, len) of `slot` are written, in every layer and KV head (K rows, and V rows when
// the layout has them); nothing else in the pool changes. Values depend only on (seed, layer, position, head,
// column), never on the thread that wrote them. Every value is finite: ~N(0, 1) times the row's gain.
#pragma once

#include <cstdint>
#include <vector>

#include "attn_cpu/kv_cache.h"
#include "attn_cpu/thread_pool.h"

namespace afd::attn {

struct KvFillGains {
  // Per layer, bf16 gains of the first `k_gain_len` columns of each K row (the RMSNorm weight a real row was
  // multiplied by: MLA kv_a_layernorm over the latent, GQA k_norm); an empty vector or a null entry means gain 1.
  std::vector<const uint16_t*> k_gain;
  int k_gain_len = 0;
};

// Throws afd::Error when `slot` is not open or has fewer than `len` positions reserved.
void fill_kv_synthetic(PagedKvCache& cache, ThreadPool& pool, int slot, int len, uint64_t seed,
                       const KvFillGains& gains);

}  // namespace afd::attn
