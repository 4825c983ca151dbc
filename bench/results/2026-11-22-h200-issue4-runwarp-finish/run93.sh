#!/bin/bash
# Scratch: HEAD vs tree (RunWarp: uniform warp index, per-warp finish at split 1, split rule).
set -e
for v in v6 $( [ -f /tmp/old/build/libllmk.so ] || echo old ); do
  rm -rf /tmp/$v && mkdir /tmp/$v && cp -r include src CMakeLists.txt cmake tests bench bindings examples /tmp/$v/ 2>/dev/null || true
done
cp scratch_ab/head/gemv_kernels.cuh scratch_ab/head/gemv_launch.cuh /tmp/old/src/ops/matmul/
cp scratch_ab/v6/gemv_kernels.cuh /tmp/v6/src/ops/matmul/
(cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real >/dev/null && cmake --build build-gpu -j 16 >/dev/null) &
for v in old v6; do
(cmake -S /tmp/$v -B /tmp/$v/build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real -DLLMK_BUILD_TESTS=OFF >/dev/null && cmake --build /tmp/$v/build -j 16 --target llmk >/dev/null) &
done
wait
nvcc -std=c++17 -arch=sm_90a -Iinclude scratch_ab/autocheck.cu -o /tmp/autocheck -Lbuild-gpu -lllmk 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv > $OUT/gpu.txt
for r in 1 2 3; do
  for v in old v6 tree; do
    lib=/tmp/$v/build; [ $v = tree ] && lib=build-gpu
    echo "## $v run $r" >> $OUT/all.txt; LD_LIBRARY_PATH=$lib /tmp/autocheck >> $OUT/all.txt
  done
done
./build-gpu/tests/llmk_gpu_tests --gtest_filter='*Matmul*:*Gemv*:*Mlp*:*Ffn*:*Gated*' > $OUT/gtest.txt 2>&1 || true
grep -E "^\[  (PASSED|FAILED)|FAILED|tests ran" $OUT/gtest.txt | tail -8
