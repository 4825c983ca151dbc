#!/bin/bash
# Scratch: spread_gemv_kernel's block size (8, 16, 32 warps; one wave) and waves (32 warps, 2 and 4 waves), f16, forced GEMV.
set -e
(cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real >/dev/null && cmake --build build-gpu -j 16 --target llmk >/dev/null)
nvcc -std=c++17 -arch=sm_90a -Iinclude scratch_ab/autocheck.cu -o /tmp/autocheck -Lbuild-gpu -lllmk
for v in "32 1" "8 1" "16 1" "32 2" "32 4" "8 4"; do
  set -- $v
  echo "## warps $1 waves $2" >> $OUT/variants.txt
  SCRATCH_SPREAD_ALL=1 SCRATCH_SPREAD_WARPS=$1 SCRATCH_SPREAD_WAVES=$2 LD_LIBRARY_PATH=build-gpu /tmp/autocheck f16 >> $OUT/variants.txt
done
cat $OUT/variants.txt
