// afd-serve under bad input and bad clients: every case gets a 4xx with an OpenAI-style error body and the server
// keeps serving; clients that vanish mid-stream free their KV blocks; an API key gates every endpoint but /health;
// SIGTERM drains running requests and exits 0.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server_process.h"

using nlohmann::json;
using afd::test::ServerProcess;

namespace {

// The error object of an OpenAI-style error response, checked for its shape.
json error_of(const std::string& body) {
  const json j = json::parse(body);
  REQUIRE(j.contains("error"));
  const json& e = j["error"];
  CHECK(e["message"].is_string());
  CHECK(!e["message"].get<std::string>().empty());
  CHECK(e["type"].is_string());
  CHECK(e.contains("param"));
  CHECK(e.contains("code"));
  return e;
}

// A raw loopback connection (for clients curl cannot imitate: slow, half-open).
int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

}  // namespace

TEST_CASE("afd-serve: bad requests get OpenAI-style 4xx errors and the server keeps serving", "[server]") {
  ServerProcess srv;
  struct Case {
    const char* what;
    std::string body;
    long status;
    const char* param;
  };
  const std::string long_prompt(6000, 'x');  // far more tokens than the 1024-position context
  const std::vector<Case> cases = {
      {"malformed JSON", "{\"prompt\": \"abc\",", 400, nullptr},
      {"not an object", "[1, 2]", 400, nullptr},
      {"prompt missing", "{\"max_tokens\": 3}", 400, "prompt"},
      {"prompt of the wrong type", "{\"prompt\": 42}", 400, "prompt"},
      {"max_tokens of the wrong type", "{\"prompt\": \"a\", \"max_tokens\": \"many\"}", 400, "max_tokens"},
      {"temperature out of range", "{\"prompt\": \"a\", \"temperature\": 7}", 400, "temperature"},
      {"stream of the wrong type", "{\"prompt\": \"a\", \"stream\": \"yes\"}", 400, "stream"},
      {"stop of the wrong type", "{\"prompt\": \"a\", \"stop\": [1]}", 400, "stop"},
      {"n > 1", "{\"prompt\": \"a\", \"n\": 2}", 400, "n"},
      {"token id outside the vocabulary", "{\"prompt\": [1, 99999]}", 400, "prompt"},
      {"unknown model", "{\"model\": \"gpt-9\", \"prompt\": \"a\"}", 404, "model"},
      {"prompt longer than the context", json{{"prompt", long_prompt}}.dump(), 400, "prompt"},
      {"max_tokens too large", "{\"prompt\": \"a\", \"max_tokens\": 5000}", 400, "max_tokens"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    long code = 0;
    const json e = error_of(srv.post("/v1/completions", c.body, &code));
    CHECK(code == c.status);
    if (c.param) CHECK(e["param"] == c.param);
  }
  long code = 0;
  error_of(srv.post("/v1/chat/completions", "{\"messages\": [{\"role\": 3}]}", &code));
  CHECK(code == 400);
  error_of(srv.curl("/v1/nothing", "", &code));
  CHECK(code == 404);
  error_of(srv.curl("/v1/completions", "", &code));  // GET on a POST route
  CHECK(code == 405);
  // Bodies over 1 MiB are refused before they are read.
  afd::test::TempDir dir;
  afd::test::write_text(dir.path("big.json"), "{\"prompt\": \"" + std::string(1100000, 'a') + "\"}");
  error_of(srv.curl("/v1/completions", "--data-binary @" + dir.path("big.json"), &code));
  CHECK(code == 413);
  // A body curl sends with "Expect: 100-continue" (over 1 KiB) is read at once, not after curl's 1 s wait.
  std::string lines;
  for (int i = 0; i < 150; ++i) lines += "import os\n";  // 1500 bytes, a few hundred tokens
  const std::string big_prompt = json{{"prompt", lines}, {"max_tokens", 1}}.dump();
  const std::string timed =
      srv.post("/v1/completions", big_prompt, &code, "-o /dev/null -w '%{time_total}\\n%{http_code}'");
  CHECK(code == 200);
  CHECK(std::stod(timed) < 0.9);
  // Still serving.
  const json ok = json::parse(srv.post("/v1/completions", "{\"prompt\": \"def \", \"max_tokens\": 4}", &code));
  CHECK(code == 200);
  CHECK(ok["usage"]["completion_tokens"] == 4);
  CHECK(srv.metric("afd_http_requests_total{status=\"400\"}") >= 13);
}

TEST_CASE("afd-serve: slow and half-open clients time out with 408, others are served meanwhile", "[server]") {
  ServerProcess srv({"--read-timeout-ms", "600"});
  const int slow = connect_to(srv.port());  // sends half a request, then nothing
  const std::string part = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"pro";
  REQUIRE(send(slow, part.data(), part.size(), 0) == static_cast<ssize_t>(part.size()));
  const int silent = connect_to(srv.port());  // connects and sends nothing
  long code = 0;
  srv.post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2}", &code);
  CHECK(code == 200);
  for (int fd : {slow, silent}) {
    const std::string answer = read_all(fd);  // the server answers and closes (bounded by the read timeout)
    close(fd);
    CHECK(answer.rfind("HTTP/1.1 408", 0) == 0);
    CHECK(answer.find("\"error\"") != std::string::npos);
  }
  srv.post("/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2}", &code);
  CHECK(code == 200);
  CHECK(srv.metric("afd_open_connections") <= 1);
}

TEST_CASE("afd-serve: a client that disconnects mid-stream is cancelled and its KV blocks freed", "[server]") {
  ServerProcess srv;
  const int fd = connect_to(srv.port());
  const std::string body = "{\"prompt\": \"def f(\", \"max_tokens\": 1000, \"ignore_eos\": true, \"stream\": true}";
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  REQUIRE(send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size()));
  std::string got;
  char buf[4096];
  while (got.find("data: ") == std::string::npos) {  // the stream has started
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    REQUIRE(n > 0);
    got.append(buf, static_cast<size_t>(n));
  }
  CHECK(srv.metric("afd_kv_blocks_used") > 0);
  close(fd);
  // ~1000 tokens would take seconds; the cancellation frees the blocks within a few steps.
  double used = -1;
  for (int i = 0; i < 100 && used != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    used = srv.metric("afd_kv_blocks_used");
  }
  CHECK(used == 0);
  CHECK(srv.metric("afd_client_disconnects_total") == 1);
  CHECK(srv.metric("afd_requests_cancelled_total") == 1);
  CHECK(srv.metric("afd_completion_tokens_total") < 1000);
  CHECK(srv.alive());
}

TEST_CASE("afd-serve: --api-key requires the bearer token", "[server]") {
  ServerProcess srv({"--api-key", "s3cret"});
  long code = 0;
  const std::string body = "{\"prompt\": \"x\", \"max_tokens\": 2}";
  CHECK(error_of(srv.post("/v1/completions", body, &code))["code"] == "invalid_api_key");
  CHECK(code == 401);
  srv.post("/v1/completions", body, &code, "-H 'Authorization: Bearer wrong'");
  CHECK(code == 401);
  srv.curl("/v1/models", "", &code);
  CHECK(code == 401);
  srv.post("/v1/completions", body, &code, "-H 'Authorization: Bearer s3cret'");
  CHECK(code == 200);
  srv.curl("/health", "", &code);
  CHECK(code == 200);
}

TEST_CASE("afd-serve: SIGTERM drains running requests and exits 0", "[server]") {
  ServerProcess srv;
  afd::test::TempDir dir;
  const std::string out = dir.path("out.json");
  // A request that runs for a while, started in the background.
  const std::string cmd = "curl -sS -m 60 -o " + out + " -w '%{http_code}' -H 'Content-Type: application/json' "
                          "--data-binary '{\"prompt\": \"def f(\", \"max_tokens\": 400, \"ignore_eos\": true}' " +
                          srv.url("/v1/completions") + " > " + dir.path("code") + " 2>&1 &";
  afd::test::run_command(cmd);
  for (int i = 0; i < 200 && srv.metric("afd_requests_in_flight") == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(srv.metric("afd_requests_in_flight") == 1);
  CHECK(srv.stop(SIGTERM) == 0);
  for (int i = 0; i < 100 && afd::test::read_text(dir.path("code")).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(afd::test::read_text(dir.path("code")) == "200");
  const json r = json::parse(afd::test::read_text(out));
  CHECK(r["usage"]["completion_tokens"] == 400);
  CHECK(srv.log().find("drained") != std::string::npos);
}
