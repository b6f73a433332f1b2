#!/usr/bin/env bash
# CPU attention A/B on the GPU host: afd-bench-attn-cpu of two packed builds (tools/pack-gpu.sh), interleaved
# ROUNDS times (A, B, A, B, ...) in one call, so that host drift hits both alike (bench/run_ab_gpu.sh). Logs per run
# under OUT_DIR. Usage (repository root): bench/run_attn_ab_gpu.sh ARCHIVE_A ARCHIVE_B OUT_DIR [ROUNDS=2] [ARGS...]
set -uo pipefail
rounds=${4:-2}
AB_SHOW="ceiling  used|decode|MLA|GQA" exec "$(dirname "$0")/run_ab_gpu.sh" afd-bench-attn-cpu "$1" "$2" "$3" "$rounds" \
  --iters 6 "${@:5}"
