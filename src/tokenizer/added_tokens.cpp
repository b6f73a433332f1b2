#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cstring>
#include <utf8proc.h>

#include "tokenizer/utf8.h"

namespace afd::tok {
namespace {

// HF's word characters for single_word: alphanumeric or '_'.
bool is_word_char(char32_t c) {
  if (c == '_') return true;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

}  // namespace

void AddedTokenMatcher::build(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns) {
  tokens_ = tokens;
  nodes_.assign(1, Node{});
  for (size_t t = 0; t < patterns.size(); ++t) {
    if (patterns[t].empty()) continue;
    int32_t node = 0;
    for (const char c : patterns[t]) {
      const auto b = static_cast<uint8_t>(c);
      int32_t next = child(node, b);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        auto& edges = nodes_[node].next;
        edges.insert(std::lower_bound(edges.begin(), edges.end(), std::make_pair(b, int32_t{-1})), {b, next});
        nodes_.emplace_back();
      }
      node = next;
    }
    if (nodes_[node].token < 0) nodes_[node].token = static_cast<int32_t>(t);  // duplicates: the first one wins
  }
  root_.fill(-1);
  for (const auto& [b, n] : nodes_[0].next) root_[b] = n;
  first_byte_ = nodes_[0].next.size() == 1 ? nodes_[0].next[0].first : -1;
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t b) const {
  const auto& edges = nodes_[node].next;
  const auto it = std::lower_bound(edges.begin(), edges.end(), std::make_pair(b, int32_t{-1}));
  return it != edges.end() && it->first == b ? it->second : -1;
}

void AddedTokenMatcher::split(std::string_view text, Span span, std::vector<Segment>& out) const {
  uint32_t gap = span.begin;  // start of the text not yet emitted
  uint32_t i = span.begin;
  while (i < span.end) {
    if (first_byte_ >= 0) {  // e.g. every DeepSeek / Qwen added token starts with '<'
      const void* at = std::memchr(text.data() + i, first_byte_, span.end - i);
      if (!at) break;
      i = static_cast<uint32_t>(static_cast<const char*>(at) - text.data());
    }
    int32_t node = root_[static_cast<uint8_t>(text[i])];
    if (node < 0) {
      ++i;
      continue;
    }
    // Longest pattern starting at i.
    int32_t best = -1;
    uint32_t best_end = 0;
    for (uint32_t k = i + 1;; ++k) {
      if (nodes_[node].token >= 0) best = nodes_[node].token, best_end = k;
      if (k >= span.end || (node = child(node, static_cast<uint8_t>(text[k]))) < 0) break;
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const AddedToken& tok = tokens_[best];
    uint32_t start = i, stop = best_end;
    if (tok.single_word) {
      const bool left_ok = start == span.begin || !is_word_char(prev_codepoint(text, start));
      size_t at = stop;
      const bool right_ok = stop == span.end || !is_word_char(next_codepoint(text, at));
      if (!left_ok || !right_ok) {
        i = stop;  // the matcher resumes after the rejected match, like aho-corasick's find_iter
        continue;
      }
    }
    if (tok.lstrip)
      while (start > gap && is_unicode_whitespace(prev_codepoint(text, start)))
        do --start;
        while ((static_cast<uint8_t>(text[start]) & 0xC0) == 0x80);
    if (tok.rstrip)
      while (stop < span.end) {
        size_t at = stop;
        if (!is_unicode_whitespace(next_codepoint(text, at))) break;
        stop = static_cast<uint32_t>(at);
      }
    if (gap < start) out.push_back({{gap, start}, -1});
    out.push_back({{start, stop}, tok.id});
    gap = i = stop;
  }
  if (gap < span.end) out.push_back({{gap, span.end}, -1});
}

}  // namespace afd::tok
