// tokenizer.json "pre_tokenizer": splits normalized text into the words that BPE encodes independently.
// Supported: Split (regex or string pattern; behaviors Removed, Isolated, MergedWithPrevious, MergedWithNext,
// Contiguous; invert), ByteLevel (add_prefix_space, use_regex with the GPT-2 pattern), Digits, Whitespace,
// WhitespaceSplit, Punctuation and Sequence of these. Each step maps every current piece to sub-pieces exactly as HF
// tokenizers does (empty pieces are dropped); ByteLevel additionally makes the model work on byte-level symbols.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_where.h"
#include "tokenizer/regex.h"

namespace afd::tok {

// Buffers reused across calls so that splitting does not allocate in the steady state.
struct PreTokenizerScratch {
  RegexScratch regex;
  std::vector<Span> matches, next;
  std::string text;
};

class PreTokenizer {
 public:
  // j is the "pre_tokenizer" value (null: the whole text is one word).
  static PreTokenizer from_json(const json& j, const JsonWhere& where);

  // True when a ByteLevel step is present: words are then encoded as byte-level symbols.
  bool byte_level() const { return byte_level_; }

  // Replaces pieces (spans of text, initially the whole segment) by the words of the pre-tokenization. May rewrite
  // text (ByteLevel add_prefix_space inserts spaces); the output spans always refer to the final text.
  void split(std::string& text, std::vector<Span>& pieces, PreTokenizerScratch& s) const;

 private:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    std::shared_ptr<const Regex> regex;  // null: the ByteLevel add_prefix_space step
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
  };
  void add(const json& j, const JsonWhere& where);
  void add_regex(const std::string& pattern, bool literal, Behavior behavior, bool invert, const JsonWhere& where);
  static void apply(const Step& step, std::string_view text, const std::vector<Span>& in, std::vector<Span>& out,
                    PreTokenizerScratch& s);
  static void prefix_space(std::string& text, std::vector<Span>& pieces, PreTokenizerScratch& s);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace afd::tok
