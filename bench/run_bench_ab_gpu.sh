#!/usr/bin/env bash
# afd-bench A/B on a GPU machine: the same afd-bench arguments on two packed builds (tools/pack-gpu.sh), interleaved
# ROUNDS times (A, B, A, B, ...) in one call, so that the machine's drift (bandwidth, clocks, other tenants) hits
# both alike. Each run's outputs go to OUT_DIR/{a,b}-ROUND/ (results.csv etc.); the summary table is printed as it
# comes. Usage (repository root): bench/run_bench_ab_gpu.sh ARCHIVE_A ARCHIVE_B OUT_DIR ROUNDS AFD_BENCH_ARGS...
# e.g. bench/run_bench_ab_gpu.sh .gpu/head.tar.xz .gpu/main.tar.xz $OUT/ab 2 --config configs/deepseek.yaml \
#        --layers 6 --gpus 4 --context 4096 --prefill synthetic --prefill-probe-tokens 0 --warmup 1 --steps 2 \
#        --sweep batch=256 --sweep micro_batches=2
set -uo pipefail
a=$1
b=$2
out=$3
rounds=$4
shift 4
mkdir -p "$out"
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$a"
work_a=$work
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$b"
work_b=$work
for r in $(seq 1 "$rounds"); do
  for side in a b; do
    w=work_$side
    echo "== $side round $r"
    LD_LIBRARY_PATH="${!w}/afd/lib:$LD_LIBRARY_PATH" "${!w}/afd/bin/afd-bench" "$@" --out "$out/$side-$r" 2>&1 |
      grep -vE '^\s*$|^afd-bench: (measuring|wrote)' 
  done
done
