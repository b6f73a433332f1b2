#!/usr/bin/env python3
"""HF transformers peer line for afd-bench: the same synthetic shapes run entirely on one GPU by transformers'
own modelling code (bf16 weights, random values), decoding with a KV cache of `context` positions per sequence.
The cache is filled with random values (as afd-bench's synthetic KV fill does) instead of a real prefill, so only
decode is timed: tokens/s = batch / median step time. The shapes mirror src/model/presets.cpp.

Usage: python3 bench/hf_peer.py PRESET OUT.csv [--batch 16,64,256] [--context 2048] [--layers N] [--steps 5]
A point that does not fit the GPU is reported as "oom" (transformers keeps MLA's full per-head K/V, not the latent).
"""
import argparse
import csv
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

PRESETS = {
    "deepseek-v2-lite": dict(
        model_type="deepseek_v2", vocab_size=102400, hidden_size=2048, num_hidden_layers=27, num_attention_heads=16,
        num_key_value_heads=16, q_lora_rank=None, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
        v_head_dim=128, intermediate_size=10944, moe_intermediate_size=1408, first_k_dense_replace=1,
        n_routed_experts=64, n_shared_experts=2, num_experts_per_tok=6, topk_method="greedy", n_group=1,
        topk_group=1, routed_scaling_factor=1.0, norm_topk_prob=False, rms_norm_eps=1e-6, rope_theta=10000,
        rope_scaling=dict(type="yarn", factor=40, mscale=0.707, mscale_all_dim=0.707,
                          original_max_position_embeddings=4096, beta_fast=32, beta_slow=1),
        max_position_embeddings=163840),
    "qwen3-30b-a3b": dict(
        model_type="qwen3_moe", vocab_size=151936, hidden_size=2048, num_hidden_layers=48, num_attention_heads=32,
        num_key_value_heads=4, head_dim=128, rope_theta=1000000.0, rms_norm_eps=1e-6, num_experts=128,
        num_experts_per_tok=8, moe_intermediate_size=768, intermediate_size=6144, norm_topk_prob=True,
        decoder_sparse_step=1, mlp_only_layers=[], max_position_embeddings=40960),
}


def build(preset, layers):
    kw = dict(PRESETS[preset])
    if layers:
        kw["num_hidden_layers"] = layers
    cfg = AutoConfig.for_model(**kw)
    torch.manual_seed(0)
    with torch.device("cuda"):
        try:
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        except TypeError:
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    return model.eval(), cfg


def fill_cache(cache, context):
    """Replaces every layer's K/V (after a one-token prefill) by random values over `context` positions."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        for lay in layers:
            for name in ("keys", "values"):
                t = getattr(lay, name)
                b, h, _, d = t.shape
                setattr(lay, name, torch.randn(b, h, context, d, device=t.device, dtype=t.dtype))
    else:  # older DynamicCache
        for i in range(len(cache.key_cache)):
            for lst in (cache.key_cache, cache.value_cache):
                b, h, _, d = lst[i].shape
                lst[i] = torch.randn(b, h, context, d, device=lst[i].device, dtype=lst[i].dtype)


@torch.inference_mode()
def decode_point(model, cfg, batch, context, steps):
    ids = torch.randint(0, cfg.vocab_size, (batch, 1), device="cuda")
    out = model(input_ids=ids, use_cache=True)
    cache = out.past_key_values
    fill_cache(cache, context)
    times = []
    for s in range(steps + 2):
        pos = context + s
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(input_ids=ids, past_key_values=cache, use_cache=True,
                    position_ids=torch.full((batch, 1), pos, device="cuda"),
                    cache_position=torch.tensor([pos], device="cuda"))
        ids = out.logits[:, -1:].argmax(-1)
        torch.cuda.synchronize()
        if s >= 2:
            times.append(time.perf_counter() - t0)
        cache = out.past_key_values
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", choices=sorted(PRESETS))
    ap.add_argument("out")
    ap.add_argument("--batch", default="16,64,256")
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    model, cfg = build(a.preset, a.layers)
    print(f"hf-peer {a.preset}: {torch.cuda.get_device_name()}, transformers model {type(model).__name__}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params, {cfg.num_hidden_layers} layers",
          flush=True)
    rows = []
    for b in [int(x) for x in a.batch.split(",")]:
        try:
            step = decode_point(model, cfg, b, a.context, a.steps)
            rows.append(dict(preset=a.preset, batch=b, context=a.context, step_ms=step * 1e3, tok_s=b / step))
            print(f"  batch {b:4d} context {a.context}: step {step * 1e3:8.2f} ms, {b / step:8.0f} tok/s", flush=True)
        except torch.OutOfMemoryError:
            rows.append(dict(preset=a.preset, batch=b, context=a.context, step_ms="oom", tok_s="oom"))
            print(f"  batch {b:4d} context {a.context}: out of GPU memory", flush=True)
        torch.cuda.empty_cache()
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["preset", "batch", "context", "step_ms", "tok_s"])
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
