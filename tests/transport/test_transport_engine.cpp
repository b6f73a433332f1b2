// Attention in this process, the FFN side in afd-ffn-server over loopback: the same greedy tokens (and logits) as
// the single-process engine, a refused model mismatch, a server killed mid-run and restarted, SIGTERM.
#include <catch2/catch.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "ffn_server_process.h"
#include "remote_engine_fixture.h"
#include "model/run_config.h"
#include "util/error.h"

namespace afd::test {
namespace {

using Catch::Matchers::Contains;
using Clock = std::chrono::steady_clock;

}  // namespace

TEST_CASE("transport: two processes give the single-process engine's greedy tokens and logits", "[transport]") {
  const std::string name = GENERATE("dsv3_tiny", "qwen3moe_tiny", "mixtral_tiny");
  const int mb = GENERATE(1, 2);
  CAPTURE(name, mb);
  const std::string dir = fixture_model(name);
  FfnServerProcess server(dir);
  auto local = make_cpu_engine(dir, mb);
  auto remote = make_remote_engine(dir, server.address(), mb);
  submit_all(*local);
  submit_all(*remote);
  local->run_until_idle();
  remote->run_until_idle();
  auto a = local->take_finished(), b = remote->take_finished();
  REQUIRE(a.size() == 4);
  REQUIRE(b.size() == 4);
  std::sort(a.begin(), a.end(), [](auto& x, auto& y) { return x->id < y->id; });
  std::sort(b.begin(), b.end(), [](auto& x, auto& y) { return x->id < y->id; });
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i]->tokens == b[i]->tokens);
    CHECK(b[i]->generated == a[i]->req.max_new_tokens);
    CHECK(a[i]->logits == b[i]->logits);  // bitwise: the same FFN arithmetic, only moved
  }
  CHECK_FALSE(b[3]->logits.empty());
}

TEST_CASE("transport: afd-run --ffn-remote equals afd-run", "[transport]") {
  const std::string dir = fixture_model("qwen3moe_tiny");
  FfnServerProcess server(dir);
  const std::string common = std::string(AFD_RUN_BIN) + " --model " + shq(dir) +
                             " --attn-threads 2 --json --ignore-eos --max-new-tokens 10 --prompt-ids 3,1,4,1,5";
  int st1 = 0, st2 = 0;
  const auto one = nlohmann::json::parse(run_command(common + " --ffn-device cpu", &st1));
  const auto two = nlohmann::json::parse(run_command(common + " --ffn-remote " + server.address(), &st2));
  REQUIRE(st1 == 0);
  REQUIRE(st2 == 0);
  CHECK(one.at("output_ids") == two.at("output_ids"));
  CHECK(one.at("output_ids").size() == 10);
}

TEST_CASE("transport: an attention process of another model is refused with both models named", "[transport]") {
  FfnServerProcess server(fixture_model("dsv3_tiny"));
  const ModelConfig other = load_model_config(fixture_model("qwen3moe_tiny") + "/config.json");
  try {
    transport::RemoteFfn r(server.address(), other);
    FAIL("connected to a server of another model");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK_THAT(m, Contains(server.address()));
    CHECK_THAT(m, Contains("deepseek_v3"));
    CHECK_THAT(m, Contains("qwen3_moe"));
  }
  int st = 0;
  const std::string out = run_command(std::string(AFD_RUN_BIN) + " --model " + shq(fixture_model("qwen3moe_tiny")) +
                                          " --max-new-tokens 2 --ffn-remote " + server.address() + " 2>&1",
                                      &st);
  CHECK(st == 1);
  CHECK_THAT(out, Contains("model mismatch"));
  CHECK(server.stop(SIGTERM) == 0);  // and SIGTERM ends the server cleanly
}

TEST_CASE("transport: a dead FFN server fails in-flight requests within a second and a restarted one serves again",
          "[transport]") {
  const std::string dir = fixture_model("dsv3_tiny");
  auto server = std::make_unique<FfnServerProcess>(dir);
  const int port = server->port();
  const std::string addr = server->address();
  auto e = make_remote_engine(dir, addr, 2);
  auto ref = make_cpu_engine(dir, 2);
  e->submit(greedy({5, 6, 7}, 200));
  e->submit(greedy({8, 9}, 200));
  for (int i = 0; i < 3; ++i) REQUIRE(e->step());

  // A hung server (stopped, its socket open): the next step fails once the peer has been silent for kDeadPeer.
  server->signal(SIGSTOP);
  const auto b = Clock::now();
  CHECK_THROWS_WITH(e->step(), Contains("FFN server " + addr + " went away"));
  const double detect_s = std::chrono::duration<double>(Clock::now() - b).count();
  std::printf("transport: a stopped afd-ffn-server was detected after %.0f ms\n", detect_s * 1e3);
  CHECK(detect_s < 1.0);
  auto failed = e->take_finished();
  REQUIRE(failed.size() == 2);
  for (auto& s : failed) {
    CHECK(s->finish == engine::FinishReason::kFailed);
    CHECK_THAT(s->error, Contains("went away"));
  }
  CHECK(e->idle());

  // Killed in the middle of a call (stopped first, so the kill lands while a step waits on it): the step fails
  // as soon as the socket closes, well before the silence limit; nothing is left stuck.
  server->signal(SIGCONT);
  e->submit(greedy({1, 2, 3}, 100));
  REQUIRE(e->step());
  server->signal(SIGSTOP);
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    server->stop(SIGKILL);
  });
  const auto k = Clock::now();
  CHECK_THROWS_WITH(e->step(), Contains("FFN server " + addr + " went away"));
  const double kill_s = std::chrono::duration<double>(Clock::now() - k).count();
  killer.join();
  CHECK(kill_s < 0.7);
  CHECK(e->take_finished().size() == 1);
  CHECK(e->idle());

  // While the server is down, calls fail fast with its address; once it is back on the same port they succeed.
  e->submit(greedy({4, 4, 4}, 5));
  CHECK_THROWS_WITH(e->step(), Contains(addr));
  e->take_finished();
  server = std::make_unique<FfnServerProcess>(dir, port);
  e->submit(greedy({3, 1, 4, 1}, 8));
  ref->submit(greedy({3, 1, 4, 1}, 8));
  const auto got = collect(*e), want = collect(*ref);
  REQUIRE(got.size() == 1);
  CHECK(got.begin()->second == want.begin()->second);
}

TEST_CASE("transport: several attention processes share one FFN server", "[transport]") {
  const std::string dir = fixture_model("mixtral_tiny");
  FfnServerProcess server(dir);
  auto ref = make_cpu_engine(dir, 2);
  submit_all(*ref);
  const auto want = collect(*ref);
  std::vector<std::map<int64_t, std::vector<int32_t>>> got(2);
  std::vector<std::thread> th;
  for (int k = 0; k < 2; ++k)
    th.emplace_back([&, k] {
      auto e = make_remote_engine(dir, server.address(), 1 + k);
      submit_all(*e);
      got[k] = collect(*e);
    });
  for (auto& t : th) t.join();
  CHECK(got[0] == want);
  CHECK(got[1] == want);
  // The server's batching counters, printed when it stops: every request of both engines, none lost.
  REQUIRE(server.stop(SIGTERM) == 0);
  const std::string log = server.log();
  INFO(log);
  std::smatch m;
  REQUIRE(std::regex_search(log, m, std::regex("serving 2 connections: ([0-9]+) requests in ([0-9]+) backend calls "
                                               "\\(([0-9]+) batched\\), ([0-9.]+) rows")));
  const long req = std::stol(m[1]), calls = std::stol(m[2]);
  std::printf("transport: afd-ffn-server with two attention processes: %ld requests in %ld calls, %s rows per call\n",
              req, calls, m[4].str().c_str());
  CHECK(req > 0);
  CHECK(calls <= req);
}

TEST_CASE("transport: the YAML ffn.remote key is parsed and checked", "[transport]") {
  const RunConfig rc = parse_run_config("model: {path: m}\nffn: {remote: 10.0.0.2:7400}\n", "t.yaml", "/d");
  REQUIRE(rc.ffn_remote);
  CHECK(*rc.ffn_remote == "10.0.0.2:7400");
  CHECK_THROWS_WITH(parse_run_config("model: {path: m}\nffn: {remote: nowhere}\n", "t.yaml", "/d"),
                    Contains("t.yaml: ffn.remote = 'nowhere' is not host:port"));
  CHECK_THROWS_WITH(parse_run_config("model: {path: m}\nffn: {remtoe: a:1}\n", "t.yaml", "/d"),
                    Contains("unknown key 'ffn.remtoe'"));
  CHECK_THROWS_WITH(transport::parse_host_port("host:99999", "--ffn-remote"), Contains("no valid TCP port"));
}

}  // namespace afd::test
