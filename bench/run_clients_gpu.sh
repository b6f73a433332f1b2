#!/usr/bin/env bash
# The attention:FFN process-ratio sweep of issue 9 on the GPU machine, from a packed build (tools/pack-gpu.sh): one
# FFN server on the GPU (started by afd-bench around its GPU FFN) and 1, 2 or 4 attention engines against it, each
# with an even share of ATTN_THREADS and the full batch; DeepSeek-V2-Lite shapes, all layers, KV filled synthetically.
# Usage (repository root): bench/run_clients_gpu.sh ARCHIVE OUT_DIR [ATTN_THREADS]
set -uo pipefail
archive=$1
out=$2
threads=${3:-32}
mkdir -p "$out"
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$archive"
nproc; nvidia-smi --query-gpu=name --format=csv,noheader
"$work/afd/bin/afd-bench" --config configs/deepseek-v2-lite.yaml --context 1024 --batch 64 --prefill synthetic \
  --prefill-probe-tokens 0 --warmup 1 --steps 3 --sweep attn_threads="$threads" --sweep clients=1,2,4 \
  --sweep micro_batches=1,2 --out "$out/bench" 2>&1 | grep -v '^\s*$' | tail -n 24
