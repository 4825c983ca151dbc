#!/bin/bash
# Scratch: HEAD vs tree (RunWarp's slice broadcast), and RunWarp's forced splits on the tree.
set -e
for v in old v4s; do
  rm -rf /tmp/$v && mkdir /tmp/$v && cp -r include src CMakeLists.txt cmake tests bench bindings examples /tmp/$v/ 2>/dev/null || true
done
cp scratch_ab/head/gemv_kernels.cuh scratch_ab/head/gemv_launch.cuh /tmp/old/src/ops/matmul/
python3 - <<'PY'
p='/tmp/v4s/src/ops/matmul/gemv_launch.cuh'
s=open(p).read()
old="split = pick_run_split(tiles, args.k / Tile::kSegment, Tile::kSteps, resident);"
assert old in s
s=s.replace(old, old+'\n    if (const char* e = std::getenv("SCRATCH_RUN_SPLIT")) split = std::atoi(e);')
s='#include <cstdlib>\n'+s
open(p,'w').write(s)
PY
(cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real >/dev/null && cmake --build build-gpu -j 16 >/dev/null) &
for v in old v4s; do
(cmake -S /tmp/$v -B /tmp/$v/build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real -DLLMK_BUILD_TESTS=OFF >/dev/null && cmake --build /tmp/$v/build -j 16 --target llmk >/dev/null) &
done
wait
nvcc -std=c++17 -arch=sm_90a -Iinclude scratch_ab/autocheck.cu -o /tmp/autocheck -Lbuild-gpu -lllmk 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv > $OUT/gpu.txt
for r in 1 2 3; do
  for v in old tree; do
    lib=/tmp/$v/build; [ $v = tree ] && lib=build-gpu
    echo "## $v run $r" >> $OUT/all.txt; LD_LIBRARY_PATH=$lib /tmp/autocheck >> $OUT/all.txt
    echo "## $v rows $r" >> $OUT/rows.txt; LD_LIBRARY_PATH=$lib /tmp/autocheck rows >> $OUT/rows.txt
  done
done
for r in 1 2; do echo "## splits $r" >> $OUT/splits.txt; LD_LIBRARY_PATH=/tmp/v4s/build /tmp/autocheck splits >> $OUT/splits.txt; done
./build-gpu/tests/llmk_gpu_tests --gtest_filter='*Matmul*:*Gemv*:*Mlp*:*Ffn*:*Gated*' > $OUT/gtest.txt 2>&1 || true
grep -E "^\[  (PASSED|FAILED)|FAILED|tests ran" $OUT/gtest.txt | tail -8
compute-sanitizer --tool memcheck ./build-gpu/tests/llmk_gpu_tests --gtest_filter='MatmulGemv.*' > $OUT/memcheck.txt 2>&1 || true
tail -3 $OUT/memcheck.txt
