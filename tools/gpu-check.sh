#!/usr/bin/env bash
# Runs afd's tests on the GPU machine from a packed build (tools/pack-gpu.sh): first checks that a real NVIDIA GPU
# is there, then the GPU-labelled tests, then the CPU tests on that host's CPU (AVX-512/AMX paths).
# Usage (repository root on the GPU machine): [AFD_TESTS="afd_tests_gpu ..."] tools/gpu-check.sh [ARCHIVE]
set -uo pipefail
archive=${1:-.gpu/afd-gpu.tar.xz}
root=$(pwd)
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU is visible here (nvidia-smi failed); these tests need the GPU machine" >&2
  exit 2
fi
nvidia-smi -L
source "$(dirname "$0")/gpu-unpack.sh" "$archive"
export AFD_SOURCE_DIR="$root" AFD_RUN_BIN="$work/afd/bin/afd-run" AFD_BENCH_BIN="$work/afd/bin/afd-bench" AFD_DEFAULT_MODEL="$root/models/pystdlib-moe"
grep -o -m1 -E 'avx512[a-z_0-9]*|amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
status=0
tests="$work/afd/bin/afd_tests_gpu $(ls "$work"/afd/bin/afd_tests_* | grep -v '/afd_tests_gpu$')"
# $AFD_TESTS (names, space-separated) narrows the set, e.g. to leave out suites needing files that do not travel.
if [ -n "${AFD_TESTS:-}" ]; then tests=$(for t in $AFD_TESTS; do echo "$work/afd/bin/$t"; done); fi
for t in $tests; do
  echo "== $(basename "$t")"
  "$t" 2>&1 | tail -n 30
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
echo "gpu-check: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit $status
