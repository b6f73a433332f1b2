#!/usr/bin/env bash
# One multi-GPU device call: the expert-parallel and engine GPU tests, the balanced-split point of the engine issue
# (DeepSeek-V3 shapes: 3 dense + 2 MoE layers, experts over 2 GPUs, short context, batch and M swept), then the
# Qwen3-30B-A3B split sweep with its HF transformers peer, cut off at the call's time limit (afd-bench writes its
# outputs after every point). Usage (repository root): bench/run_call3_gpu.sh ARCHIVE OUT_DIR
set -uo pipefail
archive=$1
out=$2
mkdir -p "$out"
start=$SECONDS
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$archive"
export AFD_SOURCE_DIR=$PWD
timeout 150 "$work/afd/bin/afd_tests_gpu" "[ep],[engine]" >"$out/tests.log" 2>&1
echo "gpu tests [ep],[engine] rc=$? ($((SECONDS - start)) s)"; tail -n 3 "$out/tests.log"
timeout 170 "$work/afd/bin/afd-bench" --config configs/deepseek.yaml --layers 5 --gpus 2 --context 512 \
  --prefill synthetic --prefill-probe-tokens 0 --warmup 1 --steps 4 --sweep batch=8,16,32,64 \
  --sweep micro_batches=1,2,3 --out "$out/v3-balance" 2>&1 | grep -v '^\s*$' | tail -n 16
echo "v3 balance done ($((SECONDS - start)) s)"
PEER=1 timeout $((560 - (SECONDS - start))) bash bench/run_sweeps_gpu.sh "$archive" "$out/qwen3" \
  configs/qwen3-30b-a3b.yaml qwen3-30b-a3b 3
echo "all done ($((SECONDS - start)) s)"
