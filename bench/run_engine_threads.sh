#!/usr/bin/env bash
# Thread-placement experiment on the GPU machine: the same afd-bench point with libgomp's default (spinning)
# OpenMP wait policy and with OMP_WAIT_POLICY=PASSIVE, to see whether oneDNN's OpenMP threads spinning between
# projections steal cores from the attention pool. Usage: bench/run_engine_threads.sh ARCHIVE OUT_DIR
set -uo pipefail
archive=${1:-.gpu/afd-gpu.tar.xz}
out=${2:-/tmp/afd-threads}
mkdir -p "$out"
work=$(mktemp -d)
tar -C "$work" -xJf "$archive"
export LD_LIBRARY_PATH="$work/afd/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for policy in default PASSIVE; do
  if [ "$policy" = PASSIVE ]; then export OMP_WAIT_POLICY=PASSIVE; else unset OMP_WAIT_POLICY; fi
  echo "== OMP_WAIT_POLICY=$policy"
  "$work/afd/bin/afd-bench" --config configs/deepseek-v2-lite.yaml --layers 4 --batch 32 --context 1024 --steps 6 \
    --warmup 2 --sweep micro_batches=1,2 --out "$out/$policy" 2>&1 | grep -v "^afd-bench: wrote"
done
