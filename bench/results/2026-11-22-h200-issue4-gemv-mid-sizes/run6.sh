#!/bin/bash
# Scratch: spread_gemv_kernel with batches across rows; block size 8/16/32 warps at one wave,
# against HEAD's GEMV, f16, spread forced at every one-row shape. Then the GEMV tests.
set -e
if [ ! -f /tmp/old/build/libllmk.so ]; then
rm -rf /tmp/old && mkdir /tmp/old && cp -r include src CMakeLists.txt cmake tests bench bindings examples /tmp/old/ 2>/dev/null || true
cp scratch_ab/head/gemv_kernels.cuh scratch_ab/head/gemv_launch.cuh /tmp/old/src/ops/matmul/
(cmake -S /tmp/old -B /tmp/old/build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real -DLLMK_BUILD_TESTS=OFF >/dev/null && cmake --build /tmp/old/build -j 16 --target llmk >/dev/null) &
fi
(cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real >/dev/null && cmake --build build-gpu -j 16 >/dev/null) &
wait
nvcc -std=c++17 -arch=sm_90a -Iinclude scratch_ab/autocheck.cu -o /tmp/autocheck -Lbuild-gpu -lllmk
LD_LIBRARY_PATH=/tmp/old/build /tmp/autocheck f16 > $OUT/head.txt
for w in 32 8 16; do
  SCRATCH_SPREAD_ALL=1 SCRATCH_SPREAD_WARPS=$w LD_LIBRARY_PATH=build-gpu /tmp/autocheck f16 > $OUT/spread$w.txt
done
./build-gpu/tests/llmk_gpu_tests --gtest_filter='*Matmul*:*Gemv*:*Mlp*:*Ffn*:*Gated*' > $OUT/gtest.txt 2>&1 || true
grep -E "^\[  (PASSED|FAILED)|FAILED|tests ran" $OUT/gtest.txt | tail -8
for w in 8 16; do SCRATCH_SPREAD_WARPS=$w ./build-gpu/tests/llmk_gpu_tests --gtest_filter='MatmulGemv.*' 2>&1 | tail -1; done
paste -d'#' $OUT/head.txt $OUT/spread32.txt $OUT/spread8.txt $OUT/spread16.txt | awk -F'|' '{printf "%s | head %s cub %s | s32 %s | s8 %s | s16 %s\n", $3, $4, $5, $11, $18, $25}'
