// tokenizer.json "model" of type BPE: vocabulary, merges by rank, and the per-word merge loop.
// Invariant: every id in vocab_ is < vocab_bound(); merges_ maps a pair of ids to (rank, merged id) where rank is the
// merge's index in model.merges (lower merges first) and the merged id is vocab[left + right].
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/json_where.h"
#include "tokenizer/word_cache.h"

namespace afd::tok {

// Buffers reused across words so that the merge loop does not allocate in the steady state.
struct BpeScratch {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // linked list over surviving symbols; -1 at the ends
    bool alive;
  };
  struct Candidate {
    uint32_t rank, pos;
    int32_t merged;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::string mapped;  // ignore_merges: the word's byte-level spelling
  WordCache cache;
  bool use_cache = true;  // off for short-lived scratch, where filling the cache costs more than it saves
};

class Bpe {
 public:
  // j is the "model" object; byte_level says whether the pre-tokenizer has a ByteLevel step (required).
  static Bpe from_json(const json& j, const JsonWhere& where, bool byte_level);

  // Appends the ids of one word (raw UTF-8 bytes, mapped to byte-level symbols here).
  void encode_word(std::string_view word, std::vector<int32_t>& out, BpeScratch& s) const;

  // The id of a vocabulary entry (its byte-level spelling, e.g. "Ġthe").
  int32_t find(std::string_view token) const {
    const auto it = vocab_.find(token);
    return it == vocab_.end() ? -1 : it->second;
  }
  // 1 + the largest id in the vocabulary.
  int32_t vocab_bound() const { return vocab_bound_; }
  // Calls f(id, token) for every vocabulary entry.
  template <typename F>
  void for_each_token(F&& f) const {
    for (const auto& [token, id] : vocab_) f(id, token);
  }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct MergeEntry {
    uint64_t key;  // (left << 32) | right, kEmptyKey when unused
    uint32_t rank;
    int32_t merged;
  };
  static constexpr uint64_t kEmptyKey = ~uint64_t{0};

  const MergeEntry* find_merge(int32_t left, int32_t right) const;
  void insert_merge(int32_t left, int32_t right, uint32_t rank, int32_t merged);
  void merge_word(std::string_view word, std::vector<int32_t>& out, BpeScratch& s) const;

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<MergeEntry> merges_;  // open addressing, power-of-two size, load <= 1/2
  int32_t byte_ids_[256] = {};      // the id of each byte's single-symbol token (-1 when absent)
  int32_t vocab_bound_ = 0;
  bool ignore_merges_ = false;
};

}  // namespace afd::tok
