// Grouped bf16 GEMM on tensor cores (mma.sync m16n8k16, fp32 accumulation, bf16 output), bf16 or fp8 weights:
//   for each group g: C[rows of g, 0:n) = A[rows of g, 0:k) · W[g]^T          (W[g] is [n, k] row-major)
// or, with the fused gated-MLP epilogue (silu_mul), C[rows of g, 0:n/2) = bf16(bf16(silu(G)) * U), where G and U
// are the bf16-rounded gate and up outputs (MODEL_SPEC.md 1) and W[g]'s rows are interleaved by
// interleave_gate_up(): every 16 rows are 8 gate rows followed by the 8 up rows of the same 8 features.
// The rows of group g are [group_offset[g], group_offset[g+1]) in C's row space; A row r is a_rows[r] when a row
// gather is given (the token permutation of a MoE layer), else r. Groups with no rows cost nothing: the grid is
// sized by an upper bound known on the host and surplus blocks exit, so no host sync is needed (graph-capturable).
// Each output element's accumulation order depends only on k, never on which rows share its launch, so a row's
// result is the same whatever the batch (batch invariance; the LM head relies on it).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace afd::cuda {

// Block tiles (rows x output columns), chosen per call by the average rows per group (gemm_tile_for_rows; the
// choice was made by measurement, bench/RESULTS.md). 16-row tiles stream weights for decode; 128-row tiles are
// for prefill.
// kM128N256Wgmma is the 128x256 tile on Hopper warpgroup MMAs (sm_90a builds on compute capability 9.0 only:
// gemm_tile_available says whether this build and the current device have it): a warp-specialised persistent
// kernel with TMA weight tiles for bf16 whose group stride is whole rows (grouped_gemm_ws.cu), a block-synchronous
// one otherwise (fp8: every thread converts each stage). Every tile gives the same bits (the MMAs' k order is the
// same), so the choice never changes a result.
// kM128N256WgmmaFp8 is the same tile whose fp8 weights go through a warp-specialised kernel of their own
// (grouped_gemm_ws_fp8.cu: the producer warpgroup converts the e4m3 tiles while the consumers compute); bf16
// weights, or a group stride that is not whole rows, run as kM128N256Wgmma. gemm_tile_for_rows does not choose it
// until it has run and been timed on a GPU (bench/run_moe_gpu.sh: the GPU tests compare it bit for bit with every
// other tile, afd-bench-moe-gpu times it as the fp8 tile "128x256wg8").
enum class GemmTile { kM16, kM16N64, kM16N256, kM64, kM128, kM128N256, kM128N256Wgmma, kM128N256WgmmaFp8 };
constexpr GemmTile kAllGemmTiles[] = {GemmTile::kM16,           GemmTile::kM16N64,   GemmTile::kM16N256,
                                      GemmTile::kM64,           GemmTile::kM128,     GemmTile::kM128N256,
                                      GemmTile::kM128N256Wgmma, GemmTile::kM128N256WgmmaFp8};
int gemm_tile_rows(GemmTile t);             // BM of the tile: 16, 64 or 128
const char* gemm_tile_name(GemmTile t);     // "16x128" etc.
bool gemm_tile_available(GemmTile t);       // false only for the wgmma tiles off sm_90a builds / devices
// fp8_weights: the weights are e4m3 (GroupedGemmParams::w8), converted per k stage: the conversion is shared by
// the rows of a tile, which moves the point where taller tiles pay off.
GemmTile gemm_tile_for_rows(double rows_per_group, bool fp8_weights = false);

struct GroupedGemmParams {
  const __nv_bfloat16* a;        // [a_row_count, k] row-major activations
  const int32_t* a_rows;         // [m_total] gather: C row r reads A row a_rows[r]; null = identity
  const __nv_bfloat16* w;        // [groups, n, k] row-major weights; group g starts at w + g * w_stride
  int64_t w_stride;              // elements between consecutive groups' weights
  __nv_bfloat16* c;              // [m_total, n] row-major output, row stride n
  const int32_t* group_offset;   // [groups + 1] device, first C row of each group; null = one group of m rows
  const int32_t* tile_offset;    // [groups + 1] device, first M tile (of gemm_tile_rows(tile)) of each group
  int groups;                    // number of groups (1 when group_offset is null)
  int m;                         // rows when group_offset is null; else unused
  int max_tiles;                 // upper bound on M tiles (grid.y); host-known, e.g. ceil(rows/BM) + groups
  int n, k;                      // GEMM columns and reduction length; multiples of 8 (of 16 with silu_mul)
  GemmTile tile;
  bool silu_mul;                 // fused SiLU·mul epilogue: C is [m_total, n / 2]
  // Weight-only fp8 (e4m3 with block scales along k, as DeepSeek-V3 checkpoints ship): with w8 set, w is unused
  // and W[g][r][c] = bf16(fp32(w8[g][r][c]) * w8_scale[g][r][c / 128]), the value the loader's dequantisation
  // stores, so the result equals the bf16 path on dequantised weights bit for bit while HBM streams half the
  // bytes. Scales are per row (a checkpoint's 128-row blocks expanded, which also survives the gate/up interleave).
  // Needs k % 16 == 0.
  const uint8_t* w8;             // [groups, n, k] e4m3 bytes; group g starts at w8 + g * w_stride
  const float* w8_scale;         // [groups, n, ceil(k / 128)]; group g starts at w8_scale + g * w8_scale_stride
  int64_t w8_scale_stride;
};

constexpr int kFp8ScaleCols = 128;  // k columns per fp8 scale
// Scales per row of an fp8 weight matrix with k columns (the row stride of GroupedGemmParams::w8_scale).
inline int fp8_scale_cols(int k) { return (k + kFp8ScaleCols - 1) / kFp8ScaleCols; }

// Row r of the interleaved [2 * width, k] gate/up matrix: which row of cat(gate, up) it holds (width % 8 == 0).
inline int interleaved_gate_up_source(int r, int width) {
  const int block = r / 16, within = r % 16;
  return within < 8 ? block * 8 + within : width + block * 8 + within - 8;
}

void grouped_gemm_bf16_bf16(const GroupedGemmParams& p, cudaStream_t stream);

}  // namespace afd::cuda
