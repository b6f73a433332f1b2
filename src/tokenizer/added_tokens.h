// tokenizer.json "added_tokens": tokens matched verbatim in the input before pre-tokenization (special tokens such
// as "<｜begin▁of▁sentence｜>" or "<|im_start|>", and plain added tokens such as "<think>"). Matching is
// leftmost-longest over a byte trie, honoring lstrip / rstrip (absorb neighbouring whitespace) and single_word
// (match only between word boundaries), as HF's AddedVocabulary does.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace afd::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
};

// A piece of input: an added token (id >= 0) or text to normalize and pre-tokenize (id < 0).
struct Segment {
  Span span;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  // patterns[i] is the text to find for tokens[i] (the content, or its normalized form).
  void build(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns);
  bool empty() const { return nodes_.size() <= 1; }

  // Appends the segments of text[span] to out: the matched tokens and the (non-empty) text between them.
  void split(std::string_view text, Span span, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
    int32_t token = -1;                              // index into tokens_ when a pattern ends here
  };
  int32_t child(int32_t node, uint8_t b) const;

  std::vector<Node> nodes_;
  std::array<int32_t, 256> root_{};  // the root's children, for a fast first-byte test
  int first_byte_ = -1;               // the only byte a pattern starts with, when there is one (memchr scan)
  std::vector<AddedToken> tokens_;
};

}  // namespace afd::tok
