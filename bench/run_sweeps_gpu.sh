#!/usr/bin/env bash
# The split-ratio sweeps of issue 7 on the GPU machine (also the full-size engine points of issue 6), from a packed
# build (tools/pack-gpu.sh): for one preset, the HF transformers peer (bench/hf_peer.py, all on the GPU) and then
# afd-bench over attention threads x micro-batches x batch at context 2048 on every layer (synthetic weights, the KV
# cache filled synthetically, a 1024-token real prefill probe per point).
# Usage (repository root): bench/run_sweeps_gpu.sh ARCHIVE OUT_DIR CONFIG PRESET [STEPS]
set -uo pipefail
archive=$1
out=$2
config=$3
preset=$4
steps=${5:-3}
mkdir -p "$out"
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$archive"
nproc; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ "${PEER:-1}" = 1 ]; then
  timeout 240 python3 bench/hf_peer.py "$preset" "$out/peer.csv" --batch 16,64,256 --context 2048 --steps 3 2>&1 |
    grep -v Warning | tail -n 8
fi
peer=()
[ -s "$out/peer.csv" ] && peer=(--peer "$out/peer.csv")
"$work/afd/bin/afd-bench" --config "$config" --context 2048 --prefill synthetic --prefill-probe-tokens 1024 \
  --warmup 1 --steps "$steps" --sweep attn_threads=4,8,16 --sweep micro_batches=1,2,3 --sweep batch=16,64,256 \
  "${peer[@]}" --out "$out/bench" 2>&1 | grep -v '^\s*$' | tail -n 40
