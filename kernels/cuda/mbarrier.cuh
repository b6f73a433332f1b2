// PTX wrappers for shared-memory mbarriers and the Hopper tensor-memory accelerator (TMA), as the warp-specialised
// grouped GEMM uses them: a producer fills a stage (cp.async arrivals and/or TMA bytes counted by the barrier's
// transaction count), consumers wait on the stage's parity and release it through a second barrier.
// Parity protocol: a barrier's phase k completes once; waiting for phase k passes `k & 1`.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "cuda/mma_util.cuh"

namespace afd::cuda::mbar {

__device__ __forceinline__ void init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(ptx::smem_addr(bar)), "r"(count) : "memory");
}
// Makes initialised barriers visible to the async proxy (TMA's complete_tx) and the other threads (with a
// __syncthreads after).
__device__ __forceinline__ void fence_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(ptx::smem_addr(bar)) : "memory");
}
// One arrival that also expects `bytes` more transaction bytes (TMA) before the phase can complete.
__device__ __forceinline__ void arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(ptx::smem_addr(bar)), "r"(bytes)
               : "memory");
}
// One arrival once every cp.async this thread issued before has landed (counted in the barrier's init count).
__device__ __forceinline__ void cp_async_arrive(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(ptx::smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(ptx::smem_addr(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
// TMA: the box at (x = column, y = row) of the 2-D tensor `map` into shared memory at `dst`, completing `bytes`
// on `bar`.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, int x, int y, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::
          "r"(ptx::smem_addr(dst)),
      "l"(map), "r"(x), "r"(y), "r"(ptx::smem_addr(bar))
      : "memory");
}

}  // namespace afd::cuda::mbar
