#include "tokenizer/stream_decoder.h"

#include "tokenizer/utf8.h"

namespace afd::tok {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tokenizer_.is_special(id)) return {};
  pending_.append(tokenizer_.token_bytes(id));
  // Emit every complete character; replace ill-formed subparts; keep a truncated tail for the next token.
  // This is the same left-to-right scan append_lossy_utf8 does over the whole byte stream, so the pieces concatenate
  // to decode()'s result.
  std::string out;
  const std::string_view bytes = pending_;
  size_t i = 0;
  while (i < bytes.size()) {
    const int n = utf8_step(bytes.substr(i));
    if (n == 0) break;
    if (n > 0) {
      out.append(bytes.data() + i, static_cast<size_t>(n));
      i += static_cast<size_t>(n);
    } else {
      out.append(kReplacementChar);
      i += static_cast<size_t>(-n);
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  if (!pending_.empty()) out.append(kReplacementChar);  // pending_ is always one truncated character
  pending_.clear();
  return out;
}

}  // namespace afd::tok
