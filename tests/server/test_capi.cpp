// libafd's C API (include/afd/afd.h): creation from YAML (file and string) and its errors, submission of ids and
// text, callback and polling delivery, cancel, stats, detokenize; results equal afd-run's greedy output. Also runs
// the C example program (examples/embed.c).
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "afd/afd.h"
#include "server_process.h"

extern "C" int afd_c_check_bad_yaml(void);

using nlohmann::json;

namespace {

std::string tiny_yaml() {
  return "model:\n  path: " + afd::test::model_dir() +
         "\nruntime:\n  ffn_device: cpu\n  attn_threads: 2\n  kv_pool_mb: 64\n";
}

// Polls until every id in `ids` has finished; returns each request's tokens.
std::map<int64_t, std::vector<int32_t>> poll_all(afd_engine* e, std::vector<int64_t> ids,
                                                 std::map<int64_t, afd_finish_reason>* fin = nullptr) {
  std::map<int64_t, std::vector<int32_t>> out;
  size_t done = 0;
  afd_event ev[8];
  for (int spins = 0; done < ids.size() && spins < 3000; ++spins) {
    const size_t n = afd_poll(e, ev, 8, 10);
    for (size_t i = 0; i < n; ++i) {
      if (ev[i].token >= 0) out[ev[i].request_id].push_back(ev[i].token);
      if (ev[i].finish != AFD_FINISH_NONE) {
        ++done;
        if (fin) (*fin)[ev[i].request_id] = ev[i].finish;
      }
    }
  }
  REQUIRE(done == ids.size());
  return out;
}

struct Collected {
  std::mutex mu;
  std::vector<int32_t> tokens;
  int finishes = 0;
  afd_finish_reason finish = AFD_FINISH_NONE;
};

void on_event(void* user, const afd_event* ev) {
  auto* c = static_cast<Collected*>(user);
  std::lock_guard<std::mutex> l(c->mu);
  if (ev->token >= 0) c->tokens.push_back(ev->token);
  if (ev->finish != AFD_FINISH_NONE) {
    ++c->finishes;
    c->finish = ev->finish;
  }
}

}  // namespace

TEST_CASE("C API: errors are codes with messages, never aborts", "[capi]") {
  CHECK(afd_c_check_bad_yaml() == 0);
  afd_engine* e = nullptr;
  CHECK(afd_engine_create_from_yaml_file("/nonexistent/afd.yaml", &e) == AFD_ERR_CONFIG);
  CHECK(e == nullptr);
  CHECK(std::string(afd_last_error()).find("/nonexistent/afd.yaml") != std::string::npos);
  CHECK(afd_engine_create_from_yaml_string("model:\n  path: /nonexistent-model\n", nullptr, &e) == AFD_ERR_CONFIG);
  CHECK(std::string(afd_last_error()).size() > 0);
  CHECK(afd_engine_create_from_yaml_string("runtime:\n  no_such_key: 1\nmodel:\n  path: x\n", nullptr, &e) ==
        AFD_ERR_CONFIG);
  CHECK(std::string(afd_last_error()).find("no_such_key") != std::string::npos);
  CHECK(afd_engine_create_from_yaml_string(nullptr, nullptr, &e) == AFD_ERR_INVALID_ARGUMENT);
}

TEST_CASE("C API: ids and text, callback and polling, equal to afd-run, cancel, stats", "[capi]") {
  afd::test::TempDir dir;
  afd::test::write_text(dir.path("tiny.yaml"), tiny_yaml());
  afd_engine* e = nullptr;
  REQUIRE(afd_engine_create_from_yaml_file(dir.path("tiny.yaml").c_str(), &e) == AFD_OK);
  const std::string prompt = "def parse_args(argv):";
  const json ref = json::parse(afd::test::afd_run_text("--prompt " + afd::test::shq(prompt), 24));
  const std::vector<int32_t> ref_ids = ref["output_ids"], prompt_ids = ref["prompt_ids"];

  afd_request_params p;
  afd_request_params_init(&p);
  p.max_new_tokens = 24;
  int64_t by_text = 0, by_ids = 0;
  REQUIRE(afd_submit_text(e, prompt.c_str(), &p, nullptr, nullptr, &by_text) == AFD_OK);
  REQUIRE(afd_submit_ids(e, prompt_ids.data(), prompt_ids.size(), &p, nullptr, nullptr, &by_ids) == AFD_OK);
  CHECK(by_text != by_ids);
  std::map<int64_t, afd_finish_reason> fin;
  auto got = poll_all(e, {by_text, by_ids}, &fin);
  CHECK(got[by_text] == ref_ids);
  CHECK(got[by_ids] == ref_ids);
  CHECK(fin[by_text] == AFD_FINISH_LENGTH);
  char buf[512];
  size_t needed = 0;
  REQUIRE(afd_detokenize(e, got[by_text].data(), got[by_text].size(), buf, sizeof buf, &needed) == AFD_OK);
  CHECK(std::string(buf) == ref["text"]);

  Collected c;
  int64_t cb_id = 0;
  REQUIRE(afd_submit_ids(e, prompt_ids.data(), prompt_ids.size(), &p, on_event, &c, &cb_id) == AFD_OK);
  for (int i = 0; i < 3000; ++i) {
    {
      std::lock_guard<std::mutex> l(c.mu);
      if (c.finishes) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  {
    std::lock_guard<std::mutex> l(c.mu);
    CHECK(c.finishes == 1);
    CHECK(c.tokens == ref_ids);
  }

  // Cancel a long request: it ends cancelled, early, and its KV blocks come back.
  afd_request_params longp = p;
  longp.max_new_tokens = 900;
  longp.ignore_eos = 1;
  int64_t long_id = 0;
  REQUIRE(afd_submit_ids(e, prompt_ids.data(), prompt_ids.size(), &longp, nullptr, nullptr, &long_id) == AFD_OK);
  afd_event ev[4];
  REQUIRE(afd_poll(e, ev, 1, 5000) == 1);  // it is running
  CHECK(afd_cancel(e, long_id) == AFD_OK);
  auto rest = poll_all(e, {long_id}, &fin);
  CHECK(fin[long_id] == AFD_FINISH_CANCELLED);
  CHECK(rest[long_id].size() < 800);
  CHECK(afd_cancel(e, long_id) == AFD_ERR_NOT_FOUND);
  afd_stats s;
  REQUIRE(afd_get_stats(e, &s) == AFD_OK);
  CHECK(s.kv_blocks_used == 0);
  CHECK(s.kv_blocks_total > 0);
  CHECK(s.requests_in_flight == 0);
  CHECK(s.tokens > 0);
  CHECK(s.vocab_size == 4096);

  // Bad requests: codes and messages.
  const int32_t bad_ids[] = {1, 99999};
  CHECK(afd_submit_ids(e, bad_ids, 2, &p, nullptr, nullptr, nullptr) == AFD_ERR_INVALID_ARGUMENT);
  CHECK(std::string(afd_last_error()).find("99999") != std::string::npos);
  CHECK(afd_submit_ids(e, prompt_ids.data(), 0, &p, nullptr, nullptr, nullptr) == AFD_ERR_INVALID_ARGUMENT);
  afd_request_params badp = p;
  badp.top_p = 0;
  CHECK(afd_submit_ids(e, prompt_ids.data(), prompt_ids.size(), &badp, nullptr, nullptr, nullptr) ==
        AFD_ERR_INVALID_ARGUMENT);
  CHECK(afd_submit_text(e, "\xff\xfe", &p, nullptr, nullptr, nullptr) == AFD_ERR_INVALID_ARGUMENT);
  afd_engine_destroy(e);
}

TEST_CASE("C API: a YAML string, destroy with requests in flight", "[capi]") {
  afd_engine* e = nullptr;
  REQUIRE(afd_engine_create_from_yaml_string(tiny_yaml().c_str(), nullptr, &e) == AFD_OK);
  afd_request_params p;
  afd_request_params_init(&p);
  p.max_new_tokens = 500;
  p.ignore_eos = 1;
  for (int i = 0; i < 4; ++i) REQUIRE(afd_submit_text(e, "import sys", &p, nullptr, nullptr, nullptr) == AFD_OK);
  afd_engine_destroy(e);  // cancels what runs; must return promptly and not crash
}

TEST_CASE("C API: the example program builds and runs", "[capi]") {
  int st = 0;
  const std::string out = afd::test::run_command(std::string(AFD_EMBED_EXAMPLE_BIN) + " " +
                                                     afd::test::shq(afd::test::source_dir() +
                                                                    "/configs/pystdlib-moe.yaml") + " 2>&1",
                                                 &st);
  INFO(out);
  CHECK(st == 0);
  CHECK(out.find("finish: length") != std::string::npos);
}
