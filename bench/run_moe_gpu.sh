#!/usr/bin/env bash
# On the GPU machine, from the repository root: the project's GPU check on a packed build, the GpuFfn tests in
# full (their measured errors), compute-sanitizer memcheck on the GEMM and FFN tests, then the MoE bench and its
# PyTorch peer.
# Usage: bench/run_moe_gpu.sh ARCHIVE OUTDIR
set -uo pipefail
archive=$1
out=$2
bash tools/gpu-check.sh "$archive" 2>&1 | tee "$out/check.log"
source "$(dirname "$0")/../tools/gpu-unpack.sh" "$archive"
export AFD_SOURCE_DIR=$PWD
"$work/afd/bin/afd_tests_gpu" "[ffn],[head]" >"$out/tests_full.log" 2>&1
echo "full GPU tests rc=$?"; grep -E "test cases|assertions" "$out/tests_full.log"
# One GEMM test at a time under memcheck: the every-tile test runs each tile with bf16 and fp8 weights (64 GEMMs).
timeout 240 compute-sanitizer --tool memcheck "$work/afd/bin/afd_tests_gpu" "[gemm]" 2>&1 | tail -n 4
timeout 120 compute-sanitizer --tool memcheck "$work/afd/bin/afd_tests_gpu" "[ffn]" 2>&1 | tail -n 4
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw --format=csv
"$work/afd/bin/afd-bench-moe-gpu" "$out/bench.csv" 2>&1 | tee "$out/bench.log"
PYTHONUNBUFFERED=1 python3 bench/moe_peer.py "$out/peer.csv" 2>&1 | tee "$out/peer.log"
