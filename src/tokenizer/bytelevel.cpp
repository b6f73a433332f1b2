#include "tokenizer/bytelevel.h"

#include <array>

#include "tokenizer/utf8.h"

namespace afd::tok {
namespace {

struct Tables {
  std::array<char32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // indexed by code point; the alphabet ends below U+0144

  Tables() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<char32_t>(b) : next++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t byte_to_codepoint(uint8_t b) { return tables().to_cp[b]; }

int codepoint_to_byte(char32_t cp) { return cp < tables().to_byte.size() ? tables().to_byte[cp] : -1; }

void append_bytelevel(std::string& out, std::string_view bytes) {
  for (const char c : bytes) append_utf8(out, byte_to_codepoint(static_cast<uint8_t>(c)));
}

std::string bytelevel_token_bytes(std::string_view token) {
  std::string out;
  size_t i = 0;
  while (i < token.size()) {
    const int b = codepoint_to_byte(next_codepoint(token, i));
    if (b < 0) return std::string(token);
    out.push_back(static_cast<char>(b));
  }
  return out;
}

}  // namespace afd::tok
