package llmk

/*
#include "llmkgo.h"

static llmkgo_result llmkgo_embedding(void* ctx, void* ids_data, llmkgo_view ids_view,
                                      void* table_data, llmkgo_view table_view, void* y_data,
                                      llmkgo_view y_view, void* stream) {
  const llmk_tensor ids = llmkgo_tensor(ids_data, ids_view);
  const llmk_tensor table = llmkgo_tensor(table_data, table_view);
  const llmk_tensor y = llmkgo_tensor(y_data, y_view);
  return llmkgo_result_of(llmk_embedding(ctx, &ids, &table, &y, stream));
}
*/
import "C"

import "unsafe"

// Embedding gathers rows of an embedding table by token id: y[t] = table[ids[t]].
//
// ids is [tokens], I32 or I64, any stride. table is [vocab, hidden] and y is [tokens, hidden], of
// one dtype, F32, F16 or BF16, last dimension contiguous, row strides free; y overlaps neither
// input. An id outside [0, vocab): a CPU context refuses the call with StatusInvalidValue, naming
// the token, before writing anything; a CUDA context does not read ids on the host and fills that
// token's row of y with NaN instead.
func Embedding(ctx *Context, ids, table, y Tensor, stream Stream) error {
	r := C.llmkgo_embedding(ctx.ptr(), ids.data, ids.view(), table.data, table.view(), y.data,
		y.view(), unsafe.Pointer(stream))
	return resultError(&r)
}
