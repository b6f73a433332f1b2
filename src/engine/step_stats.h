// Per-step timing of the pipeline: every attention, FFN and sampling span, and the summary the issue asks for:
// busy and idle time of each side and overlap = max(sum attn, sum ffn) / step time. Chrome-trace output.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace afd::engine {

using Clock = std::chrono::steady_clock;

enum class SpanKind { kEmbed, kAttn, kFfn, kHead };

struct Span {
  SpanKind kind;
  int micro_batch, layer;
  Clock::time_point begin, end;
};

struct StepStats {
  int64_t step = 0;
  int tokens = 0, sequences = 0, micro_batches = 0;
  double step_s = 0, attn_s = 0, ffn_s = 0;  // wall time of the step; busy time of each side
  double xfer_s = 0;                          // activations moved between the sides (inside ffn_s), device-timed
  std::vector<double> gpu_busy_s;             // busy time of each FFN GPU (device-timed; expert parallelism)
  double attn_idle_s() const { return step_s > attn_s ? step_s - attn_s : 0; }
  double ffn_idle_s() const { return step_s > ffn_s ? step_s - ffn_s : 0; }
  double overlap() const { return step_s > 0 ? (attn_s > ffn_s ? attn_s : ffn_s) / step_s : 0; }
  Clock::time_point begin;
  std::vector<Span> spans;  // kept only when tracing
};

// Load imbalance of the FFN GPUs: the busiest one's time over the mean (1 = balanced; 1 with one GPU).
double gpu_imbalance(const std::vector<double>& busy);
// Adds one FFN call's per-GPU busy seconds into a step's.
void add_gpu_busy(std::vector<double>& into, const std::vector<double>& call);

// Sums of many steps.
struct StatsTotals {
  int64_t steps = 0, tokens = 0;
  double step_s = 0, attn_s = 0, ffn_s = 0, xfer_s = 0;
  std::vector<double> gpu_busy_s;
  void add(const StepStats& s);
  double overlap() const { return step_s > 0 ? (attn_s > ffn_s ? attn_s : ffn_s) / step_s : 0; }
  std::string summary() const;  // one human-readable paragraph
};

// Writes the spans of `steps` as a Chrome trace (open in Perfetto / chrome://tracing): one track for the attention
// side, one for the FFN side, times relative to the first step.
void write_chrome_trace(const std::string& path, const std::vector<StepStats>& steps);

}  // namespace afd::engine
