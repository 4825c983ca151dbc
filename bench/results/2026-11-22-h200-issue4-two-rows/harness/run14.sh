export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
LLMK_LIBRARY=$PWD/.carry/m2/g/libllmk.so python3 scratch_ab/m2mlp.py 2>&1 | tee $OUT/m2mlp.txt
