// PTX wrappers for Hopper's warpgroup MMA (wgmma, sm_90a): shared-memory matrix descriptors for the 128-byte
// swizzled K-major layout the grouped GEMM's stages already use, the fence / commit / wait protocol, and
// m64n256k16 and m64n128k16 with bf16 inputs and fp32 accumulators.
// Invariants: a descriptor's tile starts at a 1024-byte aligned shared address (the swizzle pattern repeats every
// 8 rows x 128 B and is applied to absolute address bits); rows are 128 B (64 bf16 of k), 8-row groups 1024 B apart;
// the k16 slice ks of a stage is the same descriptor advanced by ks * 32 bytes (the hardware applies the swizzle
// after the offset). Shared memory written by ordinary stores or cp.async must be published to the async proxy
// (fence_proxy_async) before a wgmma reads it.
#pragma once

#include <cstdint>

namespace afd::cuda::wgmma {

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define AFD_WGMMA_ENABLED 1
#endif

// Descriptor of a K-major bf16 tile at shared address `smem` (bytes), 128-byte swizzle.
__device__ __forceinline__ uint64_t desc_k_major_sw128(uint32_t smem) {
  uint64_t d = (smem & 0x3FFFF) >> 4;       // start address / 16
  d |= uint64_t{16 >> 4} << 16;             // leading byte offset (unused with this swizzle; 1 by convention)
  d |= uint64_t{1024 >> 4} << 32;           // stride byte offset: 8 rows x 128 B
  d |= uint64_t{1} << 62;                   // 128-byte swizzle
  return d;
}

__device__ __forceinline__ void fence() {
#ifdef AFD_WGMMA_ENABLED
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void commit() {
#ifdef AFD_WGMMA_ENABLED
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void wait() {
#ifdef AFD_WGMMA_ENABLED
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Makes this thread's generic-proxy shared-memory writes (st.shared, cp.async) visible to later async-proxy reads.
__device__ __forceinline__ void fence_proxy_async() {
#ifdef AFD_WGMMA_ENABLED
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// The first 64 accumulator registers of a wgmma asm statement, and eight accumulator operands d[b .. b + 7].
#define AFD_R64                                                                                       \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                             \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                   \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                   \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define AFD_D8(b)                                                                                          \
  "+f"(d[b]), "+f"(d[b + 1]), "+f"(d[b + 2]), "+f"(d[b + 3]), "+f"(d[b + 4]), "+f"(d[b + 5]), "+f"(d[b + 6]), \
      "+f"(d[b + 7])

// d[64 x N per warpgroup] += A[64 x 16] . B[N x 16]^T, both K-major in shared memory, N = 256 or 128 (mma<N>).
// Accumulator layout (per warp w of the warpgroup, lane l): d[4j + q] is row 16w + l/4 + 8(q/2), column
// 8j + 2(l%4) + q%2: mma.sync's m16n8 fragment repeated over N/8 n8 tiles.
__device__ __forceinline__ void mma_m64n256k16_bf16(float (&d)[128], uint64_t desc_a, uint64_t desc_b) {
#ifdef AFD_WGMMA_ENABLED
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
      AFD_R64 ", "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
      "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
      : AFD_D8(0), AFD_D8(8), AFD_D8(16), AFD_D8(24), AFD_D8(32), AFD_D8(40), AFD_D8(48), AFD_D8(56),
        AFD_D8(64), AFD_D8(72), AFD_D8(80), AFD_D8(88), AFD_D8(96), AFD_D8(104), AFD_D8(112), AFD_D8(120)
      : "l"(desc_a), "l"(desc_b));
#else
  (void)d; (void)desc_a; (void)desc_b;
  __trap();
#endif
}
// m64n128k16: the same for 128 columns (the accumulator layout above, j < 16).
__device__ __forceinline__ void mma_m64n128k16_bf16(float (&d)[64], uint64_t desc_a, uint64_t desc_b) {
#ifdef AFD_WGMMA_ENABLED
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      AFD_R64
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : AFD_D8(0), AFD_D8(8), AFD_D8(16), AFD_D8(24), AFD_D8(32), AFD_D8(40), AFD_D8(48), AFD_D8(56)
      : "l"(desc_a), "l"(desc_b));
#else
  (void)d; (void)desc_a; (void)desc_b;
  __trap();
#endif
}
template <int N>
__device__ __forceinline__ void mma(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b) {
  static_assert(N == 256 || N == 128, "m64n256k16 and m64n128k16 are wrapped");
  if constexpr (N == 256)
    mma_m64n256k16_bf16(d, desc_a, desc_b);
  else
    mma_m64n128k16_bf16(d, desc_a, desc_b);
}

#undef AFD_D8
#undef AFD_R64

}  // namespace afd::cuda::wgmma
