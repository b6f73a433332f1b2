#!/usr/bin/env bash
# CPU attention A/B on the GPU host: afd-bench-attn-cpu of two packed builds (tools/pack-gpu.sh), interleaved
# ROUNDS times (A, B, A, B, ...) in one call, so that host drift hits both alike. Logs per run under OUT_DIR.
# Usage (repository root): bench/run_attn_ab_gpu.sh ARCHIVE_A ARCHIVE_B OUT_DIR [ROUNDS=2] [ARGS...]
set -uo pipefail
a=$1
b=$2
out=$3
rounds=${4:-2}
shift 4 2>/dev/null || shift $#
mkdir -p "$out"
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$a"
work_a=$work
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$b"
work_b=$work
for r in $(seq 1 "$rounds"); do
  for side in a b; do
    w=work_$side
    LD_LIBRARY_PATH="${!w}/afd/lib:$LD_LIBRARY_PATH" "${!w}/afd/bin/afd-bench-attn-cpu" --iters 6 "$@" \
      >"$out/$side-$r.log" 2>&1
    echo "== $side round $r"; grep -E "ceiling  used|decode|MLA|GQA" "$out/$side-$r.log"
  done
done
