// afd's tokenizer against HF on a seeded random corpus: tests/fixtures/tokenizers/hf_oracle.jsonl, written by
// tools/gen-tokenizer-oracle.py with HF tokenizers 0.23.2 / transformers 5.17 (encode, decode, pystdlib-based
// tokenizer.json variants that exercise the components the real tokenizers do not use, and chat templates).
#include <fstream>
#include <map>

#include "tokenizer/chat_template.h"
#include "tokenizer_test_util.h"
#include "util/error.h"

using afd::test::tokenizer;
using nlohmann::json;
using Ids = std::vector<int32_t>;

namespace {

std::vector<json> oracle(const std::string& kind) {
  const std::string path = afd::test::source_dir() + "/tests/fixtures/tokenizers/hf_oracle.jsonl";
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<json> out;
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line);
    if (j["kind"] == kind) out.push_back(std::move(j));
  }
  REQUIRE(!out.empty());
  return out;
}

// Reports the first few mismatches and their count; passes only when there are none.
struct Mismatches {
  size_t total = 0, bad = 0;
  std::string first;
  void check(bool ok, const std::string& what) {
    ++total;
    if (ok) return;
    if (++bad <= 5) first += what + "\n";
  }
  ~Mismatches() {
    INFO(first);
    CHECK(bad == 0);
    CHECK(total > 0);
  }
};

std::string show(const json& j) { return j.dump(); }

// pystdlib's tokenizer.json with a variant_def patch applied (top-level keys replaced, model merged, added appended).
afd::tok::Tokenizer variant(const json& patch, afd::test::TempDir& dir, const std::string& name) {
  json j = afd::test::read_json_file(afd::test::source_dir() + "/models/pystdlib-moe/tokenizer.json");
  for (const auto& [k, v] : patch.items()) {
    if (k == "model") j["model"].update(v);
    else if (k == "added_tokens") j["added_tokens"].insert(j["added_tokens"].end(), v.begin(), v.end());
    else j[k] = v;
  }
  const std::string path = dir.path(name + ".json");
  afd::test::write_text(path, j.dump());
  return afd::tok::Tokenizer::load(path);
}

}  // namespace

TEST_CASE("HF oracle: encode of random text matches HF tokenizers", "[tokenizer][oracle]") {
  Mismatches m;
  for (const json& r : oracle("encode")) {
    const auto& tok = tokenizer(r["tok"]);
    const std::string text = r["text"];
    const Ids ids = tok.encode(text, false);
    m.check(ids == r["ids"].get<Ids>(), r["tok"].get<std::string>() + " " + show(r["text"]) + " -> " + show(ids) +
                                            ", HF " + show(r["ids"]));
    // transformers 5.17's AutoTokenizer re-tokenizes DeepSeek-V3 as a sentencepiece Llama and ignores pystdlib's
    // add_bos_token, so only Qwen3's ids_special are an oracle for add_special (the others: the shared fixtures).
    if (r["tok"] == "qwen3")
      m.check(tok.encode(text, true) == r["ids_special"].get<Ids>(), "qwen3 special " + show(r["text"]));
  }
}

TEST_CASE("HF oracle: decode of random ids matches HF tokenizers", "[tokenizer][oracle]") {
  Mismatches m;
  for (const json& r : oracle("decode")) {
    const auto& tok = tokenizer(r["tok"]);
    const Ids ids = r["ids"];
    m.check(tok.decode(ids) == r["text"].get<std::string>(), r["tok"].get<std::string>() + " " + show(r["ids"]));
    m.check(tok.decode(ids, true) == r["text_skip"].get<std::string>(), "skip " + show(r["ids"]));
  }
}

TEST_CASE("HF oracle: tokenizer.json variants (normalizers, Split behaviors, added-token flags, post-processors)",
          "[tokenizer][oracle]") {
  afd::test::TempDir dir;
  std::map<std::string, afd::tok::Tokenizer> toks;
  for (const json& r : oracle("variant_def")) toks.emplace(r["variant"], variant(r["patch"], dir, r["variant"]));
  CHECK(toks.size() >= 9);
  Mismatches m;
  for (const json& r : oracle("variant")) {
    const std::string name = r["variant"];
    const auto& tok = toks.at(name);
    const std::string text = r["text"];
    m.check(tok.encode(text, false) == r["ids"].get<Ids>(),
            name + " " + show(r["text"]) + " -> " + show(tok.encode(text, false)) + ", HF " + show(r["ids"]));
    m.check(tok.encode(text, true) == r["ids_special"].get<Ids>(), name + " special " + show(r["text"]));
  }
}

TEST_CASE("HF oracle: chat templates render as transformers' apply_chat_template", "[tokenizer][oracle][chat]") {
  Mismatches m;
  for (const json& r : oracle("chat")) {
    const auto& tok = tokenizer(r["tok"]);
    const auto family = afd::tok::chat_family_from_name(r["family"].get<std::string>());
    REQUIRE(family.has_value());
    std::vector<afd::tok::ChatMessage> msgs;
    for (const auto& x : r["messages"]) msgs.push_back({x["role"], x["content"]});
    const std::string what = r["family"].get<std::string>() + " " + show(r["messages"]) +
                             (r["add_generation_prompt"].get<bool>() ? " +gen" : "");
    try {
      const std::string got = afd::tok::render_chat(*family, msgs, r["add_generation_prompt"], tok.bos_token(),
                                                    tok.eos_token());
      m.check(r.contains("rendered") && got == r["rendered"].get<std::string>(),
              what + " -> " + show(got) + ", HF " + (r.contains("rendered") ? show(r["rendered"]) : "error"));
    } catch (const afd::Error& e) {
      m.check(r.contains("error"), what + " threw " + e.what());
    }
  }
}
