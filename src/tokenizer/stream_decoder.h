// Incremental detokenization for streaming generation: feed ids one at a time, get text pieces out.
//
// Invariants: every piece returned by push() and flush() is valid UTF-8, and the concatenation of all pieces equals
// tokenizer.decode(all ids, skip_special). Bytes of a character split across tokens are held back until the
// character is complete; a byte sequence that can never become valid is emitted as U+FFFD at once, exactly where
// decode() puts it; flush() turns a truncated trailing character into U+FFFD (as decode() does).
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace afd::tok {

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);

  // The text that id completes (often the token's text, sometimes empty, sometimes more than one token's worth).
  std::string push(int32_t id);
  // The rest; the decoder is then empty and can be reused for a new sequence.
  std::string flush();

 private:
  Tokenizer tokenizer_;
  bool skip_special_;
  std::string pending_;  // a well-formed but incomplete UTF-8 prefix (at most 3 bytes)
};

}  // namespace afd::tok
