#!/bin/bash
# Scratch: the read floor at the byte sizes of the one-row weight shapes (f16), beside the GEMV
# and cuBLASLt at those shapes (HEAD, autocheck f16), so each GEMV time has its ceiling.
set -e
(cmake -S . -B build-gpu -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real -DLLMK_BUILD_TESTS=OFF >/dev/null && cmake --build build-gpu -j 16 --target llmk bench_read_floor >/dev/null)
nvcc -std=c++17 -arch=sm_90a -Iinclude scratch_ab/autocheck.cu -o /tmp/autocheck -Lbuild-gpu -lllmk
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,temperature.gpu --format=csv > $OUT/gpu.txt
LD_LIBRARY_PATH=build-gpu /tmp/autocheck f16 > $OUT/autocheck_f16.txt
sizes=""
for s in "4096 11008" "5120 5120" "5120 13824" "8192 28672" "3072 8192" "1024 4096" "768 3072" "1536 6144" "3584 18944" "2304 9216" "2048 8192" "2176 8192" "512 2048" "64 4096"; do
  set -- $s; sizes="$sizes $(( $1 * $2 * 2 ))"
done
./build-gpu/bench/bench_read_floor $sizes > $OUT/read_floor.txt
cat $OUT/read_floor.txt $OUT/autocheck_f16.txt
