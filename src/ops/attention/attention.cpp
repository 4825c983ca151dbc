// The C entries of attention (llmk_attention, llmk_attention_varlen): every argument check, the
// config folded into the backends' params (causal into the window, dropout_p into a threshold on
// Philox words), then the backend.
#include "attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>

#include "core/config.hpp"
#include "core/cuda_util.hpp"
#include "core/tensor.hpp"

namespace llmk {
namespace {

// llmk.h asks this alignment so that the CUDA kernel can move q, k, v and o rows 16 bytes (8
// elements) at a time; the CPU checks it too, so that a call it accepts a CUDA context accepts.
constexpr int64_t kVectorElements = 8;
constexpr uintptr_t kVectorBytes = 16;

// Every stride but head_dim's a multiple of 8 elements, and the data 16-byte aligned. The stride
// of a dimension of extent 1 is never used to reach an element, so it is free, as in
// check_unit_stride.
void check_vector_aligned(const char* op, Arg a) {
  const llmk_tensor& t = *a.tensor;
  if (numel(t) == 0) return;
  for (int d = 0; d + 1 < t.ndim; ++d) {
    if (t.shape[d] > 1 && t.strides[d] % kVectorElements != 0) {
      fail(LLMK_ERROR_MISALIGNED,
           "%s: %s has stride %lld in dimension %d; every stride but head_dim's must be a "
           "multiple of %lld elements",
           op, a.name, static_cast<long long>(t.strides[d]), d,
           static_cast<long long>(kVectorElements));
    }
  }
  if (reinterpret_cast<uintptr_t>(t.data) % kVectorBytes != 0) {
    fail(LLMK_ERROR_MISALIGNED, "%s: %s.data (%p) is not %d-byte aligned", op, a.name, t.data,
         static_cast<int>(kVectorBytes));
  }
}

// lse must have exactly `expected` (ndim of them) as its extents.
void check_lse_shape(const char* op, Arg lse, const int64_t* expected, const char* names) {
  const llmk_tensor& t = *lse.tensor;
  bool same = true;
  for (int d = 0; d < t.ndim; ++d) same &= t.shape[d] == expected[d];
  if (same) return;
  if (t.ndim == 3) {
    fail(LLMK_ERROR_SHAPE_MISMATCH,
         "%s: lse has shape [%lld, %lld, %lld]; it must be %s = [%lld, %lld, %lld]", op,
         static_cast<long long>(t.shape[0]), static_cast<long long>(t.shape[1]),
         static_cast<long long>(t.shape[2]), names, static_cast<long long>(expected[0]),
         static_cast<long long>(expected[1]), static_cast<long long>(expected[2]));
  }
  fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: lse has shape [%lld, %lld]; it must be %s = [%lld, %lld]",
       op, static_cast<long long>(t.shape[0]), static_cast<long long>(t.shape[1]), names,
       static_cast<long long>(expected[0]), static_cast<long long>(expected[1]));
}

void check_config(const char* op, const llmk_attention_config& c) {
  if (!(std::isfinite(c.scale) && c.scale >= 0.0f)) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: config->scale is %g; it must be finite and > 0, or 0 for 1 / sqrt(head_dim)", op,
         c.scale);
  }
  if (c.window_left < -1) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: config->window_left is %d; it must be >= 0, or -1 for no left limit", op,
         c.window_left);
  }
  if (c.window_right < -1) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: config->window_right is %d; it must be >= 0, or -1 for no right limit", op,
         c.window_right);
  }
  if (!(std::isfinite(c.softcap) && c.softcap >= 0.0f)) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: config->softcap is %g; it must be finite and > 0, or 0 for none", op, c.softcap);
  }
  if (!(c.dropout_p >= 0.0f && c.dropout_p < 1.0f)) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: config->dropout_p is %g; it must be in [0, 1)", op,
         c.dropout_p);
  }
  if (c.kernel < LLMK_ATTENTION_KERNEL_AUTO || c.kernel > LLMK_ATTENTION_KERNEL_HOPPER) {
    fail(LLMK_ERROR_INVALID_VALUE, "%s: config->kernel is %d, not an llmk_attention_kernel", op,
         c.kernel);
  }
}

// Both entries. Padded: q, o [batch, q_len, q_heads, head_dim], k, v [batch, kv_len, kv_heads,
// head_dim], lse [batch, q_heads, q_len]. Packed (varlen): q, o [total_q, q_heads, head_dim],
// k, v [total_k, kv_heads, head_dim], lse [q_heads, total_q], cu_seqlens [batch + 1].
void run_attention(const char* op, bool varlen, llmk_context* ctx_handle,
                   const llmk_attention_config* config_given, const llmk_tensor* q_view,
                   const llmk_tensor* k_view, const llmk_tensor* v_view,
                   const llmk_tensor* cu_q_view, const llmk_tensor* cu_k_view, int64_t max_seqlen_q,
                   const llmk_tensor* o_view, const llmk_tensor* lse_view, void* stream) {
  const llmk_context& ctx = require_context(op, ctx_handle);
  const llmk_attention_config config = read_config(
      op, "config", config_given, offsetof(llmk_attention_config, kernel),  // the first version's
      llmk_attention_config_init);
  const Arg q{"q", q_view}, k{"k", k_view}, v{"v", v_view}, o{"o", o_view}, lse{"lse", lse_view},
      cu_q{"cu_seqlens_q", cu_q_view}, cu_k{"cu_seqlens_k", cu_k_view};
  const bool has_lse = lse_view != nullptr;

  for (const Arg& a : {q, k, v, o}) check_view(op, a);
  if (has_lse) check_view(op, lse);
  if (varlen) {
    check_view(op, cu_q);
    check_view(op, cu_k);
  }

  check_dtype(op, q, {LLMK_DTYPE_F16, LLMK_DTYPE_BF16});
  for (const Arg& a : {k, v, o}) check_same_dtype(op, q, a);
  if (has_lse) check_dtype(op, lse, {LLMK_DTYPE_F32});

  const int ndim = varlen ? 3 : 4;
  for (const Arg& a : {q, k, v, o}) check_ndim(op, a, ndim, ndim);
  if (has_lse) check_ndim(op, lse, ndim - 1, ndim - 1);

  check_same_shape(op, q, o);
  check_same_shape(op, k, v);
  const llmk_tensor &tq = *q_view, &tk = *k_view;
  const int64_t q_heads = tq.shape[ndim - 2], kv_heads = tk.shape[ndim - 2];
  const int64_t head_dim = tq.shape[ndim - 1];
  if (!varlen && tk.shape[0] != tq.shape[0]) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: k has batch %lld, q has %lld", op,
         static_cast<long long>(tk.shape[0]), static_cast<long long>(tq.shape[0]));
  }
  if (tk.shape[ndim - 1] != head_dim) {
    fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: k has head_dim %lld, q has %lld", op,
         static_cast<long long>(tk.shape[ndim - 1]), static_cast<long long>(head_dim));
  }
  if (kv_heads == 0 || q_heads % kv_heads != 0) {
    fail(LLMK_ERROR_SHAPE_MISMATCH,
         "%s: q has %lld heads and k %lld; q's must be a multiple of k's, which must be > 0", op,
         static_cast<long long>(q_heads), static_cast<long long>(kv_heads));
  }
  if (head_dim != 64 && head_dim != 96 && head_dim != 128 && head_dim != 256) {
    fail(LLMK_ERROR_UNSUPPORTED, "%s: q has head_dim %lld; llmk supports 64, 96, 128 and 256", op,
         static_cast<long long>(head_dim));
  }
  for (const Arg& a : {q, k, v, o}) check_unit_stride(op, a, ndim - 1);
  for (const Arg& a : {q, k, v, o}) check_vector_aligned(op, a);

  // Padded: every sequence has q_len queries. Packed: batch and the rows come from cu_seqlens.
  int64_t batch, q_len, total_q = 0, total_k = 0;
  if (varlen) {
    for (const Arg& cu : {cu_q, cu_k}) {
      check_dtype(op, cu, {LLMK_DTYPE_I32});
      check_ndim(op, cu, 1, 1);
    }
    if (cu_q_view->shape[0] < 1) {
      fail(LLMK_ERROR_INVALID_SHAPE,
           "%s: cu_seqlens_q has 0 elements; it must have batch + 1, at least 1", op);
    }
    batch = cu_q_view->shape[0] - 1;
    if (cu_k_view->shape[0] != batch + 1) {
      fail(LLMK_ERROR_SHAPE_MISMATCH, "%s: cu_seqlens_k has %lld elements, cu_seqlens_q has %lld",
           op, static_cast<long long>(cu_k_view->shape[0]), static_cast<long long>(batch + 1));
    }
    check_unit_stride(op, cu_q, 0);
    check_unit_stride(op, cu_k, 0);
    total_q = tq.shape[0];
    total_k = tk.shape[0];
    if (max_seqlen_q < 0 || (max_seqlen_q == 0 && total_q > 0)) {
      fail(LLMK_ERROR_INVALID_VALUE,
           "%s: max_seqlen_q is %lld; it must be > 0 when there are queries (total_q is %lld)", op,
           static_cast<long long>(max_seqlen_q), static_cast<long long>(total_q));
    }
    q_len = max_seqlen_q;
  } else {
    batch = tq.shape[0];
    q_len = tq.shape[1];
  }
  if (has_lse) {
    const int64_t padded_shape[3] = {batch, q_heads, q_len};
    const int64_t packed_shape[2] = {q_heads, total_q};
    if (varlen) {
      check_lse_shape(op, lse, packed_shape, "[q_heads, total_q]");
    } else {
      check_lse_shape(op, lse, padded_shape, "[batch, q_heads, q_len]");
    }
  }
  check_config(op, config);

  check_not_self_overlapping(op, o);
  for (const Arg& input : {q, k, v}) check_no_overlap(op, o, input, false);
  if (varlen) {
    check_no_overlap(op, o, cu_q, false);
    check_no_overlap(op, o, cu_k, false);
  }
  if (has_lse) {
    check_no_overlap(op, o, lse, false);
    check_not_self_overlapping(op, lse);
    for (const Arg& input : {q, k, v}) check_no_overlap(op, lse, input, false);
    if (varlen) {
      check_no_overlap(op, lse, cu_q, false);
      check_no_overlap(op, lse, cu_k, false);
    }
  }

  std::optional<DeviceGuard> device;
  if (is_cuda(ctx)) {
    device.emplace(ctx.device);
    for (const Arg& a : {q, k, v, o, lse, cu_q, cu_k}) {
      if (a.tensor != nullptr) check_memory(ctx, op, a);
    }
    check_stream(ctx, op, stream);
  }

  if (batch == 0 || numel(tq) == 0) return;

  AttentionParams p{};
  p.dtype = static_cast<llmk_dtype>(tq.dtype);
  p.head_dim = static_cast<int>(head_dim);
  p.batch = batch;
  p.q_heads = q_heads;
  p.kv_heads = kv_heads;
  p.q_len = q_len;
  p.kv_len = varlen ? 0 : tk.shape[1];
  if (varlen) {
    p.cu_seqlens_q = static_cast<const int32_t*>(cu_q_view->data);
    p.cu_seqlens_k = static_cast<const int32_t*>(cu_k_view->data);
  }
  p.total_q = total_q;
  p.total_k = total_k;
  // Packed views have no batch dimension: their rows are told apart by cu_seqlens alone.
  const auto heads = [&](const llmk_tensor& t) {
    return varlen ? AttentionTensor{t.data, 0, t.strides[0], t.strides[1]}
                  : AttentionTensor{t.data, t.strides[0], t.strides[1], t.strides[2]};
  };
  p.q = heads(tq);
  p.k = heads(tk);
  p.v = heads(*v_view);
  p.o = heads(*o_view);
  if (has_lse) {
    p.lse = static_cast<float*>(lse_view->data);
    p.lse_batch_stride = varlen ? 0 : lse_view->strides[0];
    p.lse_head_stride = lse_view->strides[varlen ? 0 : 1];
    p.lse_row_stride = lse_view->strides[varlen ? 1 : 2];
  }
  p.scale = config.scale != 0.0f
                ? config.scale
                : static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  p.softcap = config.softcap;
  p.window_left = config.window_left;
  p.window_right = config.causal ? 0 : config.window_right;
  p.dropout_p = config.dropout_p;
  // dropout_p < 1 keeps this below 2^32 already; the clamp only guards the conversion.
  const double threshold = std::floor(static_cast<double>(config.dropout_p) * 4294967296.0);
  p.dropout_threshold = static_cast<uint32_t>(std::min(threshold, 4294967295.0));
  p.dropout_seed = config.dropout_seed;
  p.dropout_offset = config.dropout_offset;
  p.kernel = static_cast<llmk_attention_kernel>(config.kernel);

  if (is_cuda(ctx)) {
    attention_cuda(p, ctx, stream);
  } else {
    attention_cpu(p);
  }
}

}  // namespace
}  // namespace llmk

extern "C" {

LLMK_API void llmk_attention_config_init(llmk_attention_config* config) {
  if (config == nullptr) return;
  *config = llmk_attention_config{};
  config->struct_size = sizeof(llmk_attention_config);
  config->scale = 0.0f;
  config->causal = 0;
  config->window_left = -1;
  config->window_right = -1;
  config->softcap = 0.0f;
  config->dropout_p = 0.0f;
  config->dropout_offset = 0;
  config->dropout_seed = 0;
  config->kernel = LLMK_ATTENTION_KERNEL_AUTO;
}

LLMK_API llmk_status llmk_attention(llmk_context* ctx, const llmk_attention_config* config,
                                    const llmk_tensor* q, const llmk_tensor* k,
                                    const llmk_tensor* v, const llmk_tensor* o,
                                    const llmk_tensor* lse, void* stream) {
  return llmk::api_call([&] {
    llmk::run_attention("attention", false, ctx, config, q, k, v, nullptr, nullptr, 0, o, lse,
                        stream);
  });
}

LLMK_API llmk_status llmk_attention_varlen(llmk_context* ctx, const llmk_attention_config* config,
                                           const llmk_tensor* q, const llmk_tensor* k,
                                           const llmk_tensor* v, const llmk_tensor* cu_seqlens_q,
                                           const llmk_tensor* cu_seqlens_k, int64_t max_seqlen_q,
                                           const llmk_tensor* o, const llmk_tensor* lse,
                                           void* stream) {
  return llmk::api_call([&] {
    llmk::run_attention("attention_varlen", true, ctx, config, q, k, v, cu_seqlens_q, cu_seqlens_k,
                        max_seqlen_q, o, lse, stream);
  });
}

}  // extern "C"
