// UTF-8 helpers shared by the tokenizer: validation, code point iteration, and lossy decoding that replaces each
// maximal ill-formed subsequence with U+FFFD (the Unicode "substitution of maximal subparts" practice, which is what
// Rust's String::from_utf8_lossy does inside HF tokenizers and Python's errors="replace").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace afd::tok {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Classifies the bytes at the start of s (s non-empty):
//   > 0: a complete well-formed character of that many bytes;
//   = 0: a well-formed but truncated prefix that runs to the end of s (more bytes could complete it);
//   < 0: an ill-formed maximal subpart of -result bytes (never completes, whatever follows).
int utf8_step(std::string_view s);

// Byte offset of the first ill-formed or truncated sequence, or s.size() when s is valid UTF-8.
size_t utf8_valid_prefix(std::string_view s);
inline bool is_valid_utf8(std::string_view s) { return utf8_valid_prefix(s) == s.size(); }

// Decodes the code point at s[i] and advances i. Precondition: s is valid UTF-8 and i < s.size().
inline char32_t next_codepoint(std::string_view s, size_t& i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  const int n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  char32_t cp = b0 & (0x7F >> n);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

// The code point that ends at s[end) (s valid UTF-8, end > 0).
char32_t prev_codepoint(std::string_view s, size_t end);

void append_utf8(std::string& out, char32_t cp);

// Appends bytes to out, replacing every ill-formed maximal subpart (a truncated tail included) with U+FFFD.
void append_lossy_utf8(std::string& out, std::string_view bytes);

// Unicode White_Space (what Rust's char::is_whitespace tests).
bool is_unicode_whitespace(char32_t cp);

}  // namespace afd::tok
