export LLMK_VECTORS_DIR=$PWD/tests/vectors PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
LD_LIBRARY_PATH=$PWD/.carry/m2/pair ./.carry/m2/llmk_gpu_tests --gtest_filter='*Matmul*:*Gemv*:*Mlp*:*Ffn*:*Gated*' > $OUT/tests.txt 2>&1; echo "gtest rc=$?"; grep -E "PASSED|FAILED" $OUT/tests.txt | head
LD_LIBRARY_PATH=$PWD/.carry/m2/pair compute-sanitizer --tool memcheck --error-exitcode 1 ./.carry/m2/llmk_gpu_tests --gtest_filter='MatmulGemv.*' > /tmp/mc.txt 2>&1; echo "memcheck rc=$?"; tail -2 /tmp/mc.txt
for r in 1 2; do
  LLMK_LIBRARY=$PWD/.carry/m2/head/libllmk.so python3 scratch_ab/m2.py head 2>&1 | tee -a $OUT/m2.txt
  LLMK_LIBRARY=$PWD/.carry/m2/pair/libllmk.so python3 scratch_ab/m2.py pair 2>&1 | tee -a $OUT/m2.txt
done
