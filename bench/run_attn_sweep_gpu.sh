#!/usr/bin/env bash
# CPU attention sweep of one afd-bench-attn-cpu flag on the GPU host, from one packed build (tools/pack-gpu.sh):
# every value once per round, ROUNDS rounds in one call, so that host drift hits every value alike. Logs per run
# under OUT_DIR. Usage (repository root): bench/run_attn_sweep_gpu.sh ARCHIVE OUT_DIR FLAG "V1 V2 ..." [ROUNDS=2] [ARGS...]
set -uo pipefail
archive=$1
out=$2
flag=$3
values=$4
rounds=${5:-2}
shift 5 2>/dev/null || shift $#
mkdir -p "$out"
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$archive"
for r in $(seq 1 "$rounds"); do
  for v in $values; do
    LD_LIBRARY_PATH="$work/afd/lib:$LD_LIBRARY_PATH" "$work/afd/bin/afd-bench-attn-cpu" --iters 6 "$@" "$flag" "$v" \
      >"$out/${flag#--}-$v-$r.log" 2>&1
    echo "== $flag $v round $r"; grep -E "ceiling  used|decode|MLA|GQA" "$out/${flag#--}-$v-$r.log"
  done
done
