#!/usr/bin/env bash
# The AFD engine with the GPU FFN on the GPU machine, from a packed build (tools/pack-gpu.sh): the demo model's
# perplexity through the engine (M = 1, 2) against the reference engine, and a small afd-bench sweep over
# DeepSeek-V2-Lite shapes (synthetic weights, layers reduced to fit the time of one call: said in the output).
# Usage (repository root on the GPU machine): bench/run_engine_gpu.sh ARCHIVE OUT_DIR
set -uo pipefail
archive=${1:-.gpu/afd-gpu.tar.xz}
out=${2:-/tmp/afd-engine-gpu}
mkdir -p "$out"
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$archive"
bin=$work/afd/bin
for m in 1 2; do
  "$bin/afd-run" --model models/pystdlib-moe --ffn-device gpu --micro-batches $m --perplexity models/pystdlib-moe/eval.txt \
    --json | tee -a "$out/perplexity.jsonl"
done
"$bin/afd-bench" --config configs/deepseek-v2-lite.yaml --layers "${LAYERS:-4}" --batch "${BATCH:-32}" \
  --context "${CONTEXT:-1024}" --steps 6 --warmup 2 --sweep micro_batches=1,2,3 --out "$out/bench" 2>&1 | tee "$out/bench.txt"
