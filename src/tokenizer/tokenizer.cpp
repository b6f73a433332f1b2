#include "tokenizer/tokenizer.h"

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace afd::tok {
namespace {

// Encodes text that holds no raw-matched added token: normalize, match the normalized added tokens, pre-tokenize
// each remaining segment and BPE-encode its words.
void encode_text(const Tokenizer::Impl& m, std::string_view text, EncodeState& st, std::vector<int32_t>& ids) {
  if (m.normalizer.is_identity()) st.normalized.assign(text);
  else m.normalizer.apply(text, st.normalized, st.pre.regex);
  const Span whole{0, static_cast<uint32_t>(st.normalized.size())};
  st.inner.clear();
  if (m.normalized_matcher.empty()) st.inner.push_back({whole, -1});
  else m.normalized_matcher.split(st.normalized, whole, st.inner);
  for (const Segment& seg : st.inner) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    // The pre-tokenizer may rewrite its text (add_prefix_space), so each segment gets its own buffer.
    st.word_text.assign(st.normalized, seg.span.begin, seg.span.size());
    st.pieces.assign(1, Span{0, seg.span.size()});
    m.pre_tokenizer.split(st.word_text, st.pieces, st.pre);
    const std::string_view words = st.word_text;
    for (const Span& p : st.pieces) m.bpe.encode_word(words.substr(p.begin, p.size()), ids, st.bpe);
  }
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& path) { return Tokenizer(load_tokenizer(path)); }

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  encode_into(text, add_special, ids);
  return ids;
}

void Tokenizer::encode_into(std::string_view text, bool add_special, std::vector<int32_t>& ids) const {
  const Impl& m = *impl_;
  const size_t valid = utf8_valid_prefix(text);
  AFD_REQUIRE(valid == text.size(), "Cannot tokenize the text: it is not valid UTF-8 (ill-formed byte 0x", std::hex,
              static_cast<int>(static_cast<uint8_t>(text[valid])), std::dec, " at byte offset ", valid, ").");
  AFD_REQUIRE(text.size() < (size_t{1} << 31), "Cannot tokenize the text: ", text.size(),
              " bytes is more than the 2 GiB a single encode() accepts.");

  std::unique_lock lock(m.state_mutex, std::try_to_lock);
  std::unique_ptr<EncodeState> own;
  if (!lock.owns_lock()) {
    own = std::make_unique<EncodeState>();
    own->bpe.use_cache = false;
  }
  EncodeState& st = own ? *own : *m.state;

  if (add_special) ids.insert(ids.end(), m.prefix_ids.begin(), m.prefix_ids.end());
  const Span whole{0, static_cast<uint32_t>(text.size())};
  st.segments.clear();
  if (m.raw_matcher.empty()) st.segments.push_back({whole, -1});
  else m.raw_matcher.split(text, whole, st.segments);
  for (const Segment& seg : st.segments) {
    if (seg.id >= 0) ids.push_back(seg.id);
    else encode_text(m, text.substr(seg.span.begin, seg.span.size()), st, ids);
  }
  if (add_special) ids.insert(ids.end(), m.suffix_ids.begin(), m.suffix_ids.end());
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::string bytes;
  for (const int32_t id : ids) {
    if (id < 0 || id >= m.vocab_size || !m.known[id] || (skip_special && m.special[id])) continue;
    bytes.append(token_bytes(id));
  }
  if (is_valid_utf8(bytes)) return bytes;
  std::string text;
  append_lossy_utf8(text, bytes);
  return text;
}

int Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  if (const auto it = impl_->added_ids.find(std::string(token)); it != impl_->added_ids.end()) return it->second;
  const int32_t id = impl_->bpe.find(token);
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  const Impl& m = *impl_;
  if (id < 0 || id >= m.vocab_size) return {};
  return std::string_view(m.bytes).substr(m.offsets[id], m.offsets[id + 1] - m.offsets[id]);
}

bool Tokenizer::is_special(int32_t id) const { return id >= 0 && id < impl_->vocab_size && impl_->special[id]; }
int Tokenizer::bos_id() const { return impl_->bos_id; }
std::vector<int32_t> Tokenizer::eos_ids() const { return impl_->eos_ids; }
const std::string& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_token; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
const std::string& Tokenizer::path() const { return impl_->path; }

}  // namespace afd::tok
