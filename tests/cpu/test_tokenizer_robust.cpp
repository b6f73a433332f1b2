// Tokenizer robustness: round trips, streaming detokenization, invalid input, malformed files, a bounded fuzz loop.
#include <chrono>
#include <thread>

#include "tokenizer/bytelevel.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer_test_util.h"
#include "util/error.h"

using afd::test::random_utf8;
using afd::test::tokenizer;
using Ids = std::vector<int32_t>;

namespace {

const char* const kAll[] = {"deepseek_v3", "qwen3", "pystdlib"};

// Streams ids through a StreamDecoder; checks every piece is valid UTF-8 and returns the concatenation.
std::string stream(const afd::tok::Tokenizer& tok, const Ids& ids, bool skip_special = false) {
  afd::tok::StreamDecoder dec(tok, skip_special);
  std::string all;
  bool valid = true;
  for (const int32_t id : ids) {
    const std::string piece = dec.push(id);
    valid = valid && afd::tok::is_valid_utf8(piece);
    all += piece;
  }
  const std::string tail = dec.flush();
  valid = valid && afd::tok::is_valid_utf8(tail);
  if (!valid) FAIL("a StreamDecoder piece is not valid UTF-8");
  return all + tail;
}

// The ids of the single-byte tokens of bytes 0x80..0xFF: sequences of them are mostly broken UTF-8.
Ids high_byte_ids(const afd::tok::Tokenizer& tok) {
  Ids ids;
  for (int b = 0x80; b < 0x100; ++b) {
    std::string spelling;
    afd::tok::append_utf8(spelling, afd::tok::byte_to_codepoint(static_cast<uint8_t>(b)));
    if (const auto id = tok.token_id(spelling)) ids.push_back(*id);
  }
  return ids;
}

}  // namespace

TEST_CASE("Round trip decode(encode(x)) == x on the fixture texts and eval.txt", "[tokenizer]") {
  for (const char* name : {"deepseek_v3", "qwen3"}) {
    const auto& tok = tokenizer(name);
    const nlohmann::json fixture = afd::test::tokenizer_fixture(name);  // named: the loop reads into it
    REQUIRE(!fixture.at("cases").empty());
    for (const auto& c : fixture.at("cases")) {
      const std::string text = c["text"];
      INFO(name << " " << nlohmann::json(text).dump());
      // Qwen3 normalizes to NFC first, so its round trip gives the NFC text (the fixture's "decoded").
      CHECK(tok.decode(tok.encode(text, true), true) == c["decoded"].get<std::string>());
      CHECK(tokenizer("pystdlib").decode(tokenizer("pystdlib").encode(text, false)) == text);
    }
  }
}

TEST_CASE("Round trip on seeded random valid UTF-8, with added tokens mixed in", "[tokenizer]") {
  std::mt19937_64 rng(20261127);
  for (const char* name : kAll) {
    const auto& tok = tokenizer(name);
    const bool nfc = std::string(name) == "qwen3";
    const std::vector<std::string> added = {"<｜User｜>", "<｜begin▁of▁sentence｜>", "<|im_start|>", "<think>", "<|bos|>"};
    for (int i = 0; i < 400; ++i) {
      std::string text = random_utf8(rng, 60, nfc);
      if (i % 4 == 0) text += added[rng() % added.size()] + random_utf8(rng, 10, nfc);
      INFO(name << " " << nlohmann::json(text).dump());
      const Ids ids = tok.encode(text, false);
      REQUIRE(tok.decode(ids) == text);
      REQUIRE(stream(tok, ids) == text);
    }
  }
}

TEST_CASE("StreamDecoder output equals decode() for arbitrary id sequences, broken UTF-8 included", "[tokenizer]") {
  std::mt19937_64 rng(7);
  for (const char* name : kAll) {
    const auto& tok = tokenizer(name);
    const Ids high = high_byte_ids(tok);
    REQUIRE(high.size() == 128);
    std::uniform_int_distribution<int32_t> any(-2, tok.vocab_size() + 2);  // unknown ids decode to nothing
    for (int i = 0; i < 300; ++i) {
      Ids ids;
      for (int k = 0, n = static_cast<int>(rng() % 40); k < n; ++k)
        ids.push_back(rng() % 3 == 0 ? any(rng) : high[rng() % high.size()]);
      INFO(name << " ids " << nlohmann::json(ids).dump());
      REQUIRE(stream(tok, ids) == tok.decode(ids));
      REQUIRE(stream(tok, ids, true) == tok.decode(ids, true));
      REQUIRE(afd::tok::is_valid_utf8(tok.decode(ids)));
    }
  }
  // A 4-byte character split over byte tokens is held back until complete; a truncated tail flushes as U+FFFD.
  const auto& tok = tokenizer("pystdlib");
  const Ids emoji = tok.encode("😀", false);
  REQUIRE(emoji.size() >= 2);
  afd::tok::StreamDecoder dec(tok);
  for (size_t k = 0; k + 1 < emoji.size(); ++k) CHECK(dec.push(emoji[k]).empty());
  CHECK(dec.push(emoji.back()) == "😀");
  CHECK(dec.push(emoji[0]).empty());
  CHECK(dec.flush() == "\xEF\xBF\xBD");
  CHECK(dec.flush().empty());
}

TEST_CASE("Invalid UTF-8 input to encode is a clear afd::Error", "[tokenizer]") {
  const auto& tok = tokenizer("pystdlib");
  for (const std::string& bad : {std::string("\xFF"), std::string("abc\xC3"), std::string("\xED\xA0\x80"),
                                std::string("\xC0\xAF"), std::string("ok\x80ok"), std::string("\xF4\x90\x80\x80")}) {
    INFO(nlohmann::json::binary({bad.begin(), bad.end()}).dump());
    CHECK_THROWS_AS(tok.encode(bad, false), afd::Error);
    CHECK_THROWS_WITH(tok.encode(bad, false), Catch::Contains("not valid UTF-8") && Catch::Contains("byte offset"));
  }
  CHECK_THROWS_WITH(tok.encode("ok\x80ok", true), Catch::Contains("byte offset 2"));
  CHECK(tok.encode(std::string("a\0b", 3), false).size() == 3);  // NUL is valid UTF-8
}

TEST_CASE("Very long words and whitespace runs encode and round-trip", "[tokenizer]") {
  for (const char* name : kAll) {
    const auto& tok = tokenizer(name);
    for (const std::string& text : {std::string(200000, 'a'), std::string(100000, ' ') + "x", std::string(50000, '\n'),
                                    std::string(30000, '7'), std::string(60000, '!')}) {
      INFO(name << " " << text.size() << " x '" << text[0] << "'");
      CHECK(tok.decode(tok.encode(text, false)) == text);
    }
  }
}

TEST_CASE("Concurrent encodes give the single-threaded result", "[tokenizer]") {
  const auto& tok = tokenizer("deepseek_v3");
  std::mt19937_64 rng(3);
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back(random_utf8(rng, 200, false));
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(tok.encode(t, true));
  std::vector<int> ok(2, 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 3; ++rep)
        for (size_t i = 0; i < texts.size(); ++i)
          if (tok.encode(texts[i], true) != expected[i]) ok[t] = 0;
    });
  for (auto& th : threads) th.join();
  CHECK(ok == std::vector<int>{1, 1});
}

TEST_CASE("Fuzz: random bytes through encode and random ids through decode never crash", "[tokenizer][fuzz]") {
  using Clock = std::chrono::steady_clock;
  std::mt19937_64 rng(12345);
  size_t rounds = 0, rejected = 0;
  for (const char* name : kAll) {
    const auto& tok = tokenizer(name);
    const auto stop = Clock::now() + std::chrono::milliseconds(700);
    while (Clock::now() < stop) {
      // Mostly-valid text with a few corrupted bytes, or pure noise.
      std::string s = rng() % 2 ? random_utf8(rng, 40, false) : std::string();
      for (size_t k = 0, n = rng() % 24; k < n; ++k) {
        const char b = static_cast<char>(rng());
        if (!s.empty() && rng() % 2) s[rng() % s.size()] = b;
        else s.push_back(b);
      }
      try {
        const Ids ids = tok.encode(s, rng() % 2);
        REQUIRE(tok.decode(ids, true) == (std::string(name) == "qwen3" ? tok.decode(ids, true) : s));
      } catch (const afd::Error&) {
        REQUIRE_FALSE(afd::tok::is_valid_utf8(s));
        ++rejected;
      }
      Ids ids;
      for (size_t k = 0, n = rng() % 32; k < n; ++k)
        ids.push_back(static_cast<int32_t>(rng() % (tok.vocab_size() + 10)) - 5);
      REQUIRE(afd::tok::is_valid_utf8(tok.decode(ids)));
      REQUIRE(stream(tok, ids) == tok.decode(ids));
      ++rounds;
    }
  }
  CHECK(rounds > 300);
  CHECK(rejected > 0);
}
