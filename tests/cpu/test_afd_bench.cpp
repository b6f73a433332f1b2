// afd-bench --quick as CI runs it: the outputs exist, have the documented structure, and sane values.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "../test_util.h"

using nlohmann::json;

namespace {
// The afd-bench under test: $AFD_BENCH_BIN (a packed build on another machine) or the one built with these tests.
std::string bench_bin() {
  const char* env = std::getenv("AFD_BENCH_BIN");
  return env && *env ? env : AFD_BENCH_BIN;
}
}  // namespace

TEST_CASE("afd-bench --quick writes a sane table, CSV, JSON, SVG and traces", "[bench]") {
  afd::test::TempDir tmp;
  const std::string cmd = bench_bin() + " --quick --sweep micro_batches=1,2 " +
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
    CHECK(p["prefill"] == "real");  // auto: 4 x 32 tokens are prefilled for real
    CHECK(p["prefill_tokens"] == 4 * 32);
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
  const std::string bin = bench_bin();
  afd::test::TempDir tmp;
  const int st = std::system((bin + " --quick --sweep warp=1,2 > " + tmp.path("o.txt") + " 2>&1").c_str());
  CHECK(WEXITSTATUS(st) != 0);
  CHECK(afd::test::read_text(tmp.path("o.txt")).find("unknown key 'warp'") != std::string::npos);
}

TEST_CASE("afd-bench --prefill synthetic measures decode on a filled KV cache and prefill on a real probe", "[bench]") {
  afd::test::TempDir tmp;
  const std::string cmd = bench_bin() +
                          " --quick --prefill synthetic --context 40 --sweep micro_batches=2 --sweep ffn_device=cpu --out " +
                          tmp.path("out") +
                          " > " + tmp.path("table.txt") + " 2>&1";
  const int st = std::system(cmd.c_str());
  const std::string table = afd::test::read_text(tmp.path("table.txt"));
  INFO(table);
  REQUIRE(WIFEXITED(st));
  REQUIRE(WEXITSTATUS(st) == 0);
  CHECK(table.find("synth") != std::string::npos);
  const json j = json::parse(afd::test::read_text(tmp.path("out/results.json")));
  REQUIRE(j["points"].size() == 2);  // micro_batches {1, 2}
  for (const auto& p : j["points"]) {
    INFO(p.dump());
    CHECK(p["prefill"] == "synthetic");
    CHECK(p["prefill_tokens"] == 4 * 40);  // the probe: min(batch x context, 16384) tokens
    for (const char* k : {"decode_tok_s", "tpot_ms", "prefill_tok_s", "attn_ms", "ffn_ms", "kv_fill_s"}) {
      const double v = p[k].get<double>();
      CHECK(std::isfinite(v));
      CHECK(v > 0);
    }
    // The KV reported is that of batch x context real positions; the CPU FFN holds no accelerator memory.
    CHECK(p["host_kv_mb"].get<double>() > 0);
    CHECK(p["gpu_mb"].get<double>() == 0);
    CHECK(p["step_min_ms"].get<double>() <= p["tpot_ms"].get<double>());
  }
  const std::string csv = afd::test::read_text(tmp.path("out/results.csv"));
  CHECK(csv.find(",prefill,prefill_tokens,kv_fill_s") != std::string::npos);
  CHECK(csv.find(",synthetic,160,") != std::string::npos);
}

TEST_CASE("afd-bench --peer draws the peer's tokens/s on the batch plot and rejects a malformed peer file", "[bench]") {
  afd::test::TempDir tmp;
  const std::string bin = bench_bin();
  {
    std::ofstream f(tmp.path("peer.csv"));
    f << "preset,batch,context,step_ms,tok_s\nx,2,32,10.0,200.5\nx,4,32,oom,oom\nx,4,64,5.0,800\n";
  }
  const std::string cmd = bin + " --quick --sweep batch=2,4 --peer " + tmp.path("peer.csv") + " --out " +
                          tmp.path("out") + " > " + tmp.path("table.txt") + " 2>&1";
  const int st = std::system(cmd.c_str());
  INFO(afd::test::read_text(tmp.path("table.txt")));
  REQUIRE(WEXITSTATUS(st) == 0);
  const json j = json::parse(afd::test::read_text(tmp.path("out/results.json")));
  REQUIRE(j["points"][0]["context"].get<int>() == 32);  // --quick's context
  // Only rows of the run's context count, and not the oom one: batch 2 at 200.5 tok/s.
  REQUIRE(j["peer"].size() == 1);
  CHECK(j["peer"][0]["batch"] == 2);
  CHECK(j["peer"][0]["decode_tok_s"].get<double>() == Approx(200.5));
  CHECK(afd::test::read_text(tmp.path("out/batch.svg")).find("HF transformers") != std::string::npos);
  {
    std::ofstream f(tmp.path("bad.csv"));
    f << "preset,batch,context,step_ms,tok_s\nx,2,32,10.0\n";
  }
  const int st2 = std::system((bin + " --quick --sweep batch=2 --peer " + tmp.path("bad.csv") + " --out " +
                               tmp.path("out2") + " > " + tmp.path("o2.txt") + " 2>&1").c_str());
  CHECK(WEXITSTATUS(st2) != 0);
  CHECK(afd::test::read_text(tmp.path("o2.txt")).find("bad.csv line 2: expected 5 comma-separated fields") !=
        std::string::npos);
}
