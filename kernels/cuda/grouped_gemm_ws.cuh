// The warp-specialised wgmma grouped GEMM (sm_90a): GemmTile::kM128N256Wgmma with bf16 weights. Internal to
// grouped_gemm.cu's dispatch; GroupedGemmParams and its contract are in grouped_gemm.cuh.
#pragma once

#include <cuda_runtime_api.h>

#include "cuda/grouped_gemm.cuh"

namespace afd::cuda {

// The weight tiles come by TMA from W viewed as one [rows, k] tensor: bf16 weights whose group stride is whole rows.
bool grouped_gemm_ws_supported(const GroupedGemmParams& p);
void grouped_gemm_ws(const GroupedGemmParams& p, cudaStream_t stream);

}  // namespace afd::cuda
