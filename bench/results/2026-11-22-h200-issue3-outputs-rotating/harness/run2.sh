nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -I src -I include -Xcompiler -fPIC -shared scratch_ab/emb_variants.cu -o /tmp/libembvar.so || exit 1
export TORCHINDUCTOR_CACHE_DIR=/tmp/ind2
PYTHONUNBUFFERED=1 TORCH_LOGS=output_code python3 scratch_ab/sweep_out.py /tmp/libembvar.so 2> $OUT/inductor2.log | tee $OUT/sweep_out.txt
grep -c "def triton_" $OUT/inductor2.log; grep "def triton_" $OUT/inductor2.log | sed 's/.*def //' | sort | uniq -c
