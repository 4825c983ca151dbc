export LD_LIBRARY_PATH=$PWD/build:$LD_LIBRARY_PATH LLMK_LIBRARY=$PWD/build/libllmk.so LLMK_VECTORS_DIR=$PWD/tests/vectors
export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
compute-sanitizer --tool memcheck --error-exitcode 1 ./build/tests/llmk_gpu_tests --gtest_filter='MlpSweep.GatedGemvWithRowsLongerThanABatch:MatmulGemv.OneAndTwoRowsAcrossWarpShares' > /tmp/mc.txt 2>&1; echo "memcheck rc=$?" | tee $OUT/run16.txt; tail -3 /tmp/mc.txt | tee -a $OUT/run16.txt
python3 scratch_ab/m2mlp.py 2>&1 | tee -a $OUT/run16.txt
