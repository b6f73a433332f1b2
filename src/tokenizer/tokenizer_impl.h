// The state behind afd::tok::Tokenizer (internal to the tokenizer library).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace afd::tok {

// Everything one encode() call mutates; reused between calls (see Tokenizer::Impl::state).
struct EncodeState {
  PreTokenizerScratch pre;
  BpeScratch bpe;
  std::vector<Segment> segments, inner;
  std::vector<Span> pieces;
  std::string normalized, word_text;
};

struct Tokenizer::Impl {
  std::string path;  // tokenizer.json
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  Bpe bpe;
  std::vector<AddedToken> added;
  AddedTokenMatcher raw_matcher;         // added tokens with normalized=false: matched on the input
  AddedTokenMatcher normalized_matcher;  // the others: matched on the normalized text
  std::unordered_map<std::string, int32_t> added_ids;  // content -> id

  std::vector<int32_t> prefix_ids, suffix_ids;  // what add_special puts around the text

  int32_t vocab_size = 0;
  std::string bytes;               // token_bytes(id) = bytes[offsets[id], offsets[id + 1])
  std::vector<uint32_t> offsets;   // vocab_size + 1 entries
  std::vector<uint8_t> known, special;

  std::string bos_token, eos_token, chat_template;
  int32_t bos_id = -1;
  std::vector<int32_t> eos_ids;

  // One EncodeState shared by all callers; a caller that finds it busy (another thread) uses a private one, so
  // encode never waits and single-threaded use never allocates scratch after warm-up.
  mutable std::mutex state_mutex;
  mutable std::unique_ptr<EncodeState> state = std::make_unique<EncodeState>();
};

// Builds the Impl from tokenizer.json (+ tokenizer_config.json); defined in tokenizer_load.cpp.
std::shared_ptr<Tokenizer::Impl> load_tokenizer(const std::string& path);

}  // namespace afd::tok
