// afd's tokenizer: a byte-level BPE tokenizer read from a Hugging Face tokenizer.json (+ tokenizer_config.json from
// the same directory when present) that produces exactly the ids HF `tokenizers` produces, and decodes them back.
//
//   auto tok = afd::tok::Tokenizer::load("models/pystdlib-moe/tokenizer.json");
//   std::vector<int32_t> ids = tok.encode("def f(x):\n", /*add_special=*/true);   // [BOS] + ...
//   std::string text = tok.decode(ids, /*skip_special=*/true);
//
// Encoding: added tokens are matched first (those with normalized=false on the raw text, the others after
// normalization), the text between them is normalized, pre-tokenized and BPE-encoded word by word. With
// add_special, BOS/EOS are added as tokenizer_config.json says (add_bos_token / add_eos_token) or, when it says
// nothing, as tokenizer.json's post_processor (TemplateProcessing, Bert, Roberta) says: HF transformers'
// encode(text, add_special_tokens=True). Input that is not valid UTF-8 is rejected with afd::Error.
// Decoding follows HF's ByteLevel decoder: token bytes are concatenated and invalid UTF-8 is replaced by U+FFFD;
// ids outside the vocabulary decode to nothing (as in HF). A Tokenizer is cheap to copy (shared, immutable state)
// and safe to use from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace afd::tok {

class Tokenizer {
 public:
  // path: a tokenizer.json, or a directory holding one. Throws afd::Error naming the file and field on a malformed
  // or unsupported file.
  static Tokenizer load(const std::string& path);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const;
  // Appends to ids (lets callers reuse one vector).
  void encode_into(std::string_view text, bool add_special, std::vector<int32_t>& ids) const;

  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // 1 + the largest id of the vocabulary and the added tokens.
  int vocab_size() const;
  // The id of a token by its vocabulary spelling (byte-level, e.g. "Ġthe") or an added token's content.
  std::optional<int32_t> token_id(std::string_view token) const;
  // The raw bytes id stands for (empty for an unknown id); what decode() concatenates before UTF-8 repair.
  std::string_view token_bytes(int32_t id) const;
  bool is_special(int32_t id) const;

  // tokenizer_config.json's bos_token, or -1 when there is none.
  int bos_id() const;
  // tokenizer_config.json's eos_token (empty when there is none).
  std::vector<int32_t> eos_ids() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  // tokenizer_config.json's chat_template (empty when there is none).
  const std::string& chat_template() const;
  // The tokenizer.json this was loaded from, for messages.
  const std::string& path() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace afd::tok
