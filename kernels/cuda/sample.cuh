// LM-head output handling on the GPU: bf16 logits to fp32, and token sampling (greedy, temperature, top-k, top-p)
// with a counter-based generator (Philox4x32-10 keyed by the request's seed, subsequence = its step), so a row's
// draw depends only on its own logits, parameters, seed and step, never on the rest of the batch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace afd::cuda {

struct RowSampling {
  float temperature;   // 0 = greedy (ties to the lower id)
  int top_k;           // 0 = all
  float top_p;         // 1 = all
  uint64_t seed;       // the request's generator key
  uint64_t step;       // the request's draw counter
};

struct SampleParams {
  const __nv_bfloat16* logits;  // [rows, vocab] bf16 logits
  const RowSampling* rows_params;  // [rows] device
  int32_t* out_ids;             // [rows] device
  int rows, vocab;
};

// Candidates: every id whose logit >= the top_k-th largest (ties at the cut all kept), then the fewest of those, in
// descending logit order, whose softmax(logit / T) mass reaches top_p (again keeping ties at the cut). The draw
// is an inverse CDF over the candidates in id order; every sum has a fixed order (reproducible run to run).
void sample_bf16(const SampleParams& p, cudaStream_t stream);

struct ToF32Params {
  const __nv_bfloat16* in;  // [n]
  float* out;               // [n]
  int64_t n;
};
void bf16_to_f32(const ToF32Params& p, cudaStream_t stream);

}  // namespace afd::cuda
