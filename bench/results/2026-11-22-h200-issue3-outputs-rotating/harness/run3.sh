nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -I src -I include -Xcompiler -fPIC -shared scratch_ab/emb_variants.cu -o /tmp/libembvar.so || exit 1
PYTHONUNBUFFERED=1 python3 scratch_ab/sweep3.py /tmp/libembvar.so 2>&1 | tee $OUT/sweep3.txt
