#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <algorithm>
#include <string_view>

#include "util/error.h"

namespace afd::tok {
namespace {

constexpr size_t kJitStackStart = 32 * 1024;
constexpr size_t kJitStackMax = 16 * 1024 * 1024;  // long runs of one class (50k spaces) need deep JIT stacks

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// Oniguruma's \s is Unicode White_Space; PCRE2's (with UCP) also matches U+180E MONGOLIAN VOWEL SEPARATOR, which
// left White_Space in Unicode 6.3. Rewrites \s, \S and character classes holding them so that U+180E is treated as
// Oniguruma treats it. Everything else is copied unchanged.
std::string onig_whitespace(const std::string& p) {
  constexpr const char* kSep = "\\x{180E}";
  std::string out;
  size_t i = 0;
  // Copies the escape at p[i] ('\' + one character, with a {...} argument for \p \P \x \o \N \g \k).
  auto escape_end = [&](size_t at) {
    size_t e = std::min(at + 2, p.size());
    if (e < p.size() && p[e] == '{' && std::string_view("pPxoNgk").find(p[at + 1]) != std::string_view::npos) {
      const size_t close = p.find('}', e);
      e = close == std::string::npos ? p.size() : close + 1;
    }
    return e;
  };
  while (i < p.size()) {
    if (p[i] == '\\' && i + 1 < p.size() && (p[i + 1] == 's' || p[i + 1] == 'S')) {
      out += p[i + 1] == 's' ? std::string("[^\\S") + kSep + "]" : std::string("[\\S") + kSep + "]";
      i += 2;
    } else if (p[i] == '\\') {
      const size_t e = escape_end(i);
      out.append(p, i, e - i);
      i = e;
    } else if (p[i] == '[') {
      size_t j = i + 1;
      const bool negated = j < p.size() && p[j] == '^';
      if (negated) ++j;
      if (j < p.size() && p[j] == ']') ++j;  // a leading ']' is literal
      bool has_s = false, has_S = false;
      while (j < p.size() && p[j] != ']') {
        if (p[j] == '\\') {
          if (j + 1 < p.size()) {
            has_s |= p[j + 1] == 's';
            has_S |= p[j + 1] == 'S';
          }
          j = escape_end(j);
        } else if (p[j] == '[' && j + 1 < p.size() && p[j + 1] == ':') {
          const size_t close = p.find(":]", j + 2);
          j = close == std::string::npos ? p.size() : close + 2;
        } else {
          ++j;
        }
      }
      const size_t end = std::min(j + 1, p.size());
      const std::string cls = p.substr(i, end - i);
      const bool exclude = negated ? has_S : has_s, include = negated ? has_s : has_S;
      if (exclude && !include) out += std::string("(?:(?!") + kSep + ")" + cls + ")";
      else if (include && !exclude) out += "(?:" + cls + "|" + kSep + ")";
      else out += cls;
      i = end;
    } else {
      out += p[i++];
    }
  }
  return out;
}

}  // namespace

struct RegexScratch::State {
  pcre2_match_data* match = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
};

RegexScratch::RegexScratch() : s_(std::make_unique<State>()) {
  s_->match = pcre2_match_data_create(1, nullptr);  // only the whole match (ovector pair 0) is read
  s_->context = pcre2_match_context_create(nullptr);
  s_->jit_stack = pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr);
  AFD_CHECK(s_->match && s_->context && s_->jit_stack, "PCRE2 could not allocate match data");
  pcre2_jit_stack_assign(s_->context, nullptr, s_->jit_stack);
}

RegexScratch::~RegexScratch() {
  pcre2_jit_stack_free(s_->jit_stack);
  pcre2_match_context_free(s_->context);
  pcre2_match_data_free(s_->match);
}

Regex::Regex(const std::string& pattern, bool literal, const std::string& where) : where_(where) {
  int err = 0;
  PCRE2_SIZE err_at = 0;
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);  // LITERAL rejects UCP
  auto compile = [&](const std::string& source) {
    return pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), options, &err, &err_at, nullptr);
  };
  // The pattern as written is compiled first, so that a syntax error names an offset the user can find.
  pcre2_code* code = compile(pattern);
  if (!code) afd::fail(where, ": the pattern does not compile at offset ", err_at, " (", pcre2_message(err), ").");
  if (const std::string compat = literal ? pattern : onig_whitespace(pattern); compat != pattern) {
    pcre2_code_free(code);
    code = compile(compat);
    AFD_CHECK(code, "the \\s rewrite of ", where, " does not compile: ", pcre2_message(err));
  }
  code_ = code;
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;  // without JIT (e.g. W^X systems) the interpreter runs
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view text, uint32_t base, std::vector<Span>& out, RegexScratch& scratch) const {
  auto* code = static_cast<const pcre2_code*>(code_);
  auto* md = scratch.s_->match;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), pos, 0, md, scratch.s_->context)
                        : pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, scratch.s_->context);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) afd::fail(where_, ": matching failed (", pcre2_message(rc), ").");
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] > ov[0]) {
      out.push_back({base + static_cast<uint32_t>(ov[0]), base + static_cast<uint32_t>(ov[1])});
      pos = ov[1];
    } else {
      // An empty match contributes nothing; step over one whole character.
      pos = ov[0] + 1;
      while (pos < text.size() && (static_cast<uint8_t>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
}

}  // namespace afd::tok
