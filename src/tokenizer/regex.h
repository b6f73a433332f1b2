// A compiled PCRE2 pattern (UTF + UCP, JIT when the platform allows) for the tokenizer's Split steps. Oniguruma
// patterns from tokenizer.json (\p{L}, \p{N}, lookahead, (?i:...)) compile unchanged; UCP makes \s, \w and \d
// Unicode-aware as they are in Oniguruma, and \s / \S are rewritten so that U+180E is not white space (as in
// Oniguruma). Known remaining difference: Oniguruma's \w also matches marks (\p{M}), PCRE2 10.42's does not (only
// the Whitespace pre-tokenizer uses \w; DeepSeek, Qwen3 and pystdlib-moe do not). The compiled code is immutable and
// shared; each thread matching it needs its own RegexScratch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace afd::tok {

// A byte range [begin, end) of some text.
struct Span {
  uint32_t begin = 0, end = 0;
  uint32_t size() const { return end - begin; }
};

// Per-thread PCRE2 match state (match data, JIT stack); reused across calls so matching does not allocate.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;

 private:
  friend class Regex;
  struct State;
  std::unique_ptr<State> s_;
};

class Regex {
 public:
  // Compiles pattern (a regex, or a literal string when literal); throws afd::Error naming `where` on bad syntax.
  Regex(const std::string& pattern, bool literal, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends every non-empty match in text, left to right, as spans offset by base. text must be valid UTF-8
  // (checked once by the caller; PCRE2's own check is skipped, it would make matching quadratic).
  void find_all(std::string_view text, uint32_t base, std::vector<Span>& out, RegexScratch& scratch) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
  std::string where_;
};

}  // namespace afd::tok
