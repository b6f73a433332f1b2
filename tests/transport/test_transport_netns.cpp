// The two halves in two network namespaces joined by a veth pair (tools/netns-two-process.sh): afd-ffn-server at
// 10.77.0.1 and afd-run --ffn-remote at 10.77.0.2 give the single-process afd-run's greedy tokens. Where the
// machine allows no network namespaces the script exits 77 and this test says why (WARN) and passes.
#include <catch2/catch.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "../child_process.h"

namespace afd::test {

TEST_CASE("transport: two processes in two network namespaces joined by a veth pair equal afd-run", "[transport]") {
  const std::string dir = fixture_model("dsv3_tiny");
  const std::string args = " --attn-threads 2 --json --ignore-eos --max-new-tokens 10 --prompt-ids 3,1,4,1,5,9,2,6";
  TempDir tmp;
  int st = 0;
  const std::string script = std::string(AFD_SOURCE_DIR) + "/tools/netns-two-process.sh";
  const std::string two = run_command("timeout -k 5 120 bash " + shq(script) + " " + shq(AFD_FFN_SERVER_BIN) + " " +
                                          shq(AFD_RUN_BIN) + " " + shq(dir) + " --" + args + " 2> " +
                                          shq(tmp.path("err.txt")),
                                      &st);
  const std::string err = read_text(tmp.path("err.txt"));
  if (st == 77) {
    WARN("network namespaces are not available here, so the veth test did not run: " << err);
    SUCCEED("skipped: " + err);
    return;
  }
  INFO(err);
  REQUIRE(st == 0);
  CHECK(err.find("listening on 10.77.0.1:") != std::string::npos);
  int st1 = 0;
  const auto one = nlohmann::json::parse(
      run_command(std::string(AFD_RUN_BIN) + " --model " + shq(dir) + args + " --ffn-device cpu", &st1));
  REQUIRE(st1 == 0);
  const auto remote = nlohmann::json::parse(two);
  CHECK(one.at("output_ids") == remote.at("output_ids"));
  CHECK(remote.at("output_ids").size() == 10);
  std::printf("transport: afd-run across a veth pair between two network namespaces matched (%s)\n",
              remote.at("output_ids").dump().c_str());
}

}  // namespace afd::test
