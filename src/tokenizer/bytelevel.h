// The GPT-2 byte-level alphabet: every byte 0..255 is shown as one printable code point, so that BPE vocabularies
// can be stored as text. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68
// bytes map, in order, to U+0100.. (so ' ' is 'Ġ' U+0120 and '\n' is 'Ċ' U+010A).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace afd::tok {

// The code point that shows byte b.
char32_t byte_to_codepoint(uint8_t b);

// The byte that code point cp shows, or -1 when cp is not in the alphabet.
int codepoint_to_byte(char32_t cp);

// Appends the byte-level text (UTF-8 of the mapped code points) of raw bytes.
void append_bytelevel(std::string& out, std::string_view bytes);

// The raw bytes a token stands for, as HF's ByteLevel decoder computes them: the mapped bytes when every code point
// of the token is in the alphabet, else the token's own UTF-8 (added tokens such as "<｜User｜>"). token is UTF-8.
std::string bytelevel_token_bytes(std::string_view token);

}  // namespace afd::tok
