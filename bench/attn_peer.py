#!/usr/bin/env python3
"""PyTorch CPU attention on the shapes of afd-bench-attn-cpu, as the peer to compare against (run on the GPU host,
where PyTorch is installed). GQA decode: F.scaled_dot_product_attention in bf16. MLA absorbed decode: the two
einsums of MODEL_SPEC 2.4 as bf16 matmuls with an fp32 softmax. Same batch, context and FLOP/byte counts as the
C++ bench. Usage: python3 bench/attn_peer.py [--batch 64] [--ctx 4096] [--iters 5]"""
import argparse
import time

import torch
import torch.nn.functional as F


def timed(fn, iters):
    fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--iters", type=int, default=5)
    a = ap.parse_args()
    torch.manual_seed(0)
    B, T = a.batch, a.ctx
    print(f"attn_peer.py: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, batch {B}, context {T}")

    # GQA decode, Qwen3-30B-A3B: 32 q heads, 4 kv heads, head dim 128.
    q = torch.randn(B, 32, 1, 128, dtype=torch.bfloat16)
    k = torch.randn(B, 4, T, 128, dtype=torch.bfloat16)
    v = torch.randn(B, 4, T, 128, dtype=torch.bfloat16)
    with torch.no_grad():
        s = timed(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), a.iters)
    kv_bytes = 2 * B * 4 * T * 128 * 2
    print(f"peer GQA decode (SDPA bf16, enable_gqa)          {s * 1e3:8.2f} ms  KV {kv_bytes / s / 1e9:.2f} GB/s")
    del q, k, v

    # MLA absorbed decode: q = [q_nope W_UK | q_pe] (576), cache = [latent | k_pe] (576), values = latent (512).
    kv = torch.randn(B, T, 576, dtype=torch.bfloat16)
    for name, heads in (("DeepSeek-V3", 128), ("DeepSeek-V2-Lite", 16)):
        q = torch.randn(B, heads, 576, dtype=torch.bfloat16)

        def mla():
            sc = torch.matmul(q, kv.transpose(1, 2)).float() * 0.1352
            p = torch.softmax(sc, dim=-1).to(torch.bfloat16)
            return torch.matmul(p, kv[:, :, :512])

        with torch.no_grad():
            s = timed(mla, max(1, a.iters // 2 + 1))
        flops = 2.0 * B * heads * T * (576 + 512)
        print(f"peer MLA decode ({name:16s}: {heads:3d} heads)   {s * 1e3:8.2f} ms  {flops / s / 1e12:.3f} TFLOP/s")


if __name__ == "__main__":
    main()
