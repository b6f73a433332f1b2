// The tokenizer against HF: the shared fixtures (DeepSeek-V3, Qwen3), the pystdlib-moe demo and eval data, the CLI.
#include <cstdio>
#include <memory>

#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

using afd::test::tokenizer;
using afd::test::tokenizer_fixture;
using Ids = std::vector<int32_t>;

namespace {

// Every case of <name>.shared.json: ids without and with special tokens, and the decoded text.
void check_fixture_cases(const std::string& name) {
  const auto& tok = tokenizer(name);
  const auto fx = tokenizer_fixture(name);
  size_t checked = 0;
  for (const auto& c : fx["cases"]) {
    const std::string text = c["text"];
    INFO(name << " case " << nlohmann::json(text).dump());
    const Ids plain = c["ids_plain"], special = c["ids_special"];
    CHECK(tok.encode(text, false) == plain);
    CHECK(tok.encode(text, true) == special);
    CHECK(tok.decode(plain) == c["decoded"].get<std::string>());
    CHECK(tok.decode(special, /*skip_special=*/true) == c["decoded"].get<std::string>());
    ++checked;
  }
  CHECK(checked == fx["cases"].size());
  CHECK(checked >= 30);
}

std::string run_cli(const std::string& args, const std::string& stdin_text, int& rc) {
  afd::test::TempDir dir;
  const std::string in = dir.path("in.txt"), out = dir.path("out.txt");
  afd::test::write_text(in, stdin_text);
  rc = std::system((std::string(AFD_TOKENIZE_BIN) + " " + args + " < " + in + " > " + out + " 2>&1").c_str());
  return afd::test::read_text(out);
}

}  // namespace

TEST_CASE("DeepSeek-V3 tokenizer reproduces every case of deepseek_v3.shared.json", "[tokenizer]") {
  check_fixture_cases("deepseek_v3");
}

TEST_CASE("Qwen3 tokenizer reproduces every case of qwen3.shared.json", "[tokenizer]") {
  check_fixture_cases("qwen3");
}

TEST_CASE("Tokenizer metadata: vocabulary size, BOS, EOS, token ids", "[tokenizer]") {
  const auto& ds = tokenizer("deepseek_v3");
  CHECK(ds.vocab_size() == 128815);
  CHECK(ds.bos_id() == 0);
  CHECK(ds.eos_ids() == Ids{1});
  CHECK(ds.token_id("<｜User｜>") == 128803);
  CHECK(ds.token_id("Hello") == 19923);
  CHECK_FALSE(ds.token_id("no such token").has_value());
  CHECK(ds.is_special(0));
  CHECK_FALSE(ds.is_special(128803));  // <｜User｜> is an added but not special token

  const auto& qw = tokenizer("qwen3");
  CHECK(qw.vocab_size() == 151669);
  CHECK(qw.bos_id() == -1);
  CHECK(qw.eos_ids() == Ids{151645});  // <|im_end|>
  CHECK(qw.encode("hi", true) == qw.encode("hi", false));

  const auto& py = tokenizer("pystdlib");
  CHECK(py.vocab_size() == 4096);
  CHECK(py.bos_id() == 0);
  CHECK(py.eos_ids() == Ids{1});
  CHECK(py.chat_template().empty());
}

TEST_CASE("pystdlib-moe: the demo prompts encode to demo_expected.json's ids and greedy ids decode to its text",
          "[tokenizer]") {
  const auto& tok = tokenizer("pystdlib");
  const auto demo = afd::test::read_json_file(afd::test::fixture_model("pystdlib-moe") + "/demo_expected.json");
  REQUIRE(demo["cases"].size() == 5);
  for (const auto& c : demo["cases"]) {
    const std::string prompt = c["prompt"];
    INFO(nlohmann::json(prompt).dump());
    const Ids prompt_ids = c["prompt_ids"], greedy_ids = c["greedy_ids"];
    CHECK(tok.encode(prompt, true) == prompt_ids);
    CHECK(tok.decode(Ids(prompt_ids.begin() + 1, prompt_ids.end())) == prompt);
    CHECK(tok.decode(prompt_ids, true) == prompt);
    // greedy_text is the continuation alone (the first case's model happens to restate the prompt).
    CHECK(tok.decode(greedy_ids) == c["greedy_text"].get<std::string>());
  }
}

TEST_CASE("pystdlib-moe: eval.txt gives ppl_ref.json's token count and round-trips", "[tokenizer]") {
  const auto& tok = tokenizer("pystdlib");
  const std::string dir = afd::test::fixture_model("pystdlib-moe");
  const std::string text = afd::test::read_text(dir + "/eval.txt");
  const auto ref = afd::test::read_json_file(dir + "/ppl_ref.json");
  const Ids ids = tok.encode(text, true);  // [BOS] + encode(eval.txt)
  CHECK(ids.size() == ref["total_tokens"].get<size_t>());
  CHECK(ids[0] == 0);
  CHECK(tok.decode(ids, true) == text);
}

TEST_CASE("afd-tokenize: --text, --jsonl, --decode and errors", "[tokenizer][cli]") {
  const std::string model = "--tokenizer " + afd::test::source_dir() + "/models/pystdlib-moe/tokenizer.json";
  int rc = -1;
  CHECK(run_cli(model + " --add-special --text 'def f(x):'", "", rc) == "{\"ids\":[0,333,286,9,89,334]}\n");
  CHECK(rc == 0);
  CHECK(run_cli(model + " --text 'def f(x):'", "", rc) == "{\"ids\":[333,286,9,89,334]}\n");
  CHECK(run_cli(model + " --jsonl", "{\"text\": \"import os\"}\n\n{\"text\": \"\"}\n", rc) ==
        "{\"ids\":[815,1346]}\n{\"ids\":[]}\n");
  CHECK(rc == 0);
  CHECK(run_cli(model + " --decode 0,333,286,9,89,334 --skip-special", "", rc) == "{\"text\":\"def f(x):\"}\n");
  CHECK(rc == 0);
  CHECK(run_cli(model + " --decode 333,x", "", rc).find("is not a token id") != std::string::npos);
  CHECK(WEXITSTATUS(rc) == 1);
  CHECK(run_cli(model + " --jsonl", "{\"txt\": 1}\n", rc).find("stdin line 1") != std::string::npos);
  CHECK(WEXITSTATUS(rc) == 1);
  CHECK(run_cli("--tokenizer /nonexistent/tokenizer.json --text a", "", rc).find("/nonexistent/tokenizer.json") !=
        std::string::npos);
  CHECK(WEXITSTATUS(rc) == 1);
  CHECK(run_cli(model, "", rc).find("exactly one of") != std::string::npos);
  CHECK(WEXITSTATUS(rc) == 1);
  const std::string help = run_cli("--help", "", rc);
  CHECK(rc == 0);
  for (const char* flag : {"--tokenizer", "--text", "--jsonl", "--decode", "--add-special", "--skip-special"})
    CHECK(help.find(flag) != std::string::npos);
}
