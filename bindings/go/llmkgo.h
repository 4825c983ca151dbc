// The C half of the Go binding, included by the cgo preamble of every file that calls llmk.
#ifndef LLMKGO_H
#define LLMKGO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <llmk.h>

// The Go side mirrors this ABI's enums and tensor layout: building against another header must
// fail here instead of misbehaving at run time. (The loaded library is checked at run time too.)
_Static_assert(LLMK_ABI_VERSION == 0, "the llmk Go binding is written for LLMK_ABI_VERSION 0");

// The status of one llmk call and, if it failed, its detail message. llmk keeps that message in
// thread-local storage, and a goroutine may be on another OS thread by its next cgo call, so the
// message is copied out by the same C call that failed: every fallible call goes through
// llmkgo_result_of.
typedef struct llmkgo_result {
  llmk_status status;
  char message[512];  // the size of llmk's own message buffer
} llmkgo_result;

static inline llmkgo_result llmkgo_result_of(llmk_status status) {
  llmkgo_result r;
  r.status = status;
  r.message[0] = '\0';
  if (status != LLMK_SUCCESS) {
    snprintf(r.message, sizeof r.message, "%s", llmk_last_error_message());
  }
  return r;
}

// The helpers' arguments are shaped so that calls allocate nothing on the Go heap. cgo checks each
// argument that may hold a Go pointer by boxing it in an interface, which allocates for a struct
// and for a pointer to an incomplete C type (cgo makes those not-in-heap word types); an
// unsafe.Pointer and a pointer-free struct cross as they are. So contexts travel as void*, and
// tensors as a void* data pointer plus this llmk_tensor without its pointer.
typedef struct llmkgo_view {
  int32_t dtype;
  int32_t ndim;
  int64_t shape[LLMK_MAX_DIMS];
  int64_t strides[LLMK_MAX_DIMS];
} llmkgo_view;

static inline llmk_tensor llmkgo_tensor(void* data, llmkgo_view view) {
  llmk_tensor t;
  t.data = data;
  t.dtype = view.dtype;
  t.ndim = view.ndim;
  memcpy(t.shape, view.shape, sizeof t.shape);
  memcpy(t.strides, view.strides, sizeof t.strides);
  return t;
}

// The Go config structs mirror every field of the C ones and fill struct_size with the size seen
// here; a field appended to the header must be added there too, which these sizes enforce.
_Static_assert(sizeof(llmk_rope_config) ==
                   sizeof(size_t) + 2 * sizeof(int32_t) + 5 * sizeof(double),
               "llmk_rope_config changed: update RopeConfig in rope.go");
_Static_assert(sizeof(llmk_adamw_config) == sizeof(size_t) + 5 * sizeof(double) + sizeof(int64_t),
               "llmk_adamw_config changed: update AdamWConfig in adamw.go");
// llmk_matmul_config ends in 4 bytes of padding after path (on LP64): its last field is checked
// by offset, and the size rounds that up. (A 4-byte field appended into the padding would change
// neither, nor struct_size.)
_Static_assert(offsetof(llmk_matmul_config, path) ==
                       sizeof(size_t) + 2 * sizeof(float) + 2 * sizeof(int32_t) &&
                   sizeof(llmk_matmul_config) ==
                       (offsetof(llmk_matmul_config, path) + sizeof(int32_t) +
                        _Alignof(llmk_matmul_config) - 1) /
                           _Alignof(llmk_matmul_config) * _Alignof(llmk_matmul_config),
               "llmk_matmul_config changed: update MatmulConfig in matmul.go");
// llmk_matmul_tuning is an output: MatmulTuning in matmul.go reads every one of its fields.
_Static_assert(sizeof(llmk_matmul_tuning) ==
                   sizeof(size_t) + 2 * sizeof(int32_t) + 2 * sizeof(float),
               "llmk_matmul_tuning changed: update MatmulTuning in matmul.go");
// llmk_mlp_config ends in 4 bytes of padding after tune, as llmk_matmul_config does after path.
_Static_assert(offsetof(llmk_mlp_config, tune) == sizeof(size_t) + 2 * sizeof(int32_t) &&
                   sizeof(llmk_mlp_config) == (offsetof(llmk_mlp_config, tune) + sizeof(int32_t) +
                                               _Alignof(llmk_mlp_config) - 1) /
                                                  _Alignof(llmk_mlp_config) *
                                                  _Alignof(llmk_mlp_config),
               "llmk_mlp_config changed: update MLPConfig in mlp.go");
// llmk_attention_config has 4 bytes of padding after dropout_offset, before the 8-byte
// dropout_seed, and 4 more after kernel (on LP64): dropout_seed and the last field, kernel, are
// checked by offset, and the size rounds kernel's end up, as for llmk_matmul_config.
_Static_assert(offsetof(llmk_attention_config, dropout_seed) ==
                       (sizeof(size_t) + 2 * sizeof(float) + 3 * sizeof(int32_t) + sizeof(float) +
                        sizeof(uint32_t) + _Alignof(uint64_t) - 1) /
                           _Alignof(uint64_t) * _Alignof(uint64_t) &&
                   offsetof(llmk_attention_config, kernel) ==
                       offsetof(llmk_attention_config, dropout_seed) + sizeof(uint64_t) &&
                   sizeof(llmk_attention_config) ==
                       (offsetof(llmk_attention_config, kernel) + sizeof(int32_t) +
                        _Alignof(llmk_attention_config) - 1) /
                           _Alignof(llmk_attention_config) * _Alignof(llmk_attention_config),
               "llmk_attention_config changed: update AttentionConfig in attention.go");

#endif  // LLMKGO_H
