// A bounded cache from a word's bytes to its BPE ids, so that repeated words (most of them, in real text) skip the
// merge loop. Open addressing over one key arena and one id arena; when it fills up it is cleared, never resized,
// so memory stays bounded and lookups never allocate.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace afd::tok {

class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 64;  // longer words are rare; they are not cached
  static constexpr size_t kSlots = 1 << 16;    // power of two
  static constexpr size_t kMaxEntries = kSlots / 2;

  // The cached ids of word, or false.
  bool find(std::string_view word, uint64_t hash, std::span<const int32_t>& ids) const;
  void insert(std::string_view word, uint64_t hash, std::span<const int32_t> ids);

  static uint64_t hash(std::string_view word) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then a final mix
    for (const char c : word) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
    return h ^ (h >> 29);
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_offset = 0, key_len = 0, ids_offset = 0, ids_len = 0;
    bool used = false;
  };
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> ids_;
  size_t entries_ = 0;
};

inline bool WordCache::find(std::string_view word, uint64_t hash, std::span<const int32_t>& ids) const {
  if (slots_.empty()) return false;
  for (size_t i = hash & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
    const Slot& s = slots_[i];
    if (!s.used) return false;
    if (s.hash == hash && s.key_len == word.size() && std::string_view(keys_).substr(s.key_offset, s.key_len) == word) {
      ids = std::span<const int32_t>(ids_.data() + s.ids_offset, s.ids_len);
      return true;
    }
  }
}

inline void WordCache::insert(std::string_view word, uint64_t hash, std::span<const int32_t> ids) {
  if (word.size() > kMaxWordBytes) return;
  if (slots_.empty() || entries_ >= kMaxEntries) {
    slots_.assign(kSlots, Slot{});
    keys_.clear();
    ids_.clear();
    entries_ = 0;
  }
  size_t i = hash & (kSlots - 1);
  while (slots_[i].used) i = (i + 1) & (kSlots - 1);
  slots_[i] = {hash, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(word.size()),
               static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(ids.size()), true};
  keys_.append(word);
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  ++entries_;
}

}  // namespace afd::tok
