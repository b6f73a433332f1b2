// afd-tokenize: text -> ids and ids -> text with a Hugging Face tokenizer.json, as afd's tokenizer computes them.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace {

using nlohmann::json;

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    size_t pos = 0;
    long long v = -1;
    try {
      v = std::stoll(tok, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    AFD_REQUIRE(pos > 0 && pos == tok.size() && v >= 0 && v < (1ll << 31), "--decode: '", tok,
                "' is not a token id (expected comma-separated non-negative integers).");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

json ids_json(const std::vector<int32_t>& ids) { return json{{"ids", ids}}; }

// One {"text": ...} object per stdin line in, one {"ids": [...]} per line out (blank lines are skipped).
void run_jsonl(const afd::tok::Tokenizer& tok, bool add_special) {
  std::string line;
  std::vector<int32_t> ids;
  for (size_t n = 1; std::getline(std::cin, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      afd::fail("stdin line ", n, " is not valid JSON (", e.what(), ").");
    }
    AFD_REQUIRE(j.is_object() && j.contains("text") && j["text"].is_string(), "stdin line ", n,
                " has no string field \"text\".");
    ids.clear();
    tok.encode_into(j["text"].get_ref<const std::string&>(), add_special, ids);
    std::cout << ids_json(ids).dump() << '\n';
  }
  std::cout.flush();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"afd-tokenize: encode text to token ids, or decode ids to text, with a Hugging Face tokenizer.json "
               "(byte-level BPE: DeepSeek-V3/V2, Qwen3, the bundled pystdlib-moe)."};
  std::string tokenizer, text, decode;
  bool add_special = false, jsonl = false, skip_special = false;
  app.add_option("--tokenizer", tokenizer,
                 "tokenizer.json, or a model directory holding one; tokenizer_config.json is read from the same "
                 "directory when present (BOS/EOS).")
      ->required();
  auto* text_opt = app.add_option("--text", text, "Encode this text; prints {\"ids\": [...]}.");
  auto* jsonl_opt = app.add_flag("--jsonl", jsonl,
                                 "Encode stdin: one JSON object {\"text\": ...} per line in, one {\"ids\": [...]} "
                                 "per line out.");
  auto* decode_opt =
      app.add_option("--decode", decode, "Decode comma-separated ids (e.g. 1,2,3); prints {\"text\": ...}.");
  app.add_flag("--add-special", add_special,
               "When encoding, add the special tokens the tokenizer adds around a text (BOS for DeepSeek and "
               "pystdlib-moe, none for Qwen3), like transformers' encode(add_special_tokens=True).");
  app.add_flag("--skip-special", skip_special, "When decoding, drop special tokens (BOS, EOS, <|im_end|>, ...).");
  text_opt->excludes(jsonl_opt)->excludes(decode_opt);
  jsonl_opt->excludes(decode_opt);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "afd-tokenize: error: %s (see --help).\n", e.what());
    return 1;
  }
  try {
    AFD_REQUIRE(app.count("--text") + app.count("--jsonl") + app.count("--decode") == 1,
                "Give exactly one of --text, --jsonl or --decode (see --help).");
    const auto tok = afd::tok::Tokenizer::load(tokenizer);
    if (jsonl) {
      run_jsonl(tok, add_special);
    } else if (app.count("--decode")) {
      std::cout << json{{"text", tok.decode(parse_ids(decode), skip_special)}}.dump() << '\n';
    } else {
      std::cout << ids_json(tok.encode(text, add_special)).dump() << '\n';
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "afd-tokenize: error: %s\n", e.what());
    return 1;
  }
}
