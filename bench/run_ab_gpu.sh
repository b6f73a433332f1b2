#!/usr/bin/env bash
# A/B on a GPU machine: one afd binary of two packed builds (tools/pack-gpu.sh) with the same arguments, interleaved
# ROUNDS times (A, B, A, B, ...) in one call, so that the machine's drift (bandwidth, clocks, other tenants) hits
# both alike. Run SIDE-R logs to OUT_DIR/SIDE-R.log; an argument "{run}" becomes OUT_DIR/SIDE-R (e.g. afd-bench's
# --out). Lines matching $AB_SHOW (an extended regex; default: every non-blank line) are printed as they come.
# Usage (repository root): bench/run_ab_gpu.sh BINARY ARCHIVE_A ARCHIVE_B OUT_DIR ROUNDS [ARGS...]
# e.g. bench/run_ab_gpu.sh afd-bench .gpu/head.tar.xz .gpu/main.tar.xz $OUT/ab 2 --config configs/deepseek.yaml \
#        --layers 6 --gpus 4 --context 4096 --prefill synthetic --prefill-probe-tokens 0 --warmup 1 --steps 2 \
#        --sweep batch=256 --sweep micro_batches=2 --out {run}
set -uo pipefail
bin=$1
a=$2
b=$3
out=$4
rounds=$5
shift 5
show=${AB_SHOW:-.}
mkdir -p "$out"
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$a"
work_a=$work
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$b"
work_b=$work
for r in $(seq 1 "$rounds"); do
  for side in a b; do
    w=work_$side
    args=()
    for x in "$@"; do args+=("${x//\{run\}/$out/$side-$r}"); done
    LD_LIBRARY_PATH="${!w}/afd/lib:$LD_LIBRARY_PATH" "${!w}/afd/bin/$bin" "${args[@]}" >"$out/$side-$r.log" 2>&1
    echo "== $side round $r"; grep -E "$show" "$out/$side-$r.log" | grep -v '^\s*$'
  done
done
