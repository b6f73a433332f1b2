#include "tokenizer/pretokenizer.h"

namespace afd::tok {
namespace {

// The pattern HF's ByteLevel pre-tokenizer splits with when use_regex is true (GPT-2's).
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

PreTokenizer PreTokenizer::from_json(const json& j, const JsonWhere& where) {
  PreTokenizer p;
  if (!j.is_null()) p.add(j, where);
  return p;
}

void PreTokenizer::add_regex(const std::string& pattern, bool literal, Behavior behavior, bool invert,
                             const JsonWhere& w) {
  auto re = std::make_shared<const Regex>(pattern, literal, w.file + ": field '" + w.path + "'");
  steps_.push_back({std::move(re), behavior, invert});
}

void PreTokenizer::add(const json& j, const JsonWhere& w) {
  const std::string type = json_type(j, w);
  if (type == "Sequence") {
    const json& list = json_require(j, w, "pretokenizers");
    if (!list.is_array()) w.field("pretokenizers").fail("is not an array");
    for (size_t i = 0; i < list.size(); ++i) add(list[i], w.field("pretokenizers").index(i));
  } else if (type == "Split") {
    const json& pattern = json_require(j, w, "pattern");
    const JsonWhere pw = w.field("pattern");
    const bool literal = pattern.is_object() && pattern.contains("String");
    if (!literal && !(pattern.is_object() && pattern.contains("Regex")))
      pw.fail("has neither \"String\" nor \"Regex\"");
    const std::string text = json_string(pattern, pw, literal ? "String" : "Regex");
    const std::string b = json_string(j, w, "behavior");
    Behavior behavior;
    if (b == "Removed") behavior = Behavior::kRemoved;
    else if (b == "Isolated") behavior = Behavior::kIsolated;
    else if (b == "MergedWithPrevious") behavior = Behavior::kMergedWithPrevious;
    else if (b == "MergedWithNext") behavior = Behavior::kMergedWithNext;
    else if (b == "Contiguous") behavior = Behavior::kContiguous;
    else w.field("behavior").fail("is '", b, "', not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, "
                                  "Contiguous");
    add_regex(text, literal, behavior, json_bool(j, w, "invert", false), pw);
  } else if (type == "ByteLevel") {
    if (json_bool(j, w, "add_prefix_space", true)) steps_.push_back({nullptr, Behavior::kIsolated, false});
    if (json_bool(j, w, "use_regex", true)) add_regex(kGpt2Pattern, false, Behavior::kIsolated, false, w);
    byte_level_ = true;
  } else if (type == "Digits") {
    // One word per digit, or per run of digits (Rust's char::is_numeric is \p{N}).
    const bool individual = json_bool(j, w, "individual_digits", false);
    add_regex(individual ? R"(\p{N})" : R"(\p{N}+)", false, Behavior::kIsolated, false, w);
  } else if (type == "Whitespace") {
    add_regex(R"(\w+|[^\w\s]+)", false, Behavior::kRemoved, true, w);
  } else if (type == "WhitespaceSplit") {
    add_regex(R"(\s+)", false, Behavior::kRemoved, false, w);
  } else if (type == "Punctuation") {
    const std::string b = j.contains("behavior") ? json_string(j, w, "behavior") : "Isolated";
    if (b != "Isolated") w.field("behavior").fail("is '", b, "'; afd supports Punctuation only with Isolated");
    add_regex(R"([\p{P}!-/:-@\[-`{-~])", false, Behavior::kIsolated, false, w);
  } else {
    w.field("type").fail("names the pre-tokenizer '", type,
                         "', which afd does not support (supported: Sequence, Split, ByteLevel, Digits, Whitespace, "
                         "WhitespaceSplit, Punctuation)");
  }
}

void PreTokenizer::split(std::string& text, std::vector<Span>& pieces, PreTokenizerScratch& s) const {
  for (const Step& step : steps_) {
    if (!step.regex) {
      prefix_space(text, pieces, s);
      continue;
    }
    apply(step, text, pieces, s.next, s);
    pieces.swap(s.next);
  }
}

// HF ByteLevel add_prefix_space: every current piece that does not start with ' ' gets one.
void PreTokenizer::prefix_space(std::string& text, std::vector<Span>& pieces, PreTokenizerScratch& s) {
  s.text.clear();
  for (Span& p : pieces) {
    const uint32_t begin = static_cast<uint32_t>(s.text.size());
    if (text[p.begin] != ' ') s.text.push_back(' ');
    s.text.append(text, p.begin, p.size());
    p = {begin, static_cast<uint32_t>(s.text.size())};
  }
  text.swap(s.text);
}

void PreTokenizer::apply(const Step& step, std::string_view text, const std::vector<Span>& in,
                         std::vector<Span>& out, PreTokenizerScratch& s) {
  out.clear();
  for (const Span& piece : in) {
    s.matches.clear();
    step.regex->find_all(text.substr(piece.begin, piece.size()), piece.begin, s.matches, s.regex);
    // Walk the piece as alternating (gap, match) parts; `is_match` is flipped by invert. Each behavior decides
    // whether a part starts a new word, extends the previous one, or is dropped (HF SplitDelimiterBehavior).
    bool prev_match = false, have_prev = false;
    Span pending{};       // MergedWithNext: a match waiting to be glued to the following part
    bool pending_set = false;
    auto emit = [&](Span part, bool is_match) {
      if (part.size() == 0) return;
      is_match = is_match != step.invert;
      switch (step.behavior) {
        case Behavior::kRemoved:
          if (!is_match) out.push_back(part);
          break;
        case Behavior::kIsolated:
          out.push_back(part);
          break;
        case Behavior::kMergedWithPrevious:
          if (is_match && !prev_match && have_prev) out.back().end = part.end;
          else out.push_back(part);
          break;
        case Behavior::kContiguous:
          if (is_match == prev_match && have_prev) out.back().end = part.end;
          else out.push_back(part);
          break;
        case Behavior::kMergedWithNext:
          // HF folds right to left: a match joins the part after it unless that part is itself a match.
          if (pending_set && !is_match) {
            out.push_back({pending.begin, part.end});
            pending_set = false;
          } else {
            if (pending_set) out.push_back(pending);
            pending_set = false;
            if (is_match) pending = part, pending_set = true;
            else out.push_back(part);
          }
          break;
      }
      prev_match = is_match;
      have_prev = true;
    };
    uint32_t at = piece.begin;
    for (const Span& m : s.matches) {
      emit({at, m.begin}, false);
      emit(m, true);
      at = m.end;
    }
    emit({at, piece.end}, false);
    if (pending_set) out.push_back(pending);
  }
}

}  // namespace afd::tok
