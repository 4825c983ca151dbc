export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
LLMK_LIBRARY=$PWD/.carry/m2/q/libllmk.so python3 scratch_ab/m34.py 2>&1 | tee $OUT/m34.txt
