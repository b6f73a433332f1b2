// The machine's ceilings, measured in the same run as the numbers compared against them (afd-bench).
#pragma once

#include <string>

namespace afd::bench {

struct Ceilings {
  double host_read_bw = 0;    // bytes/s, all threads reading a buffer far larger than the caches
  double cpu_gemm_flops = 0;  // FLOP/s of a oneDNN matmul in the precision the CPU side runs (bf16 or f32)
  std::string cpu_gemm_impl;  // which oneDNN implementation ran
  // Arithmetic peak of the attention kernels' instruction on all cores (cpu/peak.h), and its ISA: the ceiling of
  // the attention side's FLOPs (the AMX / AVX-512 kernels can beat a oneDNN GEMM on the same CPU).
  double cpu_peak_flops = 0;
  std::string cpu_peak_isa;
  bool has_gpu = false;
  double hbm_bw = 0;          // bytes/s, device-to-device copy, read + write counted
  double gpu_gemm_flops = 0;  // FLOP/s, cuBLAS bf16 GEMM
  double pcie_bw = 0;         // bytes/s, pinned host-to-device copy
};

// `quick`: smaller buffers and fewer repetitions (CI).
Ceilings measure_ceilings(bool quick, bool want_gpu);
// Fills the GPU fields (only in builds with CUDA; elsewhere returns false).
bool measure_gpu_ceilings(Ceilings& c, bool quick);

}  // namespace afd::bench
