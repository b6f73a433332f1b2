// The attention side of afd, as the engine sees it: the embedding lookup and the attention half of each layer over
// a micro-batch of tokens from many sequences, with the KV cache it owns. Implementation: src/attn_cpu (CPU worker
// threads, paged KV cache in host memory). A GPU attention lane can implement the same interface later.
#pragma once

#include <cstdint>
#include <string>

#include "model/config.h"
#include "util/error.h"

namespace afd {

// One micro-batch. The tokens of a sequence are contiguous and in position order.
struct AttnBatch {
  int num_tokens = 0;
  int num_seqs = 0;
  const int32_t* seq_slot = nullptr;    // [num_seqs] KV-cache slot of each sequence (from KvManager::open)
  const int32_t* token_start = nullptr; // [num_seqs + 1] token offsets of each sequence in the micro-batch
  const int32_t* cached_len = nullptr;  // [num_seqs] positions cached before this step; new tokens take positions
                                        // cached_len[s], cached_len[s] + 1, ...
};

// KV-cache bookkeeping the scheduler needs: admission is bounded by free blocks.
class KvManager {
 public:
  virtual ~KvManager() = default;
  virtual int open() = 0;                              // a new empty sequence slot; throws afd::Error when none free
  virtual bool reserve(int slot, int total_len) = 0;   // make room for total_len positions; false if the pool is full
  virtual void close(int slot) = 0;                    // free the slot and all its blocks
  virtual int64_t free_blocks() const = 0;
  virtual int64_t total_blocks() const = 0;
  virtual int block_size() const = 0;                  // positions per block
};

class AttnBackend {
 public:
  virtual ~AttnBackend() = default;
  virtual std::string name() const = 0;
  virtual const ModelConfig& config() const = 0;
  virtual KvManager& kv() = 0;

  // x [n, hidden] bf16 = embed_tokens[ids]
  virtual void embed(const int32_t* ids, int n, uint16_t* x) = 0;

  // x [b.num_tokens, hidden] bf16, in place: x = x + Attn_layer(input_layernorm(x)); appends the new tokens' K/V
  // (or MLA latents) for `layer` to each sequence's cache. Every slot must have been reserved for
  // cached_len + its token count. Causal within the micro-batch (chunked prefill) and over the cache.
  virtual void attn_half(int layer, const AttnBatch& b, uint16_t* x) = 0;

  // Benchmark facility (GenRequest::synthetic_context): writes random values of the scale a real prefill leaves
  // (GQA: K and V; MLA: the normalised latent and the rotated k_pe) into positions [0, len) of `slot` in every
  // layer, deterministically from `seed`, touching nothing else. The slot must have been reserved for len
  // positions. Costs memory bandwidth, not a forward pass. Backends that cannot do it throw afd::Error.
  virtual void fill_synthetic(int slot, int len, uint64_t seed) {
    (void)slot, (void)len, (void)seed;
    fail(name(), " cannot fill its KV cache with synthetic values (not supported)");
  }
};

}  // namespace afd
