// Run-time CPU feature detection for the per-ISA attention kernels. The build machine never decides: every
// AVX-512 / AMX entry point is reached only through kernels_for() after cpu_supports() said yes.
#pragma once

namespace afd::cpu {

// Ordered from the most portable to the fastest; a later ISA implies nothing about an earlier one except
// that kAvx512Bf16 and kAmx also need AVX2 (always true on CPUs that have them).
enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512Bf16 = 2, kAmx = 3 };
constexpr int kNumIsas = 4;
constexpr Isa kAllIsas[kNumIsas] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512Bf16, Isa::kAmx};

const char* isa_name(Isa isa);

// True when this CPU and OS can run kernels of `isa` (CPUID feature bits, XGETBV state enabled by the OS and,
// for AMX, arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) granted; the request is made once, on first query).
bool cpu_supports(Isa isa);

// The fastest ISA this CPU supports, capped by $AFD_CPU_ISA (scalar|avx2|avx512|amx) when it is set.
Isa best_isa();

}  // namespace afd::cpu
