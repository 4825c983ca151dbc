# Carried local build (sm_90a) of the final tree: memcheck on the GEMV tests, bench_matmul decode,shapes.
export LD_LIBRARY_PATH=$PWD/build:$LD_LIBRARY_PATH LLMK_LIBRARY=$PWD/build/libllmk.so LLMK_VECTORS_DIR=$PWD/tests/vectors
export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv; date -u; } > $OUT/device.txt
compute-sanitizer --tool memcheck --error-exitcode 1 ./build/tests/llmk_gpu_tests --gtest_filter='MatmulGemv.*' > /tmp/mc.txt 2>&1; echo "memcheck rc=$?" | tee $OUT/tests.txt; tail -3 /tmp/mc.txt | tee -a $OUT/tests.txt
python3 bench/bench_matmul.py --parts decode,shapes --markdown $OUT/matmul.md --json $OUT/matmul.json > $OUT/bench.log 2>&1; echo "bench rc=$?"
grep -E "^\| 2x|^\| 1x4096x11008|^\| 1x11008" $OUT/matmul.md
