// The CPU's arithmetic peak for the instruction the attention kernels of an ISA are built on, measured: every
// thread runs independent chains of that instruction on register-resident operands (no memory traffic), so no
// kernel of that ISA can exceed the rate. A roofline ceiling for benchmarks (afd-bench's bound), not a kernel.
//   scalar: fp32 FMA as the compiler emits it for the portable build; avx2: vfmadd ps (16 FLOP);
//   avx512: vdpbf16ps zmm (64 FLOP); amx: tdpbf16ps on 16x16 f32 tiles (16384 FLOP).
#pragma once

#include <cstdint>

#include "cpu/cpu_isa.h"

namespace afd::cpu {

// FLOP/s of `threads` threads together; 0 when `isa` is not supported here (cpu_supports) or threads < 1.
double peak_flops(Isa isa, int threads);

// Per-ISA loops: `iters` rounds of the ISA's instruction chains; return the FLOP they did. Call through peak_flops.
double peak_loop_scalar(int64_t iters);
double peak_loop_avx2(int64_t iters);
double peak_loop_avx512(int64_t iters);
double peak_loop_amx(int64_t iters);

}  // namespace afd::cpu
