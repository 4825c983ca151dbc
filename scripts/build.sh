#!/usr/bin/env bash
# Configures and builds libllmk, the tests, the benchmarks and the demo into build/.
# Extra arguments go to CMake, e.g. -DCMAKE_CUDA_ARCHITECTURES=90a-real for a faster build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/cuda/bin
cmake -S "$root" -B "$root/build" "$@"
cmake --build "$root/build" -j "$(nproc)"
