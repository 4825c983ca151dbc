set -x
nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -I src -I include -Xcompiler -fPIC -shared scratch_ab/emb_variants.cu -o /tmp/libembvar.so || exit 1
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv > $OUT/gpu.txt; date -u >> $OUT/gpu.txt
export TORCHINDUCTOR_CACHE_DIR=/tmp/ind
TORCH_LOGS=output_code python3 scratch_ab/dump_inductor.py > $OUT/inductor.log 2>&1
(cd /tmp/ind && find . -name "*.ptx" | tar czf $OUT/ptx.tgz -T -)
PYTHONUNBUFFERED=1 python3 scratch_ab/sweep_emb.py /tmp/libembvar.so 2>&1 | tee $OUT/sweep_emb.txt
