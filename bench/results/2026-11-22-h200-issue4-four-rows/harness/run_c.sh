export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
LLMK_LIBRARY=$PWD/.carry/wide3/libllmk.so python3 scratch_ab/wide.py wide3 2>&1 | tee $OUT/wide3.txt
LLMK_LIBRARY=$PWD/.carry/wide/libllmk.so python3 scratch_ab/wide.py wide 2>&1 | tee $OUT/wide2.txt
