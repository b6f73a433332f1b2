// afd-bench's clients sweep (bench/bench_clients.h): N engines against one FFN server that afd-bench starts on
// loopback; the JSON carries the aggregate tokens/s and the server's counters.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "../child_process.h"

namespace afd::test {

TEST_CASE("transport: afd-bench --quick --sweep clients=1,2 runs engines against one FFN server", "[transport]") {
  TempDir tmp;
  int st = 0;
  const std::string out = run_command(std::string(AFD_BENCH_BIN) + " --quick --sweep clients=1,2 --sweep " +
                                          "micro_batches=2 --out " + shq(tmp.path("out")) + " 2>&1",
                                      &st);
  INFO(out);
  REQUIRE(st == 0);
  const auto j = nlohmann::json::parse(read_text(tmp.path("out/results.json")));
  REQUIRE(j["points"].size() == 4);  // clients {1,2} x micro_batches {1,2}
  for (const auto& p : j["points"]) {
    INFO(p.dump());
    const int clients = std::stoi(p["keys"]["clients"].get<std::string>());
    CHECK(p["clients"].get<int>() == clients);
    CHECK(p["ffn"].get<std::string>().rfind("remote FFN at 127.0.0.1:", 0) == 0);
    CHECK(p["decode_tok_s"].get<double>() > 0);
    // The bound covers every client's sequences, so the tokens/s of all of them stay below it.
    CHECK(p["pct_of_bound"].get<double>() > 0);
    CHECK(p["pct_of_bound"].get<double>() <= 100.0);
    // Every request went through the server: at least one per layer and micro-batch per decode step per client.
    const auto req = p["server_requests"].get<int64_t>(), calls = p["server_calls"].get<int64_t>();
    CHECK(req >= clients * (1 + 3) * 2);
    CHECK(calls >= 1);
    CHECK(calls <= req);
    CHECK(p["server_rows_per_call"].get<double>() >= 1.0);
    if (clients == 1) CHECK(calls == req);  // one connection: nothing to batch with
  }
  CHECK(out.find("rows per call") != std::string::npos);
}

}  // namespace afd::test
