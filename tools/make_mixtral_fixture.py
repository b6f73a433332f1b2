#!/usr/bin/env python3
"""Makes the Mixtral fixtures the way tests/fixtures/README.md describes the others: a tiny random checkpoint in the
real HF layout (saved by transformers, original per-expert names) and what transformers computes for it in float32
over the bf16-rounded weights, recomputing the whole sequence at every greedy step (no KV cache).

Runs where torch + transformers are installed (the GPU machine):  python3 tools/make_mixtral_fixture.py OUT_DIR
Writes OUT_DIR/mixtral_tiny (full causal attention) and OUT_DIR/mixtral_swa_tiny (sliding window 8, prompts longer
than the window), each with config.json, model.safetensors, expected.json and expected.safetensors.
"""
import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import MixtralConfig, MixtralForCausalLM

STEPS = 12
PROMPT_LENGTHS = (24, 7, 41)


def make(out_dir, name, sliding_window, seed):
    torch.manual_seed(seed)
    cfg = MixtralConfig(vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
                        rms_norm_eps=1e-5, rope_theta=1e6, max_position_embeddings=256,
                        sliding_window=sliding_window, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    cfg._attn_implementation = "eager"
    model = MixtralForCausalLM(cfg)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))  # norm weights around 1
            else:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))  # std 1/sqrt(fan_in), [.., out, in] layouts
    model = model.to(torch.bfloat16)
    d = os.path.join(out_dir, name)
    model.save_pretrained(d)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(d, extra)):
            os.remove(os.path.join(d, extra))
    # Reload in float32 rather than casting back: a cast would leave the rotary inv_freq buffer bf16-rounded.
    model = MixtralForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()

    gen = torch.Generator().manual_seed(seed + 1)
    cases, tensors = [], {}
    with torch.no_grad():
        for i, T in enumerate(PROMPT_LENGTHS):
            prompt = torch.randint(3, cfg.vocab_size, (T,), generator=gen)
            prefill = model(prompt[None]).logits[0].float()
            ids = prompt.clone()
            steps = []
            for _ in range(STEPS):
                logits = model(ids[None]).logits[0, -1].float()
                steps.append(logits)
                ids = torch.cat([ids, logits.argmax().view(1)])
            tensors[f"prefill_logits_{i}"] = prefill.contiguous()
            tensors[f"step_logits_{i}"] = torch.stack(steps).contiguous()
            tensors[f"tokens_{i}"] = ids.to(torch.int64).contiguous()
            cases.append({"prompt": prompt.tolist(), "greedy": ids[T:].tolist()})
    save_file(tensors, os.path.join(d, "expected.safetensors"))
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"model_type": "mixtral", "family": "mixtral", "transformers": transformers.__version__,
                   "torch": torch.__version__, "sliding_window": sliding_window,
                   "reference": "float32 forward of the bf16 weights, full recompute per step (eager attention)",
                   "cases": cases}, f)
    print(name, "written:", sorted(os.listdir(d)))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    make(out, "mixtral_tiny", None, 1234)
    make(out, "mixtral_swa_tiny", 8, 4321)
