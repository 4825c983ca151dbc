export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
for r in 1 2; do for v in old new; do LLMK_LIBRARY=$PWD/.carry/ab/$v/libllmk.so python3 scratch_ab/m1ab.py $v 2>&1 | tee -a $OUT/m1ab.txt; done; done
