// tokenizer.json "normalizer": the text transformations applied before pre-tokenization (to the text between the
// added tokens that are not `normalized`). Supported: NFC, NFD, NFKC, NFKD (utf8proc), Lowercase, Strip, Prepend,
// Replace (string or regex) and Sequence of these; anything else is rejected at load with the file and field.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_where.h"
#include "tokenizer/regex.h"

namespace afd::tok {

class Normalizer {
 public:
  // j is the "normalizer" value (null for none).
  static Normalizer from_json(const json& j, const JsonWhere& where);

  bool is_identity() const { return steps_.empty(); }

  // out = the normalized in. in must be valid UTF-8; out is valid UTF-8.
  void apply(std::string_view in, std::string& out, RegexScratch& scratch) const;

 private:
  enum class Kind { kNfc, kNfd, kNfkc, kNfkd, kLowercase, kStrip, kPrepend, kReplace };
  struct Step {
    Kind kind;
    std::string text;                    // Prepend: the prefix; Replace: the replacement
    bool left = false, right = false;    // Strip
    std::shared_ptr<const Regex> regex;  // Replace
  };
  void add(const json& j, const JsonWhere& where);
  static void apply_step(const Step& step, std::string& s, std::string& tmp, RegexScratch& scratch);

  std::vector<Step> steps_;
};

}  // namespace afd::tok
