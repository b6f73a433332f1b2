#include "moe_gpu/ffn_layer.h"

#include <algorithm>

#include "cuda/ffn_elementwise.cuh"
#include "cuda/moe_permute.cuh"
#include "cuda/moe_route.cuh"
#include "moe_gpu/blas_check.h"

namespace afd::gpu {

namespace {

constexpr size_t kCublasWorkspace = size_t{32} << 20;

cuda::RouteKind route_kind(RouterKind k) {
  switch (k) {
    case RouterKind::kSigmoidGroupTopk: return cuda::RouteKind::kSigmoidGroupTopk;
    case RouterKind::kSoftmaxGreedy: return cuda::RouteKind::kSoftmaxGreedy;
    case RouterKind::kSoftmaxGroupGreedy: return cuda::RouteKind::kSoftmaxGroupGreedy;
    case RouterKind::kSoftmaxTopk: return cuda::RouteKind::kSoftmaxTopk;
  }
  return cuda::RouteKind::kSoftmaxTopk;
}

int widest(const ModelConfig& c) {
  return std::max({c.intermediate_size, c.moe_intermediate_size, c.shared_intermediate()});
}

}  // namespace

FfnWorkspace carve_workspace(const ModelConfig& c, int T, DeviceArena& a) {
  const size_t h = c.hidden_size, E = std::max(c.n_routed_experts, 1), k = std::max(c.top_k, 1);
  const size_t routed_rows = T * k, width = widest(c);
  const size_t act_elems = std::max(routed_rows * c.moe_intermediate_size, size_t(T) * width);
  FfnWorkspace w;
  w.max_tokens = T;
  w.x = a.take<bf16>(T * h);
  w.xn = a.take<bf16>(T * h);
  w.logits = a.take<float>(T * E);
  w.logits_bf16 = a.take<bf16>(T * E);
  w.ids = a.take<int32_t>(T * k);
  w.weights = a.take<float>(T * k);
  w.group_offset = a.take<int32_t>(E + 1);
  w.tile_offset = a.take<int32_t>(E + 1);
  w.row_token = a.take<int32_t>(routed_rows);
  w.slot_row = a.take<int32_t>(routed_rows);
  w.act = a.take<bf16>(act_elems);
  w.y = a.take<bf16>(routed_rows * h);
  w.extra = a.take<bf16>(T * h);
  w.cublas_ws = a.take_bytes(kCublasWorkspace);
  w.cublas_ws_bytes = kCublasWorkspace;
  return w;
}

cuda::GemmTile routed_tile(const ModelConfig& c, int n, bool fp8) {
  return cuda::gemm_tile_for_rows(static_cast<double>(n) * c.top_k / std::max(c.n_routed_experts, 1), fp8);
}

void run_dense_mlp(const bf16* gate_up, const bf16* down, int width, int hidden, const bf16* xn, int n,
                   const FfnWorkspace& ws, bf16* out, cudaStream_t s) {
  cuda::GroupedGemmParams g{};
  g.tile = cuda::gemm_tile_for_rows(n);
  const int bm = cuda::gemm_tile_rows(g.tile);
  g.groups = 1;
  g.m = n;
  g.max_tiles = (n + bm - 1) / bm;
  g.a = xn;
  g.w = gate_up;
  g.c = ws.act;
  g.n = 2 * width;
  g.k = hidden;
  g.silu_mul = true;
  cuda::grouped_gemm_bf16_bf16(g, s);
  g.silu_mul = false;
  g.a = ws.act;
  g.w = down;
  g.c = out;
  g.n = hidden;
  g.k = width;
  cuda::grouped_gemm_bf16_bf16(g, s);
}

namespace {

void mark_stage(const StageMarks* marks, const char* stage) {
  if (marks) marks->mark(marks->ctx, stage);
}

// Router GEMM, routing, permutation over the experts L holds, and the two grouped GEMMs: afterwards ws.y holds
// the expert outputs in permuted order and ws.slot_row / ws.weights say where each (token, slot) went.
void routed_experts(const ModelConfig& c, const FfnLayerDev& L, const FfnWorkspace& ws, cublasHandle_t blas, int n,
                    cudaStream_t s, const cuda::GemmTile* tile_override, const StageMarks* marks) {
  const int h = c.hidden_size, E = c.n_routed_experts, k = c.top_k;
  AFD_CHECK(L.expert_count > 0 && L.expert_lo >= 0 && L.expert_lo + L.expert_count <= E, "experts ",
            L.expert_lo, "+", L.expert_count, " of ", E);
  // Router logits [n, E] = xn · router^T (column-major view: logits^T [E, n] = router [E,h] · xn^T).
  const float one = 1.0f, zero = 0.0f;
  AFD_CUBLAS_CHECK(cublasSetStream(blas, s));
  // (Measured on an H100: an fp32 GEMM of fp32 copies, CUBLAS_COMPUTE_32F_PEDANTIC, cost 80 us more per V3-shape
  // decode layer of 64 tokens, 13 us more per V2-Lite one.)
  void* out = L.router_fp32_logits ? static_cast<void*>(ws.logits) : static_cast<void*>(ws.logits_bf16);
  AFD_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, E, n, h, &one, L.router, CUDA_R_16BF, h, ws.xn,
                                CUDA_R_16BF, h, &zero, out, L.router_fp32_logits ? CUDA_R_32F : CUDA_R_16BF, E,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  mark_stage(marks, "router_gemm");
  cuda::RouteParams rp{};
  rp.logits = L.router_fp32_logits ? ws.logits : nullptr;
  rp.logits_bf16 = L.router_fp32_logits ? nullptr : ws.logits_bf16;
  rp.bias = L.router_bias;
  rp.ids = ws.ids;
  rp.weights = ws.weights;
  rp.tokens = n;
  rp.experts = E;
  rp.k = k;
  rp.kind = route_kind(c.router);
  rp.n_group = c.n_group;
  rp.topk_group = c.topk_group;
  rp.norm_topk = c.norm_topk_prob;
  rp.scale = static_cast<float>(c.routed_scaling_factor);
  rp.round_weights_bf16 = c.arch == Arch::kQwen3Moe;
  cuda::route_topk_f32(rp, s);
  mark_stage(marks, "route");

  const cuda::GemmTile tile = tile_override ? *tile_override : routed_tile(c, n, L.experts_gate_up8 != nullptr);
  const int bm = cuda::gemm_tile_rows(tile), local = L.expert_count;
  cuda::moe_permute({ws.ids, ws.group_offset, ws.tile_offset, ws.row_token, ws.slot_row, n, k, local, bm,
                     L.expert_lo},
                    s);
  mark_stage(marks, "permute");
  expert_gemms(L, h, ws, tile, n * k, s, marks);
}

}  // namespace

void expert_gemms(const FfnLayerDev& L, int h, const FfnWorkspace& ws, cuda::GemmTile tile, int rows, cudaStream_t s,
                  const StageMarks* marks) {
  const int I = L.expert_width, local = L.expert_count, bm = cuda::gemm_tile_rows(tile);
  cuda::GroupedGemmParams g{};
  g.tile = tile;
  g.groups = local;
  g.group_offset = ws.group_offset;
  g.tile_offset = ws.tile_offset;
  g.max_tiles = (rows + bm - 1) / bm + std::min(local, rows);
  g.a = ws.xn;
  g.a_rows = ws.row_token;
  g.w = L.experts_gate_up;
  g.w8 = L.experts_gate_up8;
  g.w8_scale = L.experts_gate_up_scale;
  g.w_stride = static_cast<int64_t>(2) * I * h;
  g.w8_scale_stride = static_cast<int64_t>(2) * I * cuda::fp8_scale_cols(h);
  g.c = ws.act;
  g.n = 2 * I;
  g.k = h;
  g.silu_mul = true;
  cuda::grouped_gemm_bf16_bf16(g, s);
  mark_stage(marks, "gate_up_silu");
  g.silu_mul = false;
  g.a = ws.act;
  g.a_rows = nullptr;
  g.w = L.experts_down;
  g.w8 = L.experts_down8;
  g.w8_scale = L.experts_down_scale;
  g.w_stride = static_cast<int64_t>(h) * I;
  g.w8_scale_stride = static_cast<int64_t>(h) * cuda::fp8_scale_cols(I);
  g.c = ws.y;
  g.n = h;
  g.k = I;
  cuda::grouped_gemm_bf16_bf16(g, s);
  mark_stage(marks, "down");
}

void run_ffn_layer(const ModelConfig& c, const FfnLayerDev& L, const FfnWorkspace& ws, cublasHandle_t blas,
                   bf16* x, int n, cudaStream_t s, const cuda::GemmTile* tile_override, const StageMarks* marks) {
  AFD_CHECK(n >= 0 && n <= ws.max_tokens, "n ", n, " max ", ws.max_tokens);
  if (n == 0) return;
  const int h = c.hidden_size;
  cuda::rmsnorm_bf16_bf16({x, L.post_norm, ws.xn, n, h, c.rms_norm_eps}, s);
  mark_stage(marks, "norm");
  cuda::CombineParams cp{};
  cp.x = x;
  cp.tokens = n;
  cp.hidden = h;
  if (!L.moe) {
    run_dense_mlp(L.dense_gate_up, L.dense_down, L.dense_width, h, ws.xn, n, ws, ws.extra, s);
    cp.extra = ws.extra;
    cuda::combine_residual_bf16(cp, s);
    return;
  }
  AFD_CHECK(L.expert_lo == 0 && L.expert_count == c.n_routed_experts, "a one-GPU layer holds every expert");
  routed_experts(c, L, ws, blas, n, s, tile_override, marks);
  if (L.shared_gate_up) {
    run_dense_mlp(L.shared_gate_up, L.shared_down, L.shared_width, h, ws.xn, n, ws, ws.extra, s);
    cp.extra = ws.extra;
    mark_stage(marks, "shared");
  }
  cp.y = ws.y;
  cp.slot_row = ws.slot_row;
  cp.weights = ws.weights;
  cp.k = c.top_k;
  cp.round_products = c.arch == Arch::kQwen3Moe;
  cuda::combine_residual_bf16(cp, s);
  mark_stage(marks, "combine");
}

void run_ffn_partial(const ModelConfig& c, const FfnLayerDev& L, const FfnWorkspace& ws, cublasHandle_t blas,
                     const bf16* x, int n, cudaStream_t s, float* partial, bool with_shared) {
  AFD_CHECK(L.moe && n >= 0 && n <= ws.max_tokens, "n ", n, " max ", ws.max_tokens);
  if (n == 0) return;
  const int h = c.hidden_size;
  cuda::rmsnorm_bf16_bf16({x, L.post_norm, ws.xn, n, h, c.rms_norm_eps}, s);
  routed_experts(c, L, ws, blas, n, s, nullptr, nullptr);
  cuda::combine_partial_f32({ws.y, ws.slot_row, ws.weights, partial, n, h, c.top_k, c.arch == Arch::kQwen3Moe}, s);
  if (with_shared && L.shared_gate_up)
    run_dense_mlp(L.shared_gate_up, L.shared_down, L.shared_width, h, ws.xn, n, ws, ws.extra, s);
}

void finish_ffn_partial(const ModelConfig& c, const FfnLayerDev& L, const FfnWorkspace& ws, bf16* x, int n,
                        const float* routed_sum, cudaStream_t s) {
  if (n == 0) return;
  cuda::CombineParams cp{};
  cp.x = x;
  cp.tokens = n;
  cp.hidden = c.hidden_size;
  cp.routed_sum = routed_sum;
  cp.extra = L.shared_gate_up ? ws.extra : nullptr;
  cuda::combine_residual_bf16(cp, s);
}

}  // namespace afd::gpu
