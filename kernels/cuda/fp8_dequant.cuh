// Block-scaled FP8 (e4m3) to bf16 dequantisation on the GPU (DeepSeek-V3 release format, MODEL_SPEC.md section 4):
//   W[i][j] = bf16( fp32(q[i][j]) * scale[i / block_rows][j / block_cols] )
// with ceil-div scale grids, so partial edge blocks index correctly. Used at load to place fp8 experts as bf16.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace afd::cuda {

struct Fp8DequantParams {
  const uint8_t* q;       // [rows, cols] e4m3 bytes, row-major
  const float* scale;     // [ceil(rows / block_rows), ceil(cols / block_cols)] fp32, row-major
  __nv_bfloat16* out;     // [rows, cols] bf16, row-major
  int64_t rows, cols;
  int block_rows, block_cols;
};

void dequant_fp8_e4m3_bf16(const Fp8DequantParams& p, cudaStream_t stream);

}  // namespace afd::cuda
