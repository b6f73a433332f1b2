// afd-bench --quick as CI runs it: the outputs exist, have the documented structure, and sane values.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../test_util.h"

using nlohmann::json;

TEST_CASE("afd-bench --quick writes a sane table, CSV, JSON, SVG and traces", "[bench]") {
  afd::test::TempDir tmp;
  const char* env = std::getenv("AFD_BENCH_BIN");
  const std::string cmd = std::string(env && *env ? env : AFD_BENCH_BIN) + " --quick --sweep micro_batches=1,2 " +
                          "--sweep attn_threads=1,2 --out " + tmp.path("out") + " > " + tmp.path("table.txt") + " 2>&1";
  const int st = std::system(cmd.c_str());
  INFO(afd::test::read_text(tmp.path("table.txt")));
  REQUIRE(WIFEXITED(st));
  REQUIRE(WEXITSTATUS(st) == 0);

  const json j = json::parse(afd::test::read_text(tmp.path("out/results.json")));
  CHECK(j["ceilings"]["host_read_GBps"].get<double>() > 0.1);
  CHECK(j["ceilings"]["cpu_gemm_TFLOPs"].get<double>() > 1e-4);
  REQUIRE(j["points"].size() == 4);  // micro_batches {1,2} x attn_threads {1,2}
  for (const auto& p : j["points"]) {
    INFO(p.dump());
    for (const char* k : {"decode_tok_s", "tpot_ms", "prefill_tok_s", "attn_ms", "ffn_ms", "bound_ms", "pct_of_bound"}) {
      const double v = p[k].get<double>();
      CHECK(std::isfinite(v));
      CHECK(v > 0);
    }
    const double tpot = p["tpot_ms"].get<double>();
    CHECK(std::abs(p["decode_tok_s"].get<double>() - p["batch"].get<double>() / (tpot / 1e3)) < 1e-3 * p["decode_tok_s"].get<double>());
    CHECK(p["step_min_ms"].get<double>() <= tpot);
    CHECK(p["step_max_ms"].get<double>() >= tpot);
    CHECK(p["overlap"].get<double>() > 0.0);
    CHECK(p["overlap"].get<double>() <= 1.0 + 1e-9);
    // Busy time of a side never exceeds the step it is part of: the mean busy time is at most the longest step
    // (not the median: under load one slow step can lift the mean above it).
    CHECK(p["attn_ms"].get<double>() <= p["step_max_ms"].get<double>() * 1.001);
    CHECK(p["ffn_ms"].get<double>() <= p["step_max_ms"].get<double>() * 1.001);
  }

  std::stringstream csv(afd::test::read_text(tmp.path("out/results.csv")));
  std::string line;
  std::getline(csv, line);
  CHECK(line.rfind("micro_batches,attn_threads,batch,context,ffn,decode_tok_s", 0) == 0);
  int rows = 0;
  while (std::getline(csv, line)) rows += !line.empty();
  CHECK(rows == 4);

  for (const char* svg : {"micro_batches.svg", "attn_threads.svg"}) {
    const std::string s = afd::test::read_text(tmp.path(std::string("out/") + svg));
    CHECK(s.rfind("<svg", 0) == 0);
    CHECK(s.find("polyline") != std::string::npos);
    CHECK(s.find("stroke-dasharray") != std::string::npos);  // the bound
  }
  for (const char* t : {"trace-best.json", "trace-worst.json"}) {
    const json tr = json::parse(afd::test::read_text(tmp.path(std::string("out/") + t)));
    CHECK(tr["traceEvents"].size() > 4);
  }
  const std::string table = afd::test::read_text(tmp.path("table.txt"));
  CHECK(table.find("% bound") != std::string::npos);
}

TEST_CASE("afd-bench rejects a bad sweep in one sentence", "[bench]") {
  const char* env = std::getenv("AFD_BENCH_BIN");
  const std::string bin = env && *env ? env : AFD_BENCH_BIN;
  afd::test::TempDir tmp;
  const int st = std::system((bin + " --quick --sweep warp=1,2 > " + tmp.path("o.txt") + " 2>&1").c_str());
  CHECK(WEXITSTATUS(st) != 0);
  CHECK(afd::test::read_text(tmp.path("o.txt")).find("unknown key 'warp'") != std::string::npos);
}
