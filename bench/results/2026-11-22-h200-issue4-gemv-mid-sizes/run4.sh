#!/bin/bash
# Scratch: spread_gemv_kernel. Build the tree and HEAD's GEMV (RowWarp + RunWarp) side by side;
# GEMV/matmul/MLP GPU tests and memcheck on the new test; then per shape forced GEMV vs cuBLASLt
# vs AUTO for HEAD, the tree, and the tree with spread forced at every one-row shape.
set -e
rm -rf /tmp/old && mkdir /tmp/old && cp -r include src CMakeLists.txt cmake tests bench bindings examples /tmp/old/ 2>/dev/null || true
cp scratch_ab/head/gemv_kernels.cuh scratch_ab/head/gemv_launch.cuh /tmp/old/src/ops/matmul/
(cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real >/dev/null && cmake --build build-gpu -j 16 >/dev/null) &
(cmake -S /tmp/old -B /tmp/old/build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real -DLLMK_BUILD_TESTS=OFF >/dev/null && cmake --build /tmp/old/build -j 16 --target llmk >/dev/null) &
wait
nvcc -std=c++17 -arch=sm_90a -Iinclude scratch_ab/autocheck.cu -o /tmp/autocheck -Lbuild-gpu -lllmk
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv > $OUT/gpu.txt
./build-gpu/tests/llmk_gpu_tests --gtest_filter='*Matmul*:*Gemv*:*Mlp*:*Ffn*:*Gated*' > $OUT/gtest.txt 2>&1 || true
grep -E "^\[  (PASSED|FAILED)|FAILED|tests ran" $OUT/gtest.txt | tail -8
compute-sanitizer --tool memcheck ./build-gpu/tests/llmk_gpu_tests --gtest_filter='MatmulGemv.OneRowSpread*' > $OUT/memcheck.txt 2>&1 || true
tail -3 $OUT/memcheck.txt
for r in ${ROUNDS:-1}; do
  LD_LIBRARY_PATH=/tmp/old/build /tmp/autocheck > $OUT/head_$r.txt
  LD_LIBRARY_PATH=build-gpu /tmp/autocheck > $OUT/tree_$r.txt
  SCRATCH_SPREAD_ALL=1 LD_LIBRARY_PATH=build-gpu /tmp/autocheck > $OUT/spread_all_$r.txt
done
paste -d'#' $OUT/head_1.txt $OUT/tree_1.txt $OUT/spread_all_1.txt | head -50
