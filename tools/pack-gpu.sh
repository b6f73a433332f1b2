#!/usr/bin/env bash
# Packs what the GPU machine needs to run afd built here: the binaries of BUILD_DIR and the shared libraries it
# lacks (everything ldd resolves outside glibc/libstdc++/CUDA), into ARCHIVE (default .gpu/afd-gpu.tar.xz; .gpu is
# git-ignored: carry it). Usage: tools/pack-gpu.sh [BUILD_DIR] [ARCHIVE]
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
archive=${2:-$root/.gpu/afd-gpu.tar.xz}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/afd/bin" "$stage/afd/lib" "$(dirname "$archive")"
bins=$(find "$build" -maxdepth 3 -type f -executable \( -name 'afd-*' -o -name 'afd_tests_*' -o -name 'afd_bench_*' \) ! -name '*.cmake')
for b in $bins; do cp "$b" "$stage/afd/bin/" && strip --strip-debug "$stage/afd/bin/$(basename "$b")"; done
# Shared libraries the GPU host may not have (glibc, libstdc++, libgcc and CUDA's own are there).
for b in $bins; do
  ldd "$b" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libgcc_s*|libstdc++*|libcuda*|libcublas*|libnccl*|libnvidia*) ;;
    *) cp -L "$lib" "$stage/afd/lib/" ;;
  esac
done
tar -C "$stage" -cJf "$archive" afd
ls -la "$archive"
