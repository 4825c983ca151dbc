// Reference attention on the CPU: the plain definition of llmk.h in float64, each output rounded
// once. It is the oracle the GPU tests compare against, so it favours being obviously right over
// speed; the only concession is converting each (sequence, kv head)'s K and V to double once.
//
// For query i of sequence s in query head h, with kv head h / (q_heads / kv_heads):
//   visible keys j: those of the window around the query's key position i + kv_len - q_len
//   s_j = scale * q_i . k_j, or c * tanh(scale * q_i . k_j / c) with a soft-cap c
//   lse = log(sum_j exp(s_j)),  P_j = exp(s_j - lse)
//   O   = sum_j P_j * keep_j / (1 - dropout_p) * v_j,  keep_j from Philox as llmk.h defines it.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention.hpp"
#include "core/error.hpp"
#include "core/numeric.hpp"
#include "core/philox.hpp"

namespace llmk {
namespace {

// One sequence: its index, its first rows in q/o and in k/v (0 when padded), and its lengths.
struct Sequence {
  int64_t index;
  int64_t q_first, k_first;
  int64_t q_len, kv_len;
};

Sequence sequence(const AttentionParams& p, int64_t s) {
  if (p.cu_seqlens_q == nullptr) return {s, 0, 0, p.q_len, p.kv_len};
  const int64_t q_first = p.cu_seqlens_q[s], k_first = p.cu_seqlens_k[s];
  return {s, q_first, k_first, p.cu_seqlens_q[s + 1] - q_first, p.cu_seqlens_k[s + 1] - k_first};
}

// cu[0] == 0, non-decreasing, cu[batch] <= total: the offsets name rows that exist.
void check_offsets(const char* name, const int32_t* cu, int64_t batch, int64_t total,
                   const char* total_name) {
  if (cu[0] != 0) {
    fail(LLMK_ERROR_INVALID_VALUE, "attention_varlen: %s[0] is %d; it must be 0", name, cu[0]);
  }
  for (int64_t s = 0; s < batch; ++s) {
    if (cu[s + 1] < cu[s]) {
      fail(LLMK_ERROR_INVALID_VALUE,
           "attention_varlen: %s[%lld] is %d, less than %s[%lld] = %d; offsets must not decrease",
           name, static_cast<long long>(s + 1), cu[s + 1], name, static_cast<long long>(s), cu[s]);
    }
  }
  if (cu[batch] > total) {
    fail(LLMK_ERROR_INVALID_VALUE, "attention_varlen: %s[%lld] is %d, beyond %s = %lld", name,
         static_cast<long long>(batch), cu[batch], total_name, static_cast<long long>(total));
  }
}

void check_cu_seqlens(const AttentionParams& p) {
  check_offsets("cu_seqlens_q", p.cu_seqlens_q, p.batch, p.total_q, "total_q");
  check_offsets("cu_seqlens_k", p.cu_seqlens_k, p.batch, p.total_k, "total_k");
  for (int64_t s = 0; s < p.batch; ++s) {
    const int64_t queries = int64_t{p.cu_seqlens_q[s + 1]} - p.cu_seqlens_q[s];
    if (queries > p.q_len) {
      fail(LLMK_ERROR_INVALID_VALUE,
           "attention_varlen: sequence %lld has %lld queries (cu_seqlens_q[%lld] = %d to "
           "cu_seqlens_q[%lld] = %d), more than max_seqlen_q = %lld",
           static_cast<long long>(s), static_cast<long long>(queries), static_cast<long long>(s),
           p.cu_seqlens_q[s], static_cast<long long>(s + 1), p.cu_seqlens_q[s + 1],
           static_cast<long long>(p.q_len));
    }
  }
}

// The four Philox words of keys 4 * block ... 4 * block + 3 of query i in query head h. The
// counter words are 32 bits: the indices enter them modulo 2^32, as on the GPU.
Philox4 dropout_words(const AttentionParams& p, const Sequence& seq, int64_t h, int64_t i,
                      int64_t block) {
  const Philox4 counter{{static_cast<uint32_t>(block), static_cast<uint32_t>(i),
                         static_cast<uint32_t>(seq.index * p.q_heads + h), p.dropout_offset}};
  return philox4x32_10(counter, static_cast<uint32_t>(p.dropout_seed),
                       static_cast<uint32_t>(p.dropout_seed >> 32));
}

// Element (row, head, 0) of a q, k, v or o view in sequence `seq`.
int64_t row_start(const AttentionTensor& t, const Sequence& seq, int64_t first, int64_t row,
                  int64_t head) {
  return seq.index * t.batch_stride + (first + row) * t.row_stride + head * t.head_stride;
}

// Every query head of one kv head over one sequence. k and v are the kv head's keys and values
// in double, [kv_len, head_dim] each.
template <llmk_dtype D>
void attend(const AttentionParams& p, const Sequence& seq, int64_t kv_head,
            const std::vector<double>& k, const std::vector<double>& v) {
  using E = Element<D>;
  const auto* q_data = static_cast<const typename E::Storage*>(p.q.data);
  auto* o_data = static_cast<typename E::Storage*>(p.o.data);
  const int64_t d_count = p.head_dim, group = p.q_heads / p.kv_heads;
  const double scale = p.scale, cap = p.softcap;
  const double keep_scale = 1.0 / (1.0 - static_cast<double>(p.dropout_p));
  std::vector<double> q(d_count), out(d_count), scores(seq.kv_len);
  for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
    for (int64_t i = 0; i < seq.q_len; ++i) {
      const int64_t q_row = row_start(p.q, seq, seq.q_first, i, h);
      for (int64_t d = 0; d < d_count; ++d) q[d] = E::load(q_data[q_row + d]);

      // Bottom-right alignment: the last query sits at the last key.
      const int64_t position = i + seq.kv_len - seq.q_len;
      int64_t first = 0, last = seq.kv_len - 1;
      if (p.window_left >= 0) first = std::max(first, position - p.window_left);
      if (p.window_right >= 0) last = std::min(last, position + p.window_right);

      std::fill(out.begin(), out.end(), 0.0);
      double lse = -std::numeric_limits<double>::infinity();
      if (first <= last) {
        double max_score = -std::numeric_limits<double>::infinity();
        for (int64_t j = first; j <= last; ++j) {
          const double* key = &k[j * d_count];
          double dot = 0.0;
          for (int64_t d = 0; d < d_count; ++d) dot += q[d] * key[d];
          double s = scale * dot;
          if (cap > 0.0) s = cap * std::tanh(s / cap);
          scores[j] = s;
          max_score = std::max(max_score, s);
        }
        double sum = 0.0;
        for (int64_t j = first; j <= last; ++j) sum += std::exp(scores[j] - max_score);
        lse = max_score + std::log(sum);

        Philox4 words{};
        for (int64_t j = first; j <= last; ++j) {
          // A threshold of 0 drops nothing, so Philox runs only with dropout on.
          if (p.dropout_threshold > 0) {
            if (j == first || j % 4 == 0) words = dropout_words(p, seq, h, i, j / 4);
            if (words.w[j % 4] < p.dropout_threshold) continue;
          }
          const double weight = std::exp(scores[j] - max_score) / sum * keep_scale;
          const double* value = &v[j * d_count];
          for (int64_t d = 0; d < d_count; ++d) out[d] += weight * value[d];
        }
      }

      const int64_t o_row = row_start(p.o, seq, seq.q_first, i, h);
      for (int64_t d = 0; d < d_count; ++d) o_data[o_row + d] = E::store(out[d]);
      if (p.lse != nullptr) {
        p.lse[seq.index * p.lse_batch_stride + h * p.lse_head_stride +
              (seq.q_first + i) * p.lse_row_stride] = static_cast<float>(lse);
      }
    }
  }
}

template <llmk_dtype D>
void attention_reference(const AttentionParams& p) {
  using E = Element<D>;
  const auto* k_data = static_cast<const typename E::Storage*>(p.k.data);
  const auto* v_data = static_cast<const typename E::Storage*>(p.v.data);
  for (int64_t s = 0; s < p.batch; ++s) {
    const Sequence seq = sequence(p, s);
    if (seq.q_len == 0) continue;
    std::vector<double> k(seq.kv_len * p.head_dim), v(seq.kv_len * p.head_dim);
    for (int64_t kv_head = 0; kv_head < p.kv_heads; ++kv_head) {
      for (int64_t j = 0; j < seq.kv_len; ++j) {
        const int64_t k_row = row_start(p.k, seq, seq.k_first, j, kv_head);
        const int64_t v_row = row_start(p.v, seq, seq.k_first, j, kv_head);
        for (int64_t d = 0; d < p.head_dim; ++d) {
          k[j * p.head_dim + d] = E::load(k_data[k_row + d]);
          v[j * p.head_dim + d] = E::load(v_data[v_row + d]);
        }
      }
      attend<D>(p, seq, kv_head, k, v);
    }
  }
}

}  // namespace

void attention_cpu(const AttentionParams& p) {
  if (p.cu_seqlens_q != nullptr) check_cu_seqlens(p);
  switch (p.dtype) {
    case LLMK_DTYPE_F16: return attention_reference<LLMK_DTYPE_F16>(p);
    case LLMK_DTYPE_BF16: return attention_reference<LLMK_DTYPE_BF16>(p);
    default: fail(LLMK_ERROR_INTERNAL, "attention_cpu: dtype %d reached the backend", p.dtype);
  }
}

}  // namespace llmk
