#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include "tokenizer/utf8.h"

namespace afd::tok {
namespace {

bool is_ascii(std::string_view s) {
  for (const char c : s)
    if (static_cast<uint8_t>(c) >= 0x80) return false;
  return true;
}

// Unicode normalization of s in place; ASCII text is invariant under all four forms and skips utf8proc.
void unicode_normalize(std::string& s, utf8proc_option_t form) {
  if (is_ascii(s)) return;
  utf8proc_uint8_t* dst = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                              static_cast<utf8proc_ssize_t>(s.size()), &dst,
                              static_cast<utf8proc_option_t>(form | UTF8PROC_STABLE));
  if (n < 0) afd::fail("Unicode normalization failed: ", utf8proc_errmsg(n), ".");
  s.assign(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  std::free(dst);
}

}  // namespace

Normalizer Normalizer::from_json(const json& j, const JsonWhere& where) {
  Normalizer n;
  if (!j.is_null()) n.add(j, where);
  return n;
}

void Normalizer::add(const json& j, const JsonWhere& w) {
  const std::string type = json_type(j, w);
  if (type == "Sequence") {
    const json& list = json_require(j, w, "normalizers");
    if (!list.is_array()) w.field("normalizers").fail("is not an array");
    for (size_t i = 0; i < list.size(); ++i) add(list[i], w.field("normalizers").index(i));
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    const Kind k = type == "NFC" ? Kind::kNfc : type == "NFD" ? Kind::kNfd : type == "NFKC" ? Kind::kNfkc : Kind::kNfkd;
    steps_.push_back({k, {}, false, false, nullptr});
  } else if (type == "Lowercase") {
    steps_.push_back({Kind::kLowercase, {}, false, false, nullptr});
  } else if (type == "Strip") {
    steps_.push_back({Kind::kStrip, {}, json_bool(j, w, "strip_left", true), json_bool(j, w, "strip_right", true),
                      nullptr});
  } else if (type == "Prepend") {
    steps_.push_back({Kind::kPrepend, json_string(j, w, "prepend"), false, false, nullptr});
  } else if (type == "Replace") {
    const json& pattern = json_require(j, w, "pattern");
    const bool literal = pattern.contains("String");
    if (!literal && !pattern.contains("Regex")) w.field("pattern").fail("has neither \"String\" nor \"Regex\"");
    const JsonWhere pw = w.field("pattern");
    const std::string text = json_string(pattern, pw, literal ? "String" : "Regex");
    auto re = std::make_shared<const Regex>(text, literal, pw.file + ": field '" + pw.path + "'");
    steps_.push_back({Kind::kReplace, json_string(j, w, "content"), false, false, std::move(re)});
  } else {
    w.field("type").fail("names the normalizer '", type,
                         "', which afd does not support (supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, "
                         "Strip, Prepend, Replace)");
  }
}

void Normalizer::apply(std::string_view in, std::string& out, RegexScratch& scratch) const {
  out.assign(in);
  std::string tmp;
  for (const Step& step : steps_) apply_step(step, out, tmp, scratch);
}

void Normalizer::apply_step(const Step& step, std::string& s, std::string& tmp, RegexScratch& scratch) {
  switch (step.kind) {
    case Kind::kNfc: return unicode_normalize(s, UTF8PROC_COMPOSE);
    case Kind::kNfd: return unicode_normalize(s, UTF8PROC_DECOMPOSE);
    case Kind::kNfkc: return unicode_normalize(s, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
    case Kind::kNfkd: return unicode_normalize(s, static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
    case Kind::kLowercase: {
      // Simple (one-to-one) lowercase mapping; Rust's full mapping differs only for a few characters such as U+0130.
      tmp.clear();
      for (size_t i = 0; i < s.size();) append_utf8(tmp, utf8proc_tolower(next_codepoint(s, i)));
      s.swap(tmp);
      return;
    }
    case Kind::kStrip: {
      size_t b = 0, e = s.size();
      while (step.left && b < e) {
        size_t next = b;
        if (!is_unicode_whitespace(next_codepoint(s, next))) break;
        b = next;
      }
      while (step.right && e > b && is_unicode_whitespace(prev_codepoint(s, e))) {
        do --e;
        while ((static_cast<uint8_t>(s[e]) & 0xC0) == 0x80);
      }
      s = s.substr(b, e - b);
      return;
    }
    case Kind::kPrepend:
      if (!s.empty()) s.insert(0, step.text);
      return;
    case Kind::kReplace: {
      std::vector<Span> matches;
      step.regex->find_all(s, 0, matches, scratch);
      if (matches.empty()) return;
      tmp.clear();
      uint32_t at = 0;
      for (const Span& m : matches) {
        tmp.append(s, at, m.begin - at).append(step.text);
        at = m.end;
      }
      tmp.append(s, at);
      s.swap(tmp);
      return;
    }
  }
}

}  // namespace afd::tok
