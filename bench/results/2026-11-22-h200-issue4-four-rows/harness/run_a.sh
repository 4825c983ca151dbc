export LD_LIBRARY_PATH=$PWD/build:$LD_LIBRARY_PATH LLMK_LIBRARY=$PWD/build/libllmk.so LLMK_VECTORS_DIR=$PWD/tests/vectors
export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv > $OUT/device.txt
./build/tests/llmk_gpu_tests --gtest_filter='MatmulGemv.*:MlpSweep.*:MatmulSweep.*:MlpGpu.*:Manifest/GpuVectors.*:MatmulCache.*' > $OUT/tests.txt 2>&1; echo "tests rc=$?"; tail -3 $OUT/tests.txt
compute-sanitizer --tool memcheck --error-exitcode 1 ./build/tests/llmk_gpu_tests --gtest_filter='MatmulGemv.FewRowsAcrossWarpShares:MlpSweep.GatedGemvWithRowsLongerThanABatch:MatmulGemv.DecodeRowsWithALongK' > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $OUT/memcheck.txt
python3 scratch_ab/m34mlp.py 2>&1 | tee $OUT/mlp34.txt
python3 scratch_ab/shapes34.py --parts shapes --markdown $OUT/shapes34.md --json $OUT/shapes34.json > $OUT/shapes34.log 2>&1; echo "shapes rc=$?"; tail -60 $OUT/shapes34.md
