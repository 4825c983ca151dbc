// llmk_embedding as its backends see it: one params struct of checked pointers and strides, and
// one entry per backend.
#pragma once

#include <cstdint>

#include "core/context.hpp"

namespace llmk {

struct EmbeddingParams {
  llmk_dtype dtype;  // of table and y: F32, F16 or BF16
  int element_bytes;
  int64_t tokens, vocab, hidden;  // all > 0 but vocab, which may be 0 (every id out of range)
  const void* ids;
  llmk_dtype ids_dtype;  // I32 or I64
  int64_t ids_stride;    // elements
  const void* table;     // [vocab, hidden], rows table_stride elements apart
  int64_t table_stride;
  void* y;  // [tokens, hidden], rows y_stride elements apart
  int64_t y_stride;
};

// The reference: checks every id, then copies the rows. An id outside [0, vocab) fails with
// LLMK_ERROR_INVALID_VALUE before anything is written.
void embedding_cpu(const EmbeddingParams& p);

// Launches on `stream` of the current device (the caller has set it). An id outside [0, vocab)
// gets a row of NaN.
void embedding_cuda(const EmbeddingParams& p, void* stream);

}  // namespace llmk
