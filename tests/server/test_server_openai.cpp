// afd-serve driven by the official `openai` npm client (tests/server/openai_client.cjs): models, completions and
// chat, streamed and not, with an API key; the greedy completion equals afd-run's output.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "server_process.h"

using nlohmann::json;

TEST_CASE("afd-serve: the openai npm client, streaming and not, chat and completions", "[server]") {
  const std::string module = afd::test::source_dir() + "/tests/data/node/node_modules/openai";
  INFO("the openai package is installed by tools/server-test-setup.sh");
  REQUIRE(std::filesystem::exists(module + "/package.json"));
  afd::test::ServerProcess srv({"--api-key", "test-key"});
  const std::string prompt = "class Stack:\n    def push(self, item):";
  int st = 0;
  const std::string out = afd::test::run_command(
      "OPENAI_MODULE=" + afd::test::shq(module) + " timeout 120 node " +
          afd::test::shq(afd::test::source_dir() + "/tests/server/openai_client.cjs") + " " +
          afd::test::shq(srv.url("/v1")) + " test-key " + afd::test::shq(prompt) + " 2>&1",
      &st);
  INFO(out);
  REQUIRE(st == 0);
  const json r = json::parse(out);
  const json ref = json::parse(afd::test::afd_run_text("--prompt " + afd::test::shq(prompt), 32));
  CHECK(r["model"] == "pystdlib-moe");
  CHECK(r["completion"] == ref["text"]);
  CHECK(r["completion_stream"] == ref["text"]);
  CHECK(r["completion_finish"] == ref["finish_reason"]);
  CHECK(r["completion_usage"]["prompt_tokens"] == ref["prompt_ids"].size());
  CHECK(!r["chat"].get<std::string>().empty());
  CHECK(r["chat_stream"] == r["chat"]);
  CHECK(r["chat_usage"]["completion_tokens"].get<int>() <= 16);
  CHECK(r["error_status"] == 404);
  CHECK(r["error_code"] == "model_not_found");
}
