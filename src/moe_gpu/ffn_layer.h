// One FFN half-layer on the GPU over device buffers: post-attention RMSNorm, router, permutation, grouped expert
// GEMMs, SiLU·mul, shared experts, weighted combine and residual add (MODEL_SPEC.md 1, 2.5, 3, 5, 6, 7), or the dense
// MLP. Every launch goes to one stream, reads routing metadata only on the device and allocates nothing, so a call
// can be captured in a CUDA graph. GpuFfn drives it from host buffers; the benchmark drives it directly.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/grouped_gemm.cuh"
#include "model/config.h"
#include "moe_gpu/device_arena.h"

namespace afd::gpu {

using bf16 = __nv_bfloat16;

// Device pointers of one layer's FFN weights (all row-major, [out, in] per matrix).
struct FfnLayerDev {
  const bf16* post_norm = nullptr;      // [hidden]
  bool moe = false;
  const bf16* dense_gate_up = nullptr;  // [2 * dense_width, hidden]: gate and up rows interleaved by 8
                                        // (cuda::interleaved_gate_up_source)
  const bf16* dense_down = nullptr;     // [hidden, dense_width]
  int dense_width = 0;
  const bf16* router = nullptr;         // [E, hidden] router weight
  // DeepSeek: fp32 logits (MODEL_SPEC "fp32 GEMM of upcast inputs": products of bf16 values are exact in fp32, so
  // a tensor-core GEMM with fp32 accumulation and fp32 output computes that sum, up to summation order).
  // Qwen3-MoE / Mixtral: bf16 logits (a bf16 GEMM).
  bool router_fp32_logits = false;
  const float* router_bias = nullptr;   // [E] e_score_correction_bias or null
  const bf16* experts_gate_up = nullptr;// [E, 2 * expert_width, hidden], each expert's gate/up interleaved by 8
  const bf16* experts_down = nullptr;   // [E, hidden, expert_width]
  // Weight-only fp8 experts (cuda::GroupedGemmParams::w8); when set, experts_gate_up / experts_down are unused.
  const uint8_t* experts_gate_up8 = nullptr;   // [E, 2 * expert_width, hidden] e4m3, rows as experts_gate_up
  const float* experts_gate_up_scale = nullptr;// [E, 2 * expert_width, ceil(hidden / 128)] per-row scales
  const uint8_t* experts_down8 = nullptr;      // [E, hidden, expert_width] e4m3
  const float* experts_down_scale = nullptr;   // [E, hidden, ceil(expert_width / 128)]
  void use_fp8_experts(const uint8_t* gate_up, const float* gate_up_scale, const uint8_t* down, const float* down_scale) {
    experts_gate_up = nullptr;
    experts_down = nullptr;
    experts_gate_up8 = gate_up;
    experts_gate_up_scale = gate_up_scale;
    experts_down8 = down;
    experts_down_scale = down_scale;
  }
  int expert_width = 0;
  // Expert parallelism: this GPU holds experts [expert_lo, expert_lo + expert_count) and experts_* hold only those
  // (local index e - expert_lo). One GPU: 0 and E.
  int expert_lo = 0, expert_count = 0;
  const bf16* shared_gate_up = nullptr; // [2 * shared_width, hidden] (interleaved by 8) or null
  const bf16* shared_down = nullptr;    // [hidden, shared_width]
  int shared_width = 0;
};

// Scratch for up to max_tokens rows, carved from an arena once. Contents between calls are unspecified.
struct FfnWorkspace {
  int max_tokens = 0;
  bf16* x = nullptr;            // [T, hidden] the residual stream of the call
  bf16* xn = nullptr;           // [T, hidden] post-norm activations
  float* logits = nullptr;      // [T, E] fp32 router logits
  bf16* logits_bf16 = nullptr;  // [T, E] bf16 router logits
  int32_t* ids = nullptr;       // [T, k]
  float* weights = nullptr;     // [T, k]
  int32_t* group_offset = nullptr;  // [E + 1]
  int32_t* tile_offset = nullptr;   // [E + 1]
  int32_t* row_token = nullptr;     // [T * k]
  int32_t* slot_row = nullptr;      // [T * k]
  bf16* act = nullptr;          // [rows, width] SiLU·mul of the gate/up GEMM (rows = T*k routed, T dense/shared)
  bf16* y = nullptr;            // [T * k, hidden] routed expert outputs (permuted rows)
  bf16* extra = nullptr;        // [T, hidden] shared-expert or dense output
  void* cublas_ws = nullptr;    // cuBLAS workspace (set on the handle, so cuBLAS never allocates)
  size_t cublas_ws_bytes = 0;
};

// Carves a workspace for `cfg` and max_tokens out of `arena` (a planning arena only counts).
FfnWorkspace carve_workspace(const ModelConfig& cfg, int max_tokens, DeviceArena& arena);

// Which M tile the grouped GEMMs use for n tokens (average rows per expert decides).
// fp8: the layer's experts are weight-only fp8 (FfnLayerDev::experts_gate_up8).
cuda::GemmTile routed_tile(const ModelConfig& cfg, int n, bool fp8 = false);

// x_dev [n, hidden] in place: x = x + FFN(post_norm(x)). n <= ws.max_tokens.
// For profiling: called on the host after each stage's launches are issued (e.g. to record an event).
struct StageMarks {
  void (*mark)(void* ctx, const char* stage);
  void* ctx;
};

// `tile` overrides the grouped GEMMs' tile choice (benchmarks compare tiles with it); null = routed_tile().
void run_ffn_layer(const ModelConfig& cfg, const FfnLayerDev& L, const FfnWorkspace& ws, cublasHandle_t blas,
                   bf16* x_dev, int n, cudaStream_t stream, const cuda::GemmTile* tile = nullptr,
                   const StageMarks* marks = nullptr);

// The two grouped GEMMs of the experts L holds, after moe_permute filled ws's offsets and row map for `tile`:
// ws.act = silu(gate xn) * up xn of the rows (gathered from ws.xn), then ws.y = down(ws.act). `rows` bounds the
// rows the experts received (tokens x top-k).
void expert_gemms(const FfnLayerDev& L, int hidden, const FfnWorkspace& ws, cuda::GemmTile tile, int rows,
                  cudaStream_t stream, const StageMarks* marks = nullptr);

// Expert parallelism, the part of a MoE layer one GPU does: post-norm, the full routing (every GPU routes every
// token the same way), its own experts' GEMMs and partial = sum of their weighted outputs (fp32 [n, hidden]); with
// `with_shared` also the shared experts into ws.extra. x_dev is read, not changed.
void run_ffn_partial(const ModelConfig& cfg, const FfnLayerDev& L, const FfnWorkspace& ws, cublasHandle_t blas,
                     const bf16* x_dev, int n, cudaStream_t stream, float* partial, bool with_shared);
// Then on the GPU that did the shared experts: x = bf16(x + bf16(bf16(routed_sum) + shared)), routed_sum being the
// partials of every GPU summed.
void finish_ffn_partial(const ModelConfig& cfg, const FfnLayerDev& L, const FfnWorkspace& ws, bf16* x_dev, int n,
                        const float* routed_sum, cudaStream_t stream);

// The gated MLP alone on activations xn [n, hidden]: out = down(silu(gate xn) * up xn), via ws.act.
void run_dense_mlp(const bf16* gate_up, const bf16* down, int width, int hidden, const bf16* xn, int n,
                   const FfnWorkspace& ws, bf16* out, cudaStream_t stream);

}  // namespace afd::gpu
