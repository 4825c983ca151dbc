export LD_LIBRARY_PATH=$PWD/build:$LD_LIBRARY_PATH LLMK_LIBRARY=$PWD/build/libllmk.so LLMK_VECTORS_DIR=$PWD/tests/vectors
export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv > $OUT/device.txt
./build/tests/llmk_gpu_tests --gtest_filter='MatmulGemv.*:MlpSweep.GatedGemvWithRowsLongerThanABatch:MlpSweep.GatedMlpAgainstTheCpu:MatmulCache.*' > $OUT/tests.txt 2>&1; echo "tests rc=$?"; tail -3 $OUT/tests.txt
compute-sanitizer --tool memcheck --error-exitcode 1 ./build/tests/llmk_gpu_tests --gtest_filter='MatmulGemv.FewRowsAcrossWarpShares:MlpSweep.GatedGemvWithRowsLongerThanABatch' > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $OUT/memcheck.txt
python3 bench/bench_matmul.py --parts decode,shapes --markdown $OUT/matmul.md --json $OUT/matmul.json > $OUT/bench.log 2>&1; echo "bench rc=$?"; tail -5 $OUT/bench.log
