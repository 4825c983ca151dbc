export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
for r in 1 2; do for v in v1 v2; do
  LLMK_LIBRARY=$PWD/.carry/m2/$v/libllmk.so python3 scratch_ab/m2ab.py $v 2>&1 | tee -a $OUT/m2ab.txt
done; done
