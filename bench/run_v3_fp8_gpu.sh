#!/usr/bin/env bash
# DeepSeek-V3 at its real shapes on a lent multi-GPU kind (issue 10 before nvidia-h200-x8 is lent): synthetic
# weights with the routed experts kept fp8 on the GPUs (as a released checkpoint's would be), as many layers as fit,
# experts over GPUS GPUs, attention and KV on the host, context 4096, batch 64 and 256 with M = 1 and 2. Prints the
# full-size memory plan first. afd-bench writes its outputs after every point, so a cut-off run keeps what it measured.
# Usage (repository root): bench/run_v3_fp8_gpu.sh ARCHIVE OUT_DIR [LAYERS] [GPUS] [SECONDS]
set -uo pipefail
archive=$1
out=$2
layers=${3:-24}
gpus=${4:-4}
budget=${5:-420}
mkdir -p "$out"
start=$SECONDS
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$archive"
nproc; free -g | head -2; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$work/afd/bin/afd-run" --config configs/deepseek.yaml --dry-run --gpus "$gpus" --context 4096 | tee "$out/plan.txt"
timeout $((budget - (SECONDS - start))) "$work/afd/bin/afd-bench" --config configs/deepseek.yaml --layers "$layers" \
  --gpus "$gpus" --context 4096 --prefill synthetic --prefill-probe-tokens 0 --warmup 1 --steps 2 \
  --sweep batch=64,256 --sweep micro_batches=2 --out "$out/bench" 2>&1 | grep -v '^\s*$' | tail -n 20
echo "done ($((SECONDS - start)) s)"
