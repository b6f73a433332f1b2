// afd-serve with its FFN side in an afd-ffn-server process: a request while that server is down fails with 503
// naming it (the client may retry), the HTTP server stays up, and requests succeed again once it is back.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server_process.h"

using namespace afd::test;
using nlohmann::json;
using Catch::Matchers::Contains;

namespace {
std::vector<std::string> ffn_server_args(int port) {
  return {AFD_FFN_SERVER_BIN, "--model", model_dir(), "--port", std::to_string(port), "--ffn-device", "cpu"};
}
const char* kBody = R"({"model": "pystdlib-moe", "prompt": "import os\n", "max_tokens": 4, "temperature": 0})";
}  // namespace

TEST_CASE("afd-serve: an FFN server that goes away gives 503, and its return restores service", "[server]") {
  auto ffn = std::make_unique<ServerChild>(ffn_server_args(0));
  const int port = ffn->port();
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  ServerProcess srv({"--ffn-remote", addr});
  long code = 0;
  const json ok = json::parse(srv.post("/v1/completions", kBody, &code));
  REQUIRE(code == 200);
  const std::string text = ok["choices"][0]["text"].get<std::string>();

  ffn->stop(SIGKILL);
  ffn.reset();
  const json down = json::parse(srv.post("/v1/completions", kBody, &code));
  CHECK(code == 503);
  CHECK_THAT(down["error"]["message"].get<std::string>(), Contains(addr));
  CHECK(down["error"]["type"] == "server_error");
  CHECK(srv.alive());

  ffn = std::make_unique<ServerChild>(ffn_server_args(port));
  const json back = json::parse(srv.post("/v1/completions", kBody, &code));
  CHECK(code == 200);
  CHECK(back["choices"][0]["text"] == text);
  CHECK(srv.metric("afd_kv_blocks_used") == 0);
}
