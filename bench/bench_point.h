// One afd-bench point: an engine configuration and workload, run and measured; and the outputs made of many.
#pragma once

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "app/engine_factory.h"
#include "bench/ceilings.h"
#include "engine/step_stats.h"

namespace afd::bench {

struct PointSpec {
  std::vector<std::pair<std::string, std::string>> keys;  // the swept values that define this point
  app::RuntimeOptions ro;
  int batch = 16, context = 256, warmup = 2, steps = 8;
};

struct PointResult {
  std::string ffn;                 // the FFN backend that ran
  double decode_tok_s = 0, tpot_ms = 0, step_min_ms = 0, step_max_ms = 0, prefill_tok_s = 0;
  double attn_ms = 0, ffn_ms = 0, attn_idle_ms = 0, ffn_idle_ms = 0, overlap = 0;
  double xfer_ms = 0;  // activations moved between the sides per step (device-timed; 0 on the CPU FFN)
  double bound_ms = 0, pct_of_bound = 0;
  std::string bound_by;
  double host_kv_mb = 0;
  std::vector<engine::StepStats> trace;  // the measured steps' spans
};

void apply_key(PointSpec& p, const std::string& key, const std::string& value);
// The runtime options a point runs with (batch, step tokens, a KV pool that holds its sequences, tracing).
app::RuntimeOptions point_runtime(const ModelConfig& cfg, const PointSpec& p);
// Runs a point on backends built for it or for a larger one (KV pool and FFN token capacity at least the point's).
PointResult run_point(const app::Backends& backends, const PointSpec& p, const Ceilings& c);

void print_header(std::FILE* f, const PointSpec& first);
void print_row(std::FILE* f, const PointSpec& p, const PointResult& r);
std::string results_csv(const std::vector<PointSpec>& ps, const std::vector<PointResult>& rs);
nlohmann::json results_json(const std::string& model, const Ceilings& c, const std::vector<PointSpec>& ps,
                            const std::vector<PointResult>& rs);
std::string sweep_plot(const std::string& model, const std::string& key, const std::vector<std::string>& values,
                       const std::vector<PointSpec>& ps, const std::vector<PointResult>& rs);
void write_traces(const std::string& dir, const std::vector<PointResult>& rs);

}  // namespace afd::bench
