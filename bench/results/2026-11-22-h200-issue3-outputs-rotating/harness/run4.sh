# Carried local build (sm_90a): embedding/KV tests + memcheck, then the issue-3 benches.
export LD_LIBRARY_PATH=$PWD/build:$LD_LIBRARY_PATH LLMK_LIBRARY=$PWD/build/libllmk.so LLMK_VECTORS_DIR=$PWD/tests/vectors
export PYTHONPATH=$PWD/bindings/python:$PWD/bench PYTHONUNBUFFERED=1
mkdir -p $OUT/md /tmp/json
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv; date -u; git log -1 --format=%H; } > $OUT/device.txt
F='*Embedding*:*KvCache*:Manifest/*'
./build/tests/llmk_gpu_tests --gtest_filter="$F" > $OUT/tests.txt 2>&1; echo "gtest rc=$?" | tee -a $OUT/tests.txt
tail -3 $OUT/tests.txt
compute-sanitizer --tool memcheck --error-exitcode 1 ./build/tests/llmk_gpu_tests --gtest_filter='*Embedding*:*KvCache*' > /tmp/mc.txt 2>&1; echo "memcheck rc=$?" >> $OUT/tests.txt; tail -4 /tmp/mc.txt >> $OUT/tests.txt
for b in ${BENCHES:-embedding kv_cache activation}; do
  python3 bench/bench_$b.py --markdown $OUT/md/$b.md --json /tmp/json/$b.json > /tmp/json/$b.log 2>&1 || { echo "bench $b failed"; tail -20 /tmp/json/$b.log; }
done
tar czf $OUT/json.tgz -C /tmp/json .
cat $OUT/md/*.md
