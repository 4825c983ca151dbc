#!/bin/bash
# Scratch: RunWarp software-pipelined. Tree: batches of 4, 3 blocks/SM (80 registers). varB: batches
# of 3, 4 blocks/SM (64 registers). HEAD: RunWarp as shipped. f16 autocheck each (GEMV forced,
# cuBLASLt, AUTO), also with RunWarp forced at every one-row shape; GEMV tests on the tree.
set -e
rm -rf /tmp/old /tmp/varB && mkdir /tmp/old /tmp/varB
for d in /tmp/old /tmp/varB; do cp -r include src CMakeLists.txt cmake tests bench bindings examples $d/ 2>/dev/null || true; done
cp scratch_ab/head/gemv_kernels.cuh scratch_ab/head/gemv_launch.cuh /tmp/old/src/ops/matmul/
python3 - <<'PY'
p = "/tmp/varB/src/ops/matmul/gemv_kernels.cuh"
s = open(p).read(); i = s.index("struct RunWarp {")
head, tail = s[:i], s[i:]
tail = tail.replace("static constexpr int kMinBlocksPerSm = 3;", "static constexpr int kMinBlocksPerSm = 4;", 1).replace("static constexpr int kSteps = 4;", "static constexpr int kSteps = 3;", 1)
open(p, "w").write(head + tail)
PY
grep -A12 "^struct RunWarp" /tmp/varB/src/ops/matmul/gemv_kernels.cuh | grep "constexpr" > $OUT/varB_consts.txt
(cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real >/dev/null && cmake --build build-gpu -j 16 >/dev/null) &
for d in /tmp/old /tmp/varB; do (cmake -S $d -B $d/build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real -DLLMK_BUILD_TESTS=OFF >/dev/null && cmake --build $d/build -j 16 --target llmk >/dev/null) & done
wait
nvcc -std=c++17 -arch=sm_90a -Iinclude scratch_ab/autocheck.cu -o /tmp/autocheck -Lbuild-gpu -lllmk
LD_LIBRARY_PATH=/tmp/old/build /tmp/autocheck f16 > $OUT/head.txt
LD_LIBRARY_PATH=build-gpu /tmp/autocheck f16 > $OUT/p4x3.txt
LD_LIBRARY_PATH=/tmp/varB/build /tmp/autocheck f16 > $OUT/p3x4.txt
SCRATCH_RUNS_ALL=1 LD_LIBRARY_PATH=build-gpu /tmp/autocheck f16 > $OUT/p4x3_all.txt
SCRATCH_RUNS_ALL=1 LD_LIBRARY_PATH=/tmp/varB/build /tmp/autocheck f16 > $OUT/p3x4_all.txt
./build-gpu/tests/llmk_gpu_tests --gtest_filter='*Matmul*:*Gemv*:*Mlp*:*Ffn*:*Gated*' > $OUT/gtest.txt 2>&1 || true
grep -E "^\[  (PASSED|FAILED)|FAILED|tests ran" $OUT/gtest.txt | tail -8
