#!/bin/bash
# Scratch: the stripped one-warp-per-row kernel beside the library's GEMV (HEAD), zero and random data.
set -e
(cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real -DLLMK_BUILD_TESTS=OFF >/dev/null && cmake --build build-gpu -j 16 --target llmk >/dev/null)
nvcc -std=c++17 -arch=sm_90a -Iinclude -Isrc scratch_ab/runwarp_parts.cu -o /tmp/rwp -Lbuild-gpu -lllmk
echo "## zeros"; LD_LIBRARY_PATH=build-gpu /tmp/rwp

