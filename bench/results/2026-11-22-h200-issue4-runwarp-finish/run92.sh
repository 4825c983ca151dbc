#!/bin/bash
# Scratch: HEAD vs tree (RunWarp: uniform warp index, per-warp finish at split 1, split rule).
set -e
rm -rf /tmp/old && mkdir /tmp/old && cp -r include src CMakeLists.txt cmake tests bench bindings examples /tmp/old/ 2>/dev/null || true
cp scratch_ab/head/gemv_kernels.cuh scratch_ab/head/gemv_launch.cuh /tmp/old/src/ops/matmul/
(cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real >/dev/null && cmake --build build-gpu -j 16 >/dev/null) &
(cmake -S /tmp/old -B /tmp/old/build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real -DLLMK_BUILD_TESTS=OFF >/dev/null && cmake --build /tmp/old/build -j 16 --target llmk >/dev/null) &
wait
nvcc -std=c++17 -arch=sm_90a -Iinclude scratch_ab/autocheck.cu -o /tmp/autocheck -Lbuild-gpu -lllmk 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv > $OUT/gpu.txt
for r in 1 2 3; do
  for v in old tree; do
    lib=/tmp/$v/build; [ $v = tree ] && lib=build-gpu
    echo "## $v run $r" >> $OUT/all.txt; LD_LIBRARY_PATH=$lib /tmp/autocheck >> $OUT/all.txt
  done
done
./build-gpu/tests/llmk_gpu_tests --gtest_filter='*Matmul*:*Gemv*:*Mlp*:*Ffn*:*Gated*' > $OUT/gtest.txt 2>&1 || true
grep -E "^\[  (PASSED|FAILED)|FAILED|tests ran" $OUT/gtest.txt | tail -8
compute-sanitizer --tool memcheck ./build-gpu/tests/llmk_gpu_tests --gtest_filter='MatmulGemv.*:MatmulSweep.EpiloguesAndScalars' > $OUT/memcheck.txt 2>&1 || true
tail -3 $OUT/memcheck.txt
compute-sanitizer --tool racecheck ./build-gpu/tests/llmk_gpu_tests --gtest_filter='MatmulGemv.OneRowInContiguousRunsPerWarp' > $OUT/racecheck.txt 2>&1 || true
tail -3 $OUT/racecheck.txt
