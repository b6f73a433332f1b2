// afd-serve driven over loopback with curl: the endpoints, the OpenAI response shapes, greedy output equal to
// afd-run's, server-sent events, stop strings and usage counts.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server_process.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

using nlohmann::json;
using afd::test::ServerProcess;

namespace {

const char* kPrompt = "import os\n\ndef read_file(path):";

// The text of a stream of SSE events; checks the framing: every event is "data: ...\n\n", the last is [DONE].
std::string sse_text(const std::string& body, bool chat, json* last_event = nullptr, int* events = nullptr) {
  std::string text;
  size_t pos = 0;
  bool done = false;
  int n = 0;
  while (pos < body.size()) {
    REQUIRE_FALSE(done);
    REQUIRE(body.compare(pos, 6, "data: ") == 0);
    const size_t end = body.find("\n\n", pos);
    REQUIRE(end != std::string::npos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end + 2;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    const json j = json::parse(data);
    ++n;
    if (last_event) *last_event = j;
    if (j["choices"].empty()) continue;  // the usage event
    const json& c = j["choices"][0];
    if (chat) {
      if (c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
    } else {
      text += c["text"].get<std::string>();
    }
  }
  CHECK(done);
  if (events) *events = n;
  return text;
}

}  // namespace

TEST_CASE("afd-serve: health, models and metrics", "[server]") {
  ServerProcess srv;
  long code = 0;
  CHECK(json::parse(srv.curl("/health", "", &code))["status"] == "ok");
  CHECK(code == 200);
  const json models = json::parse(srv.curl("/v1/models", "", &code));
  CHECK(code == 200);
  REQUIRE(models["data"].size() == 1);
  CHECK(models["data"][0]["id"] == "pystdlib-moe");
  const std::string metrics = srv.curl("/metrics", "", &code);
  CHECK(code == 200);
  for (const char* name : {"afd_http_requests_total{status=\"2xx\"}", "afd_completion_tokens_total",
                           "afd_queue_depth", "afd_running_sequences", "afd_step_seconds", "afd_overlap",
                           "afd_kv_blocks_used", "afd_kv_blocks_total", "afd_gpu_memory_bytes"})
    CHECK(metrics.find(name) != std::string::npos);
  CHECK(srv.metric("afd_kv_blocks_total") > 0);
  CHECK(srv.metric("afd_gpu_memory_bytes") == 0);  // the CPU FFN holds no GPU memory
  CHECK(srv.metric("afd_queue_depth") == 0);
  CHECK(srv.metric("afd_running_sequences") == 0);
}

TEST_CASE("afd-serve: greedy completions equal afd-run, streamed and not", "[server]") {
  ServerProcess srv;
  const json ref = json::parse(afd::test::afd_run_text("--prompt " + afd::test::shq(kPrompt), 40));
  REQUIRE(ref["finish_reason"] == "length");
  const json req = {{"model", "pystdlib-moe"}, {"prompt", kPrompt}, {"max_tokens", 40}, {"temperature", 0}};
  long code = 0;
  const json r = json::parse(srv.post("/v1/completions", req.dump(), &code));
  REQUIRE(code == 200);
  CHECK(r["object"] == "text_completion");
  CHECK(r["choices"][0]["text"] == ref["text"]);
  CHECK(r["choices"][0]["finish_reason"] == "length");
  CHECK(r["usage"]["prompt_tokens"] == ref["prompt_ids"].size());
  CHECK(r["usage"]["completion_tokens"] == 40);
  CHECK(r["usage"]["total_tokens"] == ref["prompt_ids"].size() + 40);

  json sreq = req;
  sreq["stream"] = true;
  sreq["stream_options"] = {{"include_usage", true}};
  json last;
  int events = 0;
  const std::string body = srv.post("/v1/completions", sreq.dump(), &code, "-N");
  REQUIRE(code == 200);
  CHECK(sse_text(body, false, &last, &events) == ref["text"]);
  CHECK(events > 3);  // streamed piece by piece, not in one event
  CHECK(last["usage"]["completion_tokens"] == 40);

  // return_token_ids: the ids behind the text, non-streamed and chunk by chunk, are afd-run's ids.
  json idreq = req;
  idreq["return_token_ids"] = true;
  CHECK(json::parse(srv.post("/v1/completions", idreq.dump()))["choices"][0]["token_ids"] == ref["output_ids"]);
  idreq["stream"] = true;
  const std::string idbody = srv.post("/v1/completions", idreq.dump(), &code, "-N");
  json streamed_ids = json::array();
  for (size_t pos = 0; (pos = idbody.find("data: {", pos)) != std::string::npos; ++pos) {
    const json ev = json::parse(idbody.substr(pos + 6, idbody.find("\n\n", pos) - pos - 6));
    for (const json& id : ev["choices"][0].value("token_ids", json::array())) streamed_ids.push_back(id);
  }
  CHECK(streamed_ids == ref["output_ids"]);

  // Token-id prompts give the same text.
  json ids = req;
  ids["prompt"] = ref["prompt_ids"];
  CHECK(json::parse(srv.post("/v1/completions", ids.dump()))["choices"][0]["text"] == ref["text"]);
}

TEST_CASE("afd-serve: chat completions use the chat template, streamed and not", "[server]") {
  ServerProcess srv;
  const json req = {{"model", "pystdlib-moe"},
                    {"messages", {{{"role", "system"}, {"content", "You write Python."}},
                                  {{"role", "user"}, {"content", "def main():"}}}},
                    {"max_tokens", 24},
                    {"temperature", 0}};
  long code = 0;
  const json r = json::parse(srv.post("/v1/chat/completions", req.dump(), &code));
  REQUIRE(code == 200);
  CHECK(r["object"] == "chat.completion");
  CHECK(r["choices"][0]["message"]["role"] == "assistant");
  const std::string text = r["choices"][0]["message"]["content"];
  CHECK(!text.empty());
  // The prompt rendered with the DeepSeek-V3 template and sent to /v1/completions as ids gives the same answer.
  const auto tk = afd::tok::Tokenizer::load(afd::test::model_dir());
  const std::string rendered = afd::tok::render_chat(
      afd::tok::ChatFamily::kDeepSeekV3, {{"system", "You write Python."}, {"user", "def main():"}}, true,
      tk.bos_token(), tk.eos_token());
  const std::vector<int32_t> ids = tk.encode(rendered, /*add_special=*/false);
  CHECK(r["usage"]["prompt_tokens"] == ids.size());
  const json plain = json::parse(
      srv.post("/v1/completions", json{{"prompt", ids}, {"max_tokens", 24}, {"temperature", 0}}.dump()));
  CHECK(plain["choices"][0]["text"] == text);
  json sreq = req;
  sreq["stream"] = true;
  json last;
  CHECK(sse_text(srv.post("/v1/chat/completions", sreq.dump(), &code, "-N"), true, &last) == text);
  CHECK(last["object"] == "chat.completion.chunk");
  CHECK(last["choices"][0]["finish_reason"] == r["choices"][0]["finish_reason"]);
}

TEST_CASE("afd-serve: stop strings cut the text and end the request", "[server]") {
  ServerProcess srv;
  const json ref = json::parse(afd::test::afd_run_text("--prompt " + afd::test::shq(kPrompt), 40));
  const std::string full = ref["text"];
  // A stop string that occurs in the greedy text, spanning tokens: the text is cut right before it.
  const std::string stop = full.substr(full.size() / 2, 3);
  const std::string expect = full.substr(0, full.find(stop));
  for (bool stream : {false, true}) {
    json req = {{"prompt", kPrompt}, {"max_tokens", 40}, {"stop", {"@@never@@", stop}}, {"stream", stream}};
    long code = 0;
    const std::string body = srv.post("/v1/completions", req.dump(), &code, "-N");
    REQUIRE(code == 200);
    json last;
    const std::string text = stream ? sse_text(body, false, &last) : json::parse(body)["choices"][0]["text"].get<std::string>();
    if (!stream) last = json::parse(body);
    CHECK(text == expect);
    CHECK(last["choices"][0]["finish_reason"] == "stop");
  }
  long code = 0;
  const json r = json::parse(srv.post("/v1/completions", json{{"prompt", kPrompt}, {"max_tokens", 40},
                                                              {"stop", stop}}.dump(), &code));
  CHECK(r["usage"]["completion_tokens"].get<int>() < 40);
  CHECK(srv.metric("afd_kv_blocks_used") == 0);
}
