// The warp-specialised wgmma grouped GEMMs (sm_90a): GemmTile::kM128N256Wgmma with bf16 weights
// (grouped_gemm_ws.cu) and GemmTile::kM128N256WgmmaFp8 with fp8 weights (grouped_gemm_ws_fp8.cu). Internal to
// grouped_gemm.cu's dispatch; GroupedGemmParams and its contract are in grouped_gemm.cuh.
#pragma once

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "cuda/grouped_gemm.cuh"

namespace afd::cuda {

// The weight tiles come by TMA from W viewed as one [rows, k] tensor: weights whose group stride is whole rows.
bool grouped_gemm_ws_supported(const GroupedGemmParams& p);
void grouped_gemm_ws(const GroupedGemmParams& p, cudaStream_t stream);      // bf16 weights
void grouped_gemm_ws_fp8(const GroupedGemmParams& p, cudaStream_t stream);  // fp8 weights (p.w8), k % 16 == 0

namespace ws {
// The TMA descriptor of the weights (p.w bf16 with the stages' 128-byte swizzle, or p.w8 e4m3 unswizzled) as one
// [rows, k] tensor, boxes of 256 rows x 64 k; cached per thread.
CUtensorMap weight_map(const GroupedGemmParams& p, int rows_per_group);
int sm_count(int dev);  // multiprocessors of device dev, cached
}  // namespace ws

}  // namespace afd::cuda
