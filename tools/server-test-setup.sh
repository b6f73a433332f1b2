#!/usr/bin/env bash
# Installs what the server tests (tests/server) drive afd-serve with besides curl: the `openai` npm package, pinned,
# into tests/data/node (git-ignored). Idempotent: an install of the pinned version is kept.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/tests/data/node"
version=4.104.0
installed="$prefix/node_modules/openai/package.json"
if [ -f "$installed" ] && grep -q "\"version\": \"$version\"" "$installed"; then
  exit 0
fi
command -v npm >/dev/null || { echo "server-test-setup: npm is required to install openai@$version" >&2; exit 1; }
mkdir -p "$prefix"
npm install --silent --no-audit --no-fund --prefix "$prefix" "openai@$version" >/dev/null
echo "server-test-setup: installed openai@$version in $prefix"
