// One afd-bench point: an engine configuration and workload, run and measured; and the outputs made of many.
#pragma once

#include <cstdio>
#include <map>
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
  int clients = 0;  // > 0: that many engines against one FFN server (bench_clients.h); 0: one engine, no server
  // How the sequences get their context: "real" prefills batch x context tokens; "synthetic" fills the KV cache
  // with random values (GenRequest::synthetic_context; decode then costs what it costs after a real prefill) and
  // measures prefill tokens/s on a real prefill of at most prefill_probe_tokens tokens (0: not measured); "auto"
  // is synthetic when batch x context exceeds kAutoSyntheticTokens.
  std::string prefill = "auto";
  int64_t prefill_probe_tokens = 16384;
};
constexpr int64_t kAutoSyntheticTokens = 65536;
// "real" or "synthetic": what `prefill` resolves to for this point.
std::string prefill_mode(const PointSpec& p);

struct PointResult {
  std::string ffn;                 // the FFN backend that ran
  double decode_tok_s = 0, tpot_ms = 0, step_min_ms = 0, step_max_ms = 0, prefill_tok_s = 0;
  double attn_ms = 0, ffn_ms = 0, attn_idle_ms = 0, ffn_idle_ms = 0, overlap = 0;
  double xfer_ms = 0;  // activations moved between the sides per step (device-timed; 0 on the CPU FFN)
  double bound_ms = 0, pct_of_bound = 0;
  std::string bound_by;
  double host_kv_mb = 0;            // the KV bytes of batch x context positions (the same for either prefill)
  double gpu_mb = 0;                // accelerator memory the FFN side holds (weights + workspace); 0 on the CPU
  std::string prefill;              // "real" or "synthetic"
  int64_t prefill_tokens = 0;       // tokens of the real prefill prefill_tok_s was measured on
  double kv_fill_s = 0;             // synthetic: filling every sequence's KV and running its last prompt token
  std::vector<engine::StepStats> trace;  // the measured steps' spans
  // clients points (bench_clients.h): engines, and the FFN server's requests, backend calls and rows per call.
  int clients = 0;
  int64_t server_requests = 0, server_calls = 0;
  double server_rows_per_call = 0;
};

void apply_key(PointSpec& p, const std::string& key, const std::string& value);
// The runtime options a point runs with (batch, step tokens, a KV pool that holds its sequences, tracing).
app::RuntimeOptions point_runtime(const ModelConfig& cfg, const PointSpec& p);
// Runs a point on backends built for it or for a larger one (KV pool and FFN token capacity at least the point's).
PointResult run_point(const app::Backends& backends, const PointSpec& p, const Ceilings& c);

// The roofline bound of a decode step of `tokens` sequences at `context` from the ceilings measured in the run:
// sets r.bound_ms (the step of all `tokens`), r.bound_by and r.pct_of_bound (r.decode_tok_s against the bound's
// tokens/s). `ffn_gpu`: the FFN side runs on the GPU.
void set_bound(PointResult& r, const ModelConfig& cfg, int tokens, int context, const Ceilings& c, bool ffn_gpu);

void print_header(std::FILE* f, const PointSpec& first);
void print_row(std::FILE* f, const PointSpec& p, const PointResult& r);
std::string results_csv(const std::vector<PointSpec>& ps, const std::vector<PointResult>& rs);
nlohmann::json results_json(const std::string& model, const Ceilings& c, const std::vector<PointSpec>& ps,
                            const std::vector<PointResult>& rs);
// `peer`: decode tokens/s of a peer system by batch size (bench/hf_peer.py's CSV), drawn on the batch plot.
std::string sweep_plot(const std::string& model, const std::string& key, const std::vector<std::string>& values,
                       const std::vector<PointSpec>& ps, const std::vector<PointResult>& rs,
                       const std::map<int, double>& peer = {});
// Reads a peer CSV with header preset,batch,context,step_ms,tok_s (rows that say "oom" are skipped); only rows of
// `context` count. Throws afd::Error naming the file and line of a malformed row.
std::map<int, double> read_peer_csv(const std::string& path, int context);
void write_traces(const std::string& dir, const std::vector<PointResult>& rs);

}  // namespace afd::bench
