#include "cpu/cpu_isa.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace afd::cpu {

namespace {

constexpr int kArchReqXcompPerm = 0x1023;  // arch_prctl(ARCH_REQ_XCOMP_PERM, ...)
constexpr int kXfeatureXtiledata = 18;

unsigned long long xgetbv0() {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}

struct Features {
  bool avx2 = false, avx512bf16 = false, amx = false;
};

Features detect() {
  Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29);
  if (!osxsave) return f;
  const unsigned long long xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;
  const bool tile_state = (xcr0 & 0x60000) == 0x60000;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = a & (1u << 5);
  f.avx2 = avx2 && fma && f16c && ymm_state;
  f.avx512bf16 = f.avx2 && zmm_state && avx512f && avx512bw && avx512vl && avx512_bf16;
  // AMX tiles need the OS to grant the XTILEDATA state to this process before the first tile instruction.
  f.amx = f.avx512bf16 && amx_tile && amx_bf16 && tile_state &&
          syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512Bf16: return "avx512bf16";
    case Isa::kAmx: return "amx";
  }
  return "?";
}

bool cpu_supports(Isa isa) {
  const Features& f = features();
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return f.avx2;
    case Isa::kAvx512Bf16: return f.avx512bf16;
    case Isa::kAmx: return f.amx;
  }
  return false;
}

Isa best_isa() {
  int cap = kNumIsas - 1;
  if (const char* env = std::getenv("AFD_CPU_ISA"); env && *env) {
    if (!std::strcmp(env, "scalar")) cap = 0;
    else if (!std::strcmp(env, "avx2")) cap = 1;
    else if (!std::strcmp(env, "avx512")) cap = 2;
  }
  for (int i = cap; i > 0; --i)
    if (cpu_supports(static_cast<Isa>(i))) return static_cast<Isa>(i);
  return Isa::kScalar;
}

}  // namespace afd::cpu
