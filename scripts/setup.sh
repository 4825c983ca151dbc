#!/usr/bin/env bash
# Installs what building and testing llmk needs beyond a machine with a C++ toolchain, CMake and
# the CUDA toolkit: GoogleTest, Go and bindgen (Debian packages), numpy and pytest (PyPI).
# Idempotent: skips what is already there.
set -euo pipefail
missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v bindgen >/dev/null || missing+=(bindgen)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -f /usr/include/gtest/gtest.h ] || missing+=(libgtest-dev)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
python3 -c 'import numpy, pytest' 2>/dev/null || python3 -m pip install -q numpy pytest
command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required" >&2; exit 1; }
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
  { echo "setup: the CUDA toolkit (nvcc) is required" >&2; exit 1; }
