export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
LLMK_LIBRARY=$PWD/build/libllmk.so python3 scratch_ab/wide.py leftover 2>&1 | tee $OUT/leftover.txt
LLMK_LIBRARY=$PWD/build/libllmk.so python3 scratch_ab/wide.py mma 2>&1 | tee $OUT/mma.txt
LLMK_LIBRARY=$PWD/.carry/wide/libllmk.so python3 scratch_ab/wide.py wide 2>&1 | tee $OUT/wide.txt
