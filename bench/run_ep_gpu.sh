#!/usr/bin/env bash
# On a multi-GPU machine, from the repository root: the GPU tests (expert-parallel ones included), then afd-bench-ep
# (MoE-layer throughput on 1, 2 and 4 GPUs for DeepSeek-V3 expert shapes, three transfer modes).
# Usage: bench/run_ep_gpu.sh ARCHIVE OUTDIR [MOE_LAYERS]
set -uo pipefail
archive=$1
out=$2
layers=${3:-2}
mkdir -p "$out"
nvidia-smi topo -m >"$out/topo.txt" 2>&1
AFD_TESTS="afd_tests_gpu" bash tools/gpu-check.sh "$archive" >"$out/check.log" 2>&1
echo "gpu-check rc=$?"; tail -n 25 "$out/check.log"
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$archive"
mkdir -p "$out/ep"
timeout 420 "$work/afd/bin/afd-bench-ep" --preset deepseek-v3 --moe-layers "$layers" --gpus 1,2,4 \
  --tokens 64,256,1024 --modes copies+reduce,broadcast+reduce,copies+host-sum --iters 8 --out "$out/ep" 2>&1 |
  tee "$out/ep.log"
