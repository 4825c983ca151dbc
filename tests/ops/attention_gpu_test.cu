// attention on a CUDA context, against the CPU backend (the float64 oracle) by the flash-attention
// rule: the kernel's largest error may be at most twice that of the same attention computed
// naively in the same low precision (f32 scores and softmax, probabilities rounded to the dtype
// before P V, as PyTorch's math path does), plus one rounding of the output (the oracle itself is
// rounded to the dtype once). lse (f32) must match to 1e-4 + 1e-5 |lse|, and -infinity exactly.
//
// The sweep: q_len and kv_len among 1, 17, 113, 128, 203, 1023, 1024, 2049; head_dim 64, 96, 128,
// 256; f16 and bf16; no mask, causal (bottom-right) with q_len below and above kv_len, sliding
// windows, soft-cap, dropout; GQA and MQA; BSHD, BHSD and fused-QKV strides with gaps; packed
// sequences with a length-1 and an empty one. Outputs start as NaN; gaps must keep their bits.
// On an sm_90 GPU AUTO runs the Hopper kernel where it can, so the cases it takes run a second
// time on the portable kernel (config.kernel). Then what only the GPU shows: the same call twice
// gives the same bits (no race), dropout is reproducible from its seed, bad cu_seqlens give NaN
// rows without touching other sequences, and the HOPPER kernel runs where it can, else is refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/gpu_testing.hpp"
#include "core/philox.hpp"

using namespace llmk_test;

namespace attention_gpu_test {

enum class Layout { bshd, bhsd, fused_qkv, padded_heads };

struct Case {
  std::string name;
  int32_t dtype = LLMK_DTYPE_BF16;
  int64_t batch = 1, q_len = 1, kv_len = 1, q_heads = 2, kv_heads = 1, head_dim = 128;
  bool causal = false;
  int32_t window_left = -1, window_right = -1;
  float softcap = 0.f, dropout_p = 0.f, scale = 0.f;
  Layout layout = Layout::bshd;
  bool with_lse = true;
  // Packed sequences: their query and key lengths (batch, q_len and kv_len are then unused).
  std::vector<int64_t> varlen_q, varlen_k;
  int32_t kernel = LLMK_ATTENTION_KERNEL_AUTO;
};

// The host side of one call: tensors, sequence offsets and how to address them.
struct Problem {
  Case c;
  bool varlen = false;
  int64_t batch = 0, total_q = 0, total_k = 0, max_q = 0;
  std::vector<int64_t> first_q, first_k, len_q, len_k;  // per sequence
  HostTensor q, k, v, o, lse, cu_q, cu_k;
  llmk_attention_config config;
};

// [B, T, H, D] strides (or [T, H, D] when packed) of a layout, with `heads` heads of head_dim;
// `row_heads` heads per row for the fused layout.
std::vector<int64_t> strides_of(Layout layout, bool packed, int64_t t, int64_t heads, int64_t d,
                                int64_t row_heads) {
  int64_t row = heads * d, head = d, batch = t * heads * d;
  switch (layout) {
    case Layout::bshd: break;
    case Layout::bhsd:  // [B, H, T, D] memory seen as [B, T, H, D]
      row = d;
      head = t * d;
      break;
    case Layout::fused_qkv:
      row = row_heads * d;
      batch = t * row;
      break;
    case Layout::padded_heads:  // gaps between heads and rows, as a bigger buffer's slice
      head = d + 8;
      row = heads * (d + 8) + 16;
      batch = t * row + 24;
      break;
  }
  if (packed) {
    if (layout == Layout::bhsd) return {d, t * d, 1};  // [H, T, D] memory seen as [T, H, D]
    return {row, head, 1};
  }
  return {batch, row, head, 1};
}

Problem make_problem(const Case& c, std::mt19937_64& rng) {
  Problem p;
  p.c = c;
  p.varlen = !c.varlen_q.empty();
  if (p.varlen) {
    p.batch = static_cast<int64_t>(c.varlen_q.size());
    for (int64_t s = 0; s < p.batch; ++s) {
      p.first_q.push_back(p.total_q);
      p.first_k.push_back(p.total_k);
      p.len_q.push_back(c.varlen_q[s]);
      p.len_k.push_back(c.varlen_k[s]);
      p.total_q += c.varlen_q[s];
      p.total_k += c.varlen_k[s];
      p.max_q = std::max(p.max_q, c.varlen_q[s]);
    }
  } else {
    p.batch = c.batch;
    for (int64_t s = 0; s < p.batch; ++s) {
      p.first_q.push_back(0);
      p.first_k.push_back(0);
      p.len_q.push_back(c.q_len);
      p.len_k.push_back(c.kv_len);
    }
  }
  const int64_t d = c.head_dim, row_heads = c.q_heads + 2 * c.kv_heads;
  const int64_t tq = p.varlen ? p.total_q : c.q_len, tk = p.varlen ? p.total_k : c.kv_len;
  auto shape = [&](int64_t t, int64_t heads) {
    return p.varlen ? std::vector<int64_t>{t, heads, d}
                    : std::vector<int64_t>{p.batch, t, heads, d};
  };
  const bool fused = c.layout == Layout::fused_qkv;
  p.q = make_tensor(c.dtype, shape(tq, c.q_heads),
                    strides_of(c.layout, p.varlen, tq, c.q_heads, d, row_heads), 0, rng, 0.0, 1.0,
                    false);
  // In the fused layout k and v start after q's heads (and k's) in each row.
  const int64_t k_offset = fused ? c.q_heads * d : 0,
                v_offset = fused ? (c.q_heads + c.kv_heads) * d : 0;
  p.k = make_tensor(c.dtype, shape(tk, c.kv_heads),
                    strides_of(c.layout, p.varlen, tk, c.kv_heads, d, row_heads), k_offset, rng,
                    0.0, 1.0, false);
  p.v = make_tensor(c.dtype, shape(tk, c.kv_heads),
                    strides_of(c.layout, p.varlen, tk, c.kv_heads, d, row_heads), v_offset, rng,
                    0.0, 1.0, false);
  p.o = make_tensor(c.dtype, shape(tq, c.q_heads),
                    strides_of(c.layout == Layout::fused_qkv ? Layout::bshd : c.layout, p.varlen,
                               tq, c.q_heads, d, row_heads),
                    0, rng, 0.0, 1.0, true);
  if (c.with_lse) {
    // flash-attention's layouts, with a gap after each head's row of queries.
    const int64_t row_pad = 8;
    if (p.varlen) {
      p.lse = make_tensor(LLMK_DTYPE_F32, {c.q_heads, tq}, {tq + row_pad, 1}, 0, rng, 0, 1, true);
    } else {
      p.lse = make_tensor(LLMK_DTYPE_F32, {p.batch, c.q_heads, tq},
                          {c.q_heads * (tq + row_pad), tq + row_pad, 1}, 0, rng, 0, 1, true);
    }
  }
  if (p.varlen) {
    auto offsets = [&](const std::vector<int64_t>& first, int64_t total) {
      HostTensor h;
      h.view = make_view(nullptr, LLMK_DTYPE_I32, {p.batch + 1}, {1});
      h.bytes.resize(4 * (p.batch + 1));
      for (int64_t s = 0; s <= p.batch; ++s) {
        const int32_t value = static_cast<int32_t>(s < p.batch ? first[s] : total);
        std::memcpy(h.bytes.data() + 4 * s, &value, 4);
      }
      return h;
    };
    p.cu_q = offsets(p.first_q, p.total_q);
    p.cu_k = offsets(p.first_k, p.total_k);
  }
  llmk_attention_config_init(&p.config);
  p.config.scale = c.scale;
  p.config.causal = c.causal;
  p.config.window_left = c.window_left;
  p.config.window_right = c.window_right;
  p.config.softcap = c.softcap;
  p.config.dropout_p = c.dropout_p;
  p.config.dropout_seed = 0x123456789abcdefull;
  p.config.dropout_offset = 7;
  p.config.kernel = c.kernel;
  return p;
}

// Buffers of one run: the inputs' and outputs' bytes on one context.
struct Buffers {
  void* q;
  void* k;
  void* v;
  void* o;
  void* lse;
  void* cu_q;
  void* cu_k;
};

llmk_status run(llmk_context* ctx, const Problem& p, const Buffers& b, void* stream = nullptr) {
  const llmk_tensor q = view_at(p.q, b.q), k = view_at(p.k, b.k), v = view_at(p.v, b.v),
                    o = view_at(p.o, b.o);
  const llmk_tensor lse = p.c.with_lse ? view_at(p.lse, b.lse) : llmk_tensor{};
  const llmk_tensor* lse_arg = p.c.with_lse ? &lse : nullptr;
  if (p.varlen) {
    const llmk_tensor cu_q = view_at(p.cu_q, b.cu_q), cu_k = view_at(p.cu_k, b.cu_k);
    return llmk_attention_varlen(ctx, &p.config, &q, &k, &v, &cu_q, &cu_k, p.max_q, &o, lse_arg,
                                 stream);
  }
  return llmk_attention(ctx, &p.config, &q, &k, &v, &o, lse_arg, stream);
}

// Element (sequence s, row i of it, head h, column d) of a q/k/v/o tensor.
int64_t element_offset(const Problem& p, const HostTensor& t, int64_t s, int64_t i, int64_t h,
                       int64_t d, bool query_rows) {
  const llmk_tensor& v = t.view;
  if (p.varlen) {
    const int64_t row = (query_rows ? p.first_q[s] : p.first_k[s]) + i;
    return t.offset + row * v.strides[0] + h * v.strides[1] + d;
  }
  return t.offset + s * v.strides[0] + i * v.strides[1] + h * v.strides[2] + d;
}

int64_t lse_offset(const Problem& p, int64_t s, int64_t i, int64_t h) {
  const llmk_tensor& v = p.lse.view;
  if (p.varlen) return p.lse.offset + h * v.strides[0] + (p.first_q[s] + i) * v.strides[1];
  return p.lse.offset + s * v.strides[0] + h * v.strides[1] + i * v.strides[2];
}

double read(const HostTensor& t, const std::vector<uint8_t>& bytes, int64_t offset) {
  return element_to_double(t.view.dtype, bytes.data() + offset * element_bytes(t.view.dtype));
}

double round_to(int32_t dtype, double x) {
  uint8_t bits[8];  // as wide as any dtype
  double_to_element(dtype, x, bits);
  return element_to_double(dtype, bits);
}

// Whether dropout drops (sequence s, head h, query i, key j): llmk.h's Philox rule.
bool dropped(const Problem& p, int64_t s, int64_t h, int64_t i, int64_t j, uint32_t threshold) {
  const llmk::Philox4 words = llmk::philox4x32_10(
      llmk::Philox4{{static_cast<uint32_t>(j / 4), static_cast<uint32_t>(i),
                     static_cast<uint32_t>(s * p.c.q_heads + h), p.config.dropout_offset}},
      static_cast<uint32_t>(p.config.dropout_seed),
      static_cast<uint32_t>(p.config.dropout_seed >> 32));
  return words.w[j % 4] < threshold;
}

// The naive low-precision attention (f32 everywhere, P rounded to the dtype), as o's elements
// indexed like the view of o: what the flash rule measures the kernel against.
std::vector<double> naive_low_precision(const Problem& p) {
  const Case& c = p.c;
  const int64_t d_count = c.head_dim, group = c.q_heads / c.kv_heads;
  const float scale = c.scale > 0.f ? c.scale : 1.f / std::sqrt(static_cast<float>(d_count));
  const uint32_t threshold = static_cast<uint32_t>(
      std::min(std::floor(static_cast<double>(c.dropout_p) * 4294967296.0), 4294967295.0));
  std::vector<double> out(p.o.bytes.size() / element_bytes(c.dtype), 0.0);
  std::vector<float> scores, qrow(d_count), acc(d_count);
  for (int64_t s = 0; s < p.batch; ++s) {
    const int64_t lq = p.len_q[s], lk = p.len_k[s];
    scores.resize(lk);
    for (int64_t h = 0; h < c.q_heads; ++h) {
      const int64_t kvh = h / group;
      for (int64_t i = 0; i < lq; ++i) {
        for (int64_t d = 0; d < d_count; ++d) {
          qrow[d] =
              static_cast<float>(read(p.q, p.q.bytes, element_offset(p, p.q, s, i, h, d, true)));
        }
        const int64_t pos = i + lk - lq;
        float max_score = -INFINITY;
        for (int64_t j = 0; j < lk; ++j) {
          const int64_t right = c.causal ? 0 : c.window_right;  // causal wins over any window
          const bool right_ok = right < 0 || j <= pos + right;
          const bool left_ok = c.window_left < 0 || j >= pos - c.window_left;
          if (!(right_ok && left_ok)) {
            scores[j] = -INFINITY;
            continue;
          }
          float dot = 0.f;
          for (int64_t d = 0; d < d_count; ++d) {
            dot += qrow[d] * static_cast<float>(
                                 read(p.k, p.k.bytes, element_offset(p, p.k, s, j, kvh, d, false)));
          }
          float score = dot * scale;
          if (c.softcap > 0.f) score = c.softcap * std::tanh(score / c.softcap);
          scores[j] = score;
          max_score = std::max(max_score, score);
        }
        float sum = 0.f;
        for (int64_t j = 0; j < lk; ++j) {
          scores[j] = scores[j] == -INFINITY ? 0.f : std::exp(scores[j] - max_score);
          sum += scores[j];
        }
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int64_t j = 0; j < lk; ++j) {
          if (scores[j] == 0.f) continue;
          float prob = scores[j] / sum;
          if (threshold != 0) {
            prob = dropped(p, s, h, i, j, threshold) ? 0.f : prob / (1.f - c.dropout_p);
          }
          const float rounded = static_cast<float>(round_to(c.dtype, prob));
          for (int64_t d = 0; d < d_count; ++d) {
            acc[d] += rounded * static_cast<float>(read(
                                    p.v, p.v.bytes, element_offset(p, p.v, s, j, kvh, d, false)));
          }
        }
        for (int64_t d = 0; d < d_count; ++d) {
          out[element_offset(p, p.o, s, i, h, d, true)] = round_to(c.dtype, acc[d]);
        }
      }
    }
  }
  return out;
}

struct Outputs {
  std::vector<uint8_t> o, lse;
};

Outputs run_cpu(const Problem& p) {
  Outputs out{p.o.bytes, p.lse.bytes};
  Problem copy = p;  // the CPU run reads its own copies of the inputs
  const Buffers b{copy.q.bytes.data(), copy.k.bytes.data(),    copy.v.bytes.data(),   out.o.data(),
                  out.lse.data(),      copy.cu_q.bytes.data(), copy.cu_k.bytes.data()};
  EXPECT_EQ(run(cpu_context(), p, b), LLMK_SUCCESS) << llmk_last_error_message();
  return out;
}

Outputs run_gpu(const Problem& p) {
  DeviceCopy q(p.q), k(p.k), v(p.v), o(p.o);
  std::unique_ptr<DeviceCopy> lse, cu_q, cu_k;
  if (p.c.with_lse) lse = std::make_unique<DeviceCopy>(p.lse);
  if (p.varlen) {
    cu_q = std::make_unique<DeviceCopy>(p.cu_q);
    cu_k = std::make_unique<DeviceCopy>(p.cu_k);
  }
  const Buffers b{q.ptr,
                  k.ptr,
                  v.ptr,
                  o.ptr,
                  lse ? lse->ptr : nullptr,
                  cu_q ? cu_q->ptr : nullptr,
                  cu_k ? cu_k->ptr : nullptr};
  EXPECT_EQ(run(cuda_context(), p, b), LLMK_SUCCESS) << llmk_last_error_message();
  EXPECT_EQ(llmk_synchronize(cuda_context(), nullptr), LLMK_SUCCESS) << llmk_last_error_message();
  Outputs out;
  out.o = o.read(p.o.bytes.size());
  if (lse) out.lse = lse->read(p.lse.bytes.size());
  return out;
}

// The flash rule on o, the lse rule, and untouched gaps.
void check(const Problem& p, const Outputs& gpu, const Outputs& cpu) {
  const Case& c = p.c;
  const std::vector<double> naive = naive_low_precision(p);
  double gpu_error = 0, naive_error = 0, max_abs = 0;
  int64_t worst = -1;
  std::vector<bool> in_view(p.o.bytes.size() / element_bytes(c.dtype), false);
  for (int64_t s = 0; s < p.batch; ++s) {
    for (int64_t i = 0; i < p.len_q[s]; ++i) {
      for (int64_t h = 0; h < c.q_heads; ++h) {
        for (int64_t d = 0; d < c.head_dim; ++d) {
          const int64_t e = element_offset(p, p.o, s, i, h, d, true);
          in_view[e] = true;
          const double g = read(p.o, gpu.o, e), r = read(p.o, cpu.o, e);
          if (!std::isfinite(g)) {
            ADD_FAILURE() << c.name << ": o is " << g << " at sequence " << s << " row " << i
                          << " head " << h << " column " << d;
            return;
          }
          if (std::fabs(g - r) > gpu_error) {
            gpu_error = std::fabs(g - r);
            worst = e;
          }
          naive_error = std::max(naive_error, std::fabs(naive[e] - r));
          max_abs = std::max(max_abs, std::fabs(r));
        }
      }
    }
  }
  const double bound = 2 * naive_error + unit_roundoff(c.dtype) * max_abs + 1e-5;
  EXPECT_LE(gpu_error, bound) << c.name << ": max |gpu - f64| " << gpu_error
                              << ", naive low precision " << naive_error << ", at element "
                              << worst;
  for (size_t e = 0; e < in_view.size(); ++e) {
    if (!in_view[e]) {
      const size_t bytes = element_bytes(c.dtype);
      ASSERT_EQ(std::memcmp(gpu.o.data() + e * bytes, p.o.bytes.data() + e * bytes, bytes), 0)
          << c.name << ": gap element " << e << " of o written";
    }
  }
  if (!c.with_lse) return;
  std::vector<bool> lse_in_view(p.lse.bytes.size() / 4, false);
  for (int64_t s = 0; s < p.batch; ++s) {
    for (int64_t h = 0; h < c.q_heads; ++h) {
      for (int64_t i = 0; i < p.len_q[s]; ++i) {
        const int64_t e = lse_offset(p, s, i, h);
        lse_in_view[e] = true;
        float g, r;
        std::memcpy(&g, gpu.lse.data() + 4 * e, 4);
        std::memcpy(&r, cpu.lse.data() + 4 * e, 4);
        const bool ok = std::isinf(r) ? g == r : std::fabs(g - r) <= 1e-4 + 1e-5 * std::fabs(r);
        ASSERT_TRUE(ok) << c.name << ": lse " << g << ", f64 " << r << " at sequence " << s
                        << " head " << h << " row " << i;
      }
    }
  }
  for (size_t e = 0; e < lse_in_view.size(); ++e) {
    if (!lse_in_view[e]) {
      ASSERT_EQ(std::memcmp(gpu.lse.data() + 4 * e, p.lse.bytes.data() + 4 * e, 4), 0)
          << c.name << ": gap element " << e << " of lse written";
    }
  }
}

std::vector<Case> sweep() {
  std::vector<Case> cases;
  auto add = [&](Case c) {
    if (c.name.empty()) {
      c.name = std::string(c.dtype == LLMK_DTYPE_F16 ? "f16" : "bf16") + "_d" +
               std::to_string(c.head_dim) + "_b" + std::to_string(c.batch) + "_q" +
               std::to_string(c.q_len) + "_k" + std::to_string(c.kv_len) + "_h" +
               std::to_string(c.q_heads) + "/" + std::to_string(c.kv_heads) +
               (c.causal ? "_causal" : "");
    }
    cases.push_back(c);
  };
  // Every head_dim and dtype over small and odd lengths, causal and not, GQA 4/2.
  const std::vector<std::pair<int64_t, int64_t>> lengths = {{1, 1},     {17, 17},   {113, 203},
                                                            {128, 128}, {203, 113}, {1, 1023}};
  for (int32_t dtype : {LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
    for (int64_t d : {64, 96, 128, 256}) {
      for (size_t l = 0; l < lengths.size(); ++l) {
        Case c;
        c.dtype = dtype;
        c.head_dim = d;
        c.batch = 2;
        c.q_len = lengths[l].first;
        c.kv_len = lengths[l].second;
        c.q_heads = 4;
        c.kv_heads = 2;
        c.causal = l % 2 == 1 || lengths[l].first == 203;
        add(c);
      }
    }
  }
  // Long sequences, both masks, MQA, every layout.
  for (auto [q, k, causal, layout] : std::vector<std::tuple<int64_t, int64_t, bool, Layout>>{
           {1023, 1024, false, Layout::bhsd},
           {1024, 1024, true, Layout::fused_qkv},
           {2049, 2049, true, Layout::padded_heads},
           {2049, 2049, false, Layout::bshd},
           {1, 2049, true, Layout::bshd},
           {2049, 17, true, Layout::bhsd}}) {
    Case c;
    c.q_len = q;
    c.kv_len = k;
    c.causal = causal;
    c.layout = layout;
    c.q_heads = 2;
    c.kv_heads = 1;
    add(c);
  }
  {
    Case c;
    c.name = "f16_d64_long_window";
    c.dtype = LLMK_DTYPE_F16;
    c.head_dim = 64;
    c.q_len = 203;
    c.kv_len = 1023;
    c.window_left = 100;
    c.window_right = 0;
    add(c);
    c.name = "bf16_d128_window_both_sides";
    c.dtype = LLMK_DTYPE_BF16;
    c.head_dim = 128;
    c.q_len = c.kv_len = 1024;
    c.window_left = 130;
    c.window_right = 17;
    add(c);
    c.name = "bf16_d128_softcap";
    c.window_left = c.window_right = -1;
    c.q_len = 113;
    c.kv_len = 203;
    c.softcap = 5.f;  // strong enough to bend the scores of unit-normal inputs
    c.scale = 0.5f;
    add(c);
    c.name = "f16_d256_softcap_causal_padded";
    c.dtype = LLMK_DTYPE_F16;
    c.head_dim = 256;
    c.causal = true;
    c.layout = Layout::padded_heads;
    add(c);
    c.name = "bf16_d128_dropout";
    c.dtype = LLMK_DTYPE_BF16;
    c.head_dim = 128;
    c.softcap = 0.f;
    c.scale = 0.f;
    c.causal = false;
    c.layout = Layout::bshd;
    c.dropout_p = 0.17f;
    add(c);
    c.name = "f16_d64_dropout_causal_softcap_no_lse";
    c.dtype = LLMK_DTYPE_F16;
    c.head_dim = 64;
    c.causal = true;
    c.softcap = 10.f;
    c.dropout_p = 0.5f;
    c.with_lse = false;
    add(c);
  }
  // Packed sequences: a length-1 query, an empty key sequence, q_len above kv_len (causal: its
  // first queries see nothing), and the long mixed batch of the benchmark, shortened.
  for (bool causal : {false, true}) {
    for (Layout layout : {Layout::bshd, Layout::bhsd}) {
      Case c;
      c.name = std::string("varlen") + (causal ? "_causal" : "") +
               (layout == Layout::bhsd ? "_bhsd" : "");
      c.varlen_q = {1, 37, 512, 3, 200, 130};
      c.varlen_k = {1, 37, 700, 0, 200, 64};
      c.causal = causal;
      c.layout = layout;
      c.q_heads = 4;
      c.kv_heads = 4;
      add(c);
    }
  }
  {
    Case c;
    c.name = "varlen_f16_d96_gqa_window";
    c.dtype = LLMK_DTYPE_F16;
    c.head_dim = 96;
    c.varlen_q = {17, 1, 300};
    c.varlen_k = {17, 129, 300};
    c.q_heads = 6;
    c.kv_heads = 2;
    c.window_left = 64;
    add(c);
  }
  return cases;
}

class AttentionGpu : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionGpu, MatchesTheCpuBackendByTheFlashRule) {
  std::mt19937_64 rng(0x5eed);
  const Problem p = make_problem(GetParam(), rng);
  const Outputs cpu = run_cpu(p);
  const Outputs gpu = run_gpu(p);
  check(p, gpu, cpu);
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.name;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Sweep, AttentionGpu, ::testing::ValuesIn(sweep()), case_name);

// The sweep's cases that AUTO gives the Hopper kernel on an sm_90 GPU (head_dim 64 and 128, no
// soft-cap or dropout), again on the portable kernel, so that both kernels are checked there.
std::vector<Case> portable_sweep() {
  std::vector<Case> cases;
  for (Case c : sweep()) {
    if ((c.head_dim == 64 || c.head_dim == 128) && c.softcap == 0.f && c.dropout_p == 0.f) {
      c.kernel = LLMK_ATTENTION_KERNEL_PORTABLE;
      cases.push_back(c);
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(PortableKernel, AttentionGpu, ::testing::ValuesIn(portable_sweep()),
                         case_name);

Case determinism_case() {
  Case c;
  c.name = "determinism";
  c.q_len = c.kv_len = 1031;
  c.causal = true;
  c.q_heads = 8;
  c.kv_heads = 2;
  c.batch = 3;
  c.dropout_p = 0.1f;
  return c;
}

TEST(AttentionGpuOnly, SameCallTwiceGivesTheSameBits) {
  std::mt19937_64 rng(11);
  Case c = determinism_case();
  c.dropout_p = 0.f;
  const Problem p = make_problem(c, rng);
  const Outputs first = run_gpu(p), second = run_gpu(p);
  EXPECT_EQ(first.o, second.o);
  EXPECT_EQ(first.lse, second.lse);
}

TEST(AttentionGpuOnly, DropoutIsReproducibleFromItsSeed) {
  std::mt19937_64 rng(12);
  Problem p = make_problem(determinism_case(), rng);
  const Outputs first = run_gpu(p), second = run_gpu(p);
  EXPECT_EQ(first.o, second.o);
  p.config.dropout_seed += 1;
  const Outputs reseeded = run_gpu(p);
  EXPECT_NE(first.o, reseeded.o);
  EXPECT_EQ(first.lse, reseeded.lse);  // lse is that of the scores, before dropout
  p.config.dropout_seed -= 1;
  p.config.dropout_offset += 1;
  EXPECT_NE(first.o, run_gpu(p).o);
}

TEST(AttentionGpuOnly, BadOffsetsGiveNanRowsAndLeaveOtherSequencesRight) {
  std::mt19937_64 rng(13);
  Case c;
  c.name = "bad_offsets";
  c.varlen_q = {17, 40, 23};
  c.varlen_k = {17, 40, 23};
  Problem p = make_problem(c, rng);
  const Outputs cpu = run_cpu(p);
  // Sequence 1's key range now ends past total_k: the GPU cannot check it on the host.
  const int32_t bad_end = static_cast<int32_t>(p.total_k + 5);
  std::memcpy(p.cu_k.bytes.data() + 4 * 2, &bad_end, 4);
  const Outputs gpu = run_gpu(p);
  for (int64_t s = 0; s < p.batch; ++s) {
    for (int64_t i = 0; i < p.len_q[s]; ++i) {
      for (int64_t h = 0; h < c.q_heads; ++h) {
        const int64_t e = element_offset(p, p.o, s, i, h, 0, true);
        const double g = read(p.o, gpu.o, e), r = read(p.o, cpu.o, e);
        float lse;
        std::memcpy(&lse, gpu.lse.data() + 4 * lse_offset(p, s, i, h), 4);
        if (s == 1) {
          ASSERT_TRUE(std::isnan(g) && std::isnan(lse)) << "row " << i << " of the bad sequence";
        } else if (s == 0) {
          ASSERT_NEAR(g, r, 0.02) << "sequence 0, row " << i;
        }
      }
    }
  }
}

bool is_sm90() {
  int device = 0, major = 0, minor = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  return major == 9 && minor == 0;
}

// HOPPER runs where it can (an sm_90 GPU, and this test binary's library is built with sm_90a
// when its GPU tests run there), giving AUTO's bits; a call it cannot take is refused.
TEST(AttentionGpuOnly, HopperKernelRunsWhereItCanAndRefusesTheRest) {
  std::mt19937_64 rng(14);
  Case c = determinism_case();
  c.dropout_p = 0.f;
  Problem p = make_problem(c, rng);
  const Outputs automatic = run_gpu(p);
  p.config.kernel = LLMK_ATTENTION_KERNEL_HOPPER;
  if (is_sm90()) {
    const Outputs hopper = run_gpu(p);
    EXPECT_EQ(automatic.o, hopper.o);
    EXPECT_EQ(automatic.lse, hopper.lse);
  }
  p.config.softcap = 4.f;  // only the portable kernel has it
  DeviceCopy q(p.q), k(p.k), v(p.v), o(p.o), lse(p.lse);
  const Buffers b{q.ptr, k.ptr, v.ptr, o.ptr, lse.ptr, nullptr, nullptr};
  EXPECT_EQ(run(cuda_context(), p, b), LLMK_ERROR_UNSUPPORTED);
  EXPECT_NE(std::string(llmk_last_error_message()).find("LLMK_ATTENTION_KERNEL_HOPPER"),
            std::string::npos)
      << llmk_last_error_message();
}

}  // namespace attention_gpu_test
