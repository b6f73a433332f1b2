// A request's generated text as it streams (afd-serve, afd-run --stop): ids are detokenized incrementally
// (StreamDecoder) and checked against the request's stop strings on the decoded text.
//
// Invariants: the concatenation of every piece returned by push() and finish() equals the decoded text cut just
// before the first occurrence of any stop string (the whole text when none occurs). Text that could still turn
// into a stop string (a suffix that is a proper prefix of one) is held back until it cannot; each piece is valid
// UTF-8 (a stop string starts at a character boundary, so cutting there keeps characters whole).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/stream_decoder.h"

namespace afd::tok {

class TextStream {
 public:
  TextStream(const Tokenizer& tk, std::vector<std::string> stop);

  // The text that becomes safe to emit with this token (may be empty). Once stopped(), returns "" for every id.
  std::string push(int32_t id);
  // The rest of the text at the end of generation (nothing when stopped).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::string release();  // emits what cannot start a stop string, keeps the rest in pending_

  StreamDecoder dec_;
  std::vector<std::string> stop_;
  std::string pending_;  // decoded, not yet emitted
  bool stopped_ = false;
};

}  // namespace afd::tok
