#include "tokenizer/bpe.h"

#include <algorithm>
#include <bit>

#include "tokenizer/bytelevel.h"
#include "tokenizer/utf8.h"

namespace afd::tok {
namespace {

inline uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
inline size_t pair_slot(uint64_t key, size_t mask) { return (key * 0x9E3779B97F4A7C15ull >> 20) & mask; }

// Heap order: the lowest rank first, then the leftmost position (HF's Merge ordering).
inline bool later(const BpeScratch::Candidate& a, const BpeScratch::Candidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
}

}  // namespace

Bpe Bpe::from_json(const json& j, const JsonWhere& w, bool byte_level) {
  const std::string type = j.contains("type") ? json_type(j, w) : "BPE";
  if (type != "BPE")
    w.field("type").fail("is '", type, "'; afd supports only byte-level BPE models");
  if (!byte_level)
    w.fail("is a BPE model without a ByteLevel pre-tokenizer; afd supports only byte-level BPE (GPT-2 style)");
  if (j.contains("dropout") && !j.at("dropout").is_null() && j.at("dropout").get<double>() > 0)
    w.field("dropout").fail("is set; BPE dropout is a training feature afd does not apply");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (j.contains(key) && !j.at(key).is_null() && !json_string(j, w, key).empty())
      w.field(key).fail("is not empty, which byte-level BPE in afd does not support");

  Bpe bpe;
  bpe.ignore_merges_ = json_bool(j, w, "ignore_merges", false);
  const json& vocab = json_require(j, w, "vocab");
  if (!vocab.is_object()) w.field("vocab").fail("is not an object of token -> id");
  bpe.vocab_.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1ll << 30))
      w.field("vocab").field(token).fail("is not a token id");
    const auto v = id.get<int32_t>();
    bpe.vocab_.emplace(token, v);
    bpe.vocab_bound_ = std::max(bpe.vocab_bound_, v + 1);
  }

  std::string sym;
  for (int b = 0; b < 256; ++b) {
    sym.clear();
    append_utf8(sym, byte_to_codepoint(static_cast<uint8_t>(b)));
    bpe.byte_ids_[b] = bpe.find(sym);
  }

  const json& merges = json_require(j, w, "merges");
  if (!merges.is_array()) w.field("merges").fail("is not an array");
  bpe.merges_.assign(std::bit_ceil(std::max<size_t>(16, merges.size() * 2)), MergeEntry{kEmptyKey, 0, 0});
  std::string left, right;
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    const JsonWhere mw = w.field("merges").index(i);
    if (m.is_string()) {  // legacy "left right"
      const std::string& s = m.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) mw.fail("is not \"left right\"");
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      mw.fail("is neither \"left right\" nor [left, right]");
    }
    const int32_t l = bpe.find(left), r = bpe.find(right), merged = bpe.find(left + right);
    if (l < 0 || r < 0 || merged < 0)
      mw.fail("merges '", left, "' and '", right, "', but '", l < 0 ? left : r < 0 ? right : left + right,
              "' is not in model.vocab");
    bpe.insert_merge(l, r, static_cast<uint32_t>(i), merged);  // a repeated pair keeps the later rank, as in HF
  }
  return bpe;
}

void Bpe::insert_merge(int32_t left, int32_t right, uint32_t rank, int32_t merged) {
  const uint64_t key = pair_key(left, right);
  const size_t mask = merges_.size() - 1;
  size_t i = pair_slot(key, mask);
  while (merges_[i].key != kEmptyKey && merges_[i].key != key) i = (i + 1) & mask;
  merges_[i] = {key, rank, merged};
}

const Bpe::MergeEntry* Bpe::find_merge(int32_t left, int32_t right) const {
  const uint64_t key = pair_key(left, right);
  const size_t mask = merges_.size() - 1;
  for (size_t i = pair_slot(key, mask);; i = (i + 1) & mask) {
    const MergeEntry& e = merges_[i];
    if (e.key == key) return &e;
    if (e.key == kEmptyKey) return nullptr;
  }
}

void Bpe::encode_word(std::string_view word, std::vector<int32_t>& out, BpeScratch& s) const {
  if (word.size() == 1) {  // single bytes never merge
    if (const int32_t id = byte_ids_[static_cast<uint8_t>(word[0])]; id >= 0) out.push_back(id);
    return;
  }
  const bool cacheable = s.use_cache && word.size() <= WordCache::kMaxWordBytes;
  const uint64_t h = cacheable ? WordCache::hash(word) : 0;
  std::span<const int32_t> cached;
  if (cacheable && s.cache.find(word, h, cached)) {
    out.insert(out.end(), cached.begin(), cached.end());
    return;
  }
  const size_t first = out.size();
  merge_word(word, out, s);
  if (cacheable) s.cache.insert(word, h, std::span<const int32_t>(out.data() + first, out.size() - first));
}

void Bpe::merge_word(std::string_view word, std::vector<int32_t>& out, BpeScratch& s) const {
  if (ignore_merges_) {
    s.mapped.clear();
    append_bytelevel(s.mapped, word);
    if (const int32_t id = find(s.mapped); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  // Bytes without a single-byte token are dropped, as HF does for a vocabulary without unk_token.
  s.symbols.clear();
  for (const char c : word) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id < 0) continue;
    const auto n = static_cast<int32_t>(s.symbols.size());
    s.symbols.push_back({id, n - 1, n + 1, true});
  }
  if (s.symbols.empty()) return;
  s.symbols.back().next = -1;

  s.heap.clear();
  for (size_t i = 0; i + 1 < s.symbols.size(); ++i)
    if (const MergeEntry* m = find_merge(s.symbols[i].id, s.symbols[i + 1].id))
      s.heap.push_back({m->rank, static_cast<uint32_t>(i), m->merged});
  std::make_heap(s.heap.begin(), s.heap.end(), later);

  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), later);
    const BpeScratch::Candidate top = s.heap.back();
    s.heap.pop_back();
    auto& cur = s.symbols[top.pos];
    if (!cur.alive || cur.next < 0) continue;
    // Stale candidate: the pair at pos changed since it was queued.
    const MergeEntry* m = find_merge(cur.id, s.symbols[cur.next].id);
    if (!m || m->merged != top.merged) continue;
    auto& right = s.symbols[cur.next];
    cur.id = top.merged;
    right.alive = false;
    cur.next = right.next;
    if (cur.next >= 0) s.symbols[cur.next].prev = static_cast<int32_t>(top.pos);
    auto push = [&](int32_t pos) {
      const auto& l = s.symbols[pos];
      if (const MergeEntry* e = find_merge(l.id, s.symbols[l.next].id)) {
        s.heap.push_back({e->rank, static_cast<uint32_t>(pos), e->merged});
        std::push_heap(s.heap.begin(), s.heap.end(), later);
      }
    };
    if (cur.prev >= 0) push(cur.prev);
    if (cur.next >= 0) push(static_cast<int32_t>(top.pos));
  }
  for (int32_t i = 0; i >= 0; i = s.symbols[i].next) out.push_back(s.symbols[i].id);
}

}  // namespace afd::tok
