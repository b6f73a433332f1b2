#!/usr/bin/env python3
"""PyTorch peer of afd-bench-moe-gpu: one MoE layer (post-norm, router, sort by expert, torch._grouped_mm for gate/up
and down, SiLU*mul, weighted combine, residual) at DeepSeek-V3 and V2-Lite expert shapes, 64/256/4096 tokens,
synthetic random bf16 weights, with the same ceilings measured in the same run (device-to-device copy counted as
read + write, bf16 GEMM 8192^3). Usage: python3 bench/moe_peer.py [csv_path]"""
import sys

import torch
import torch.nn.functional as F


def median_ms(fn, warm=3, reps=20):
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def ceilings():
    n = 1 << 30  # bf16 elements: 2 GiB
    src = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src))
    copy = 2 * src.numel() * 2 / (ms * 1e-3) / 1e9
    del src, dst
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = median_ms(lambda: a @ b)
    return copy, 2 * 8192**3 / (ms * 1e-3) / 1e12


def route(xn, wr, bias, E, k, n_group, topk_group, sigmoid, scale):
    logits = xn.float() @ wr.t()
    if sigmoid:  # DeepSeek-V3 noaux_tc
        s = logits.sigmoid()
        sc = s + bias
        gs = sc.view(-1, n_group, E // n_group).topk(2, dim=-1).values.sum(-1)
        keep = gs.topk(topk_group, dim=-1).indices
        mask = torch.zeros_like(gs).scatter_(1, keep, 1.0).bool()
        mask = mask.unsqueeze(-1).expand(-1, n_group, E // n_group).reshape(-1, E)
        idx = sc.masked_fill(~mask, float("-inf")).topk(k, dim=-1).indices
        w = s.gather(1, idx)
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    else:  # DeepSeek-V2 greedy
        p = logits.softmax(-1)
        w, idx = p.topk(k, dim=-1)
    return idx, w * scale


def layer(x, P, cfg):
    E, k = cfg["E"], cfg["k"]
    xn = F.rms_norm(x, (x.shape[-1],), P["norm"], 1e-6)
    idx, w = route(xn, P["router"], P["bias"], E, k, cfg["n_group"], cfg["topk_group"], cfg["sigmoid"], cfg["scale"])
    flat = idx.flatten()
    order = flat.argsort(stable=True)
    counts = torch.bincount(flat, minlength=E)
    offs = counts.cumsum(0).to(torch.int32)
    xs = xn[order // k]
    h = torch._grouped_mm(xs, P["gu"].transpose(-2, -1), offs=offs)
    g, u = h.chunk(2, dim=-1)
    a = F.silu(g) * u
    y = torch._grouped_mm(a, P["dn"].transpose(-2, -1), offs=offs)
    out = torch.empty_like(y)
    out[order] = y
    routed = (out.view(-1, k, x.shape[-1]).float() * w.unsqueeze(-1)).sum(1).to(x.dtype)
    return x + routed, counts


def main():
    torch.manual_seed(0)
    dev = torch.cuda.get_device_name(0)
    copy, gemm = ceilings()
    print(f"peer: {dev}, torch {torch.__version__}")
    print(f"peer ceilings: d2d copy {copy:.0f} GB/s (read+write), bf16 GEMM 8192^3 {gemm:.0f} TFLOP/s")
    shapes = [dict(name="V3", E=256, k=8, h=7168, I=2048, n_group=8, topk_group=4, sigmoid=True, scale=2.5),
              dict(name="V2-Lite", E=64, k=6, h=2048, I=1408, n_group=1, topk_group=1, sigmoid=False, scale=1.0)]
    rows = []
    print(f"{'shape':8} {'tokens':>6} {'layer ms':>9} {'experts':>7} {'GB':>7} {'GB/s':>7} {'bw':>6} {'TFLOP/s':>8} "
          f"{'gemm':>6}")
    for cfg in shapes:
        E, h, I, k = cfg["E"], cfg["h"], cfg["I"], cfg["k"]
        def uni(shape, a, dtype=torch.bfloat16):  # in place: no full-size temporaries next to 22 GB of weights
            return torch.empty(shape, device="cuda", dtype=dtype).uniform_(-a, a)
        P = dict(gu=uni((E, 2 * I, h), 0.03), dn=uni((E, h, I), 0.03), router=uni((E, h), 0.05, torch.float32),
                 bias=torch.zeros(E, device="cuda"), norm=uni((h,), 0.1).add_(1.0))
        for n in (64, 256, 4096):
            x = uni((n, h), 1.0)
            ms = median_ms(lambda: layer(x, P, cfg))
            _, counts = layer(x, P, cfg)
            touched = int((counts > 0).sum())
            gb = touched * 3 * I * h * 2 / 1e9
            gbps = gb / (ms * 1e-3)
            tflops = 2 * n * k * 3 * I * h / (ms * 1e-3) / 1e12
            print(f"{cfg['name']:8} {n:6d} {ms:9.3f} {touched:7d} {gb:7.2f} {gbps:7.0f} {gbps / copy:6.2f} "
                  f"{tflops:8.1f} {tflops / gemm:6.2f}")
            rows.append((cfg["name"], n, ms, touched, gb, gbps, gbps / copy, tflops, tflops / gemm, copy, gemm))
        del P
        torch.cuda.empty_cache()
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as f:
            f.write("shape,tokens,layer_ms,touched_experts,touched_gb,gbps,bw_frac,tflops,gemm_frac,copy_gbps,"
                    "gemm_tflops\n")
            for r in rows:
                f.write(",".join(str(v) if not isinstance(v, float) else f"{v:.4f}" for v in r) + "\n")


if __name__ == "__main__":
    main()
