// The request parser and the stop-string text stream, in process; plus a bounded fuzz of the parser: mutated
// bodies must produce a job or an ApiError with a 4xx status, never another exception or a crash.
#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "server/api_error.h"
#include "server/api_request.h"
#include "server_process.h"
#include "tokenizer/text_stream.h"
#include "tokenizer/tokenizer.h"

using afd::server::ApiError;
using afd::server::parse_completion_request;

namespace {

struct Fixture {
  afd::tok::Tokenizer tk = afd::tok::Tokenizer::load(afd::test::model_dir());
  afd::server::ModelInfo info() const {
    afd::server::ModelInfo m;
    m.name = "tiny";
    m.tokenizer = &tk;
    m.chat_family = afd::tok::ChatFamily::kDeepSeekV3;
    m.max_context = 64;
    m.kv_capacity = 1 << 20;
    m.vocab_size = tk.vocab_size();
    m.default_max_tokens = 16;
    return m;
  }
};

int status_of(const std::string& body, const afd::server::ModelInfo& m, bool chat = false) {
  try {
    parse_completion_request(body, chat, m);
    return 200;
  } catch (const ApiError& e) {
    return e.status;
  }
}

}  // namespace

TEST_CASE("request parser: fields, defaults and limits", "[server]") {
  Fixture f;
  const auto m = f.info();
  const auto job = parse_completion_request(
      R"({"model":"tiny","prompt":"def f():","max_tokens":5,"temperature":0.5,"top_p":0.9,"top_k":7,"seed":11,)"
      R"("stop":["\n\n"],"stream":true,"stream_options":{"include_usage":true},"n":1,"logit_bias":null})",
      false, m);
  CHECK(job.gen.prompt == f.tk.encode("def f():", true));
  CHECK(job.gen.max_new_tokens == 5);
  CHECK(job.gen.sampling.temperature == 0.5f);
  CHECK(job.gen.sampling.top_p == 0.9f);
  CHECK(job.gen.sampling.top_k == 7);
  CHECK(job.gen.sampling.seed == 11);
  CHECK(job.stop == std::vector<std::string>{"\n\n"});
  CHECK(job.stream);
  CHECK(job.include_usage);
  // Default max_tokens: the configured default, capped by the context left.
  CHECK(parse_completion_request(R"({"prompt":"a"})", false, m).gen.max_new_tokens == 16);
  CHECK(parse_completion_request(R"({"prompt":[5,6,7]})", false, m).gen.prompt == std::vector<int32_t>{5, 6, 7});
  CHECK(status_of(R"({"prompt":[1,2,3],"max_tokens":61})", m) == 200);  // 3 + 61 = 64 = the context
  CHECK(status_of(R"({"prompt":[1,2,3],"max_tokens":62})", m) == 400);
  CHECK(status_of(R"({"prompt":"a","max_tokens":0})", m) == 400);
  CHECK(status_of(R"({"prompt":"a","model":"other"})", m) == 404);
  CHECK(status_of(R"({"prompt":["a","b"]})", m) == 400);
  CHECK(status_of(R"({"prompt":"\uD800"})", m) == 400);  // not valid JSON text (lone surrogate)
  CHECK(status_of(R"({"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})", m, true) == 200);
  CHECK(status_of(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", m, true) == 400);
  CHECK(status_of(R"({"messages":[{"content":"x"}]})", m, true) == 400);
  CHECK(status_of(R"({"messages":[]})", m, true) == 400);
  afd::server::ModelInfo small = m;
  small.kv_capacity = 10;
  CHECK(status_of(R"({"prompt":"a","max_tokens":20})", small) == 400);
}

TEST_CASE("text stream: stop strings across token boundaries, held-back prefixes", "[server]") {
  Fixture f;
  const std::string text = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n";
  const std::vector<int32_t> ids = f.tk.encode(text, false);
  REQUIRE(ids.size() > 8);
  struct Case {
    std::vector<std::string> stop;
    std::string expect;
    bool stopped;
  };
  const std::vector<Case> cases = {
      {{}, text, false},
      {{"\n\n"}, "def add(a, b):\n    return a + b", true},
      {{"urn a", "b):"}, "def add(a, ", true},              // the earliest occurrence wins
      {{"print(add(1, 2))\n!"}, text, false},             // a held-back prefix is released at the end
      {{"d"}, "", true},
  };
  for (const Case& c : cases) {
    afd::tok::TextStream ts(f.tk, c.stop);
    std::string out;
    for (int32_t id : ids) out += ts.push(id);
    out += ts.finish();
    CHECK(out == c.expect);
    CHECK(ts.stopped() == c.stopped);
  }
}

TEST_CASE("request parser: bounded fuzz never escapes ApiError", "[server][fuzz]") {
  Fixture f;
  const auto m = f.info();
  const std::vector<std::string> seeds = {
      R"({"model":"tiny","prompt":"def f(x):","max_tokens":5,"temperature":0.7,"stop":["\n"],"stream":true})",
      R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}],"max_tokens":3,"top_p":0.5})",
      R"({"prompt":[1,2,3],"seed":18446744073709551615,"top_k":-1,"n":1,"stream_options":{"include_usage":true}})"};
  const std::string alphabet = "{}[]\":,0123456789.-+eE truefalsnul\\u00ffabc\x80\xff";
  std::mt19937_64 rng(1234);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  int cases = 0, accepted = 0;
  while (std::chrono::steady_clock::now() < end && cases < 200000) {
    std::string body = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits && !body.empty(); ++e) {
      const size_t at = rng() % body.size();
      switch (rng() % 4) {
        case 0: body[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: body.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        case 2: body.erase(at, 1 + rng() % 8); break;
        default: body.insert(at, body.substr(rng() % body.size(), rng() % 16)); break;
      }
    }
    ++cases;
    try {
      const auto job = parse_completion_request(body, body.find("messages") != std::string::npos, m);
      ++accepted;
      REQUIRE(!job.gen.prompt.empty());
      REQUIRE(job.gen.prompt.size() + job.gen.max_new_tokens <= static_cast<size_t>(m.max_context));
      REQUIRE(job.gen.max_new_tokens >= 1);
    } catch (const ApiError& e) {
      INFO(body);
      REQUIRE(e.status >= 400);
      REQUIRE(e.status < 500);
    }
  }
  CHECK(cases > 1000);
  CHECK(accepted > 0);
}
