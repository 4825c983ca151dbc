// rope on a CUDA context: a randomized sweep against the CPU backend (every style, dtype and
// cache kind; odd, large and partial-rotary shapes; separate, fused-QKV, padded and misaligned
// layouts; i32 and i64 positions with strides, large and negative ones), and what only the GPU
// does: a position outside the cache gives NaN in that token's rotated dimensions.
//
// Each buffer starts as NaN outside the views of q and k; after the op, the rotated dimensions of
// both must match the CPU within the vectors' tolerance and every other element (dimensions past
// rotary_dim, v in a fused buffer, gaps) must still hold its initial bits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/gpu_testing.hpp"

using namespace llmk_test;

namespace rope_gpu_test {

struct Shape {
  int64_t tokens, q_heads, kv_heads, head_dim, rotary_dim;  // rotary_dim 0: head_dim
};

struct Layout {
  const char* name;
  bool fused;        // q, k and v as column blocks of one [tokens, (q + 2 kv) heads * head_dim]
  int64_t head_pad;  // elements between the heads of separate q and k
  int64_t offset;    // elements before the first view: 1 breaks 16-byte alignment
  bool with_k;
};

enum class CacheKind { none, f32, same_dtype };

// f32: the GPU's reduced angle carries ~1.5e-7 absolute error (tests/vectors/ops/rope.py).
double atol_for(int32_t dtype) { return dtype == LLMK_DTYPE_F32 ? 3e-6 : atol_of(dtype); }

// Host buffers of one call: q and k (possibly one buffer), positions, cache.
struct Problem {
  int32_t dtype;
  int64_t rotary_dim;
  HostTensor q, k;  // k.bytes is empty when k lives in q's buffer
  bool k_in_q = false, with_k = true;
  HostTensor positions, cache;
  bool with_cache = false;
  std::vector<bool> rotated_q, rotated_k;  // buffer elements that the op rewrites
};

void mark_rotated(const HostTensor& h, int64_t rotary_dim, std::vector<bool>& rotated) {
  for (int64_t t = 0; t < h.view.shape[0]; ++t) {
    for (int64_t head = 0; head < h.view.shape[1]; ++head) {
      for (int64_t d = 0; d < rotary_dim; ++d) {
        rotated[h.offset + t * h.view.strides[0] + head * h.view.strides[1] + d] = true;
      }
    }
  }
}

void fill_view(HostTensor& h, std::mt19937_64& rng) {
  std::normal_distribution<double> normal(0.0, 1.0);
  const size_t element = element_bytes(h.view.dtype);
  for (int64_t t = 0; t < h.view.shape[0]; ++t) {
    for (int64_t head = 0; head < h.view.shape[1]; ++head) {
      for (int64_t d = 0; d < h.view.shape[2]; ++d) {
        const int64_t e = h.offset + t * h.view.strides[0] + head * h.view.strides[1] + d;
        double_to_element(h.view.dtype, normal(rng), h.bytes.data() + e * element);
      }
    }
  }
}

HostTensor heads_tensor(int32_t dtype, int64_t tokens, int64_t heads, int64_t head_dim,
                        std::vector<int64_t> strides, int64_t offset, size_t buffer_elements) {
  HostTensor h;
  h.view = make_view(nullptr, dtype, {tokens, heads, head_dim}, strides);
  h.offset = offset;
  h.bytes = nan_buffer(dtype, buffer_elements);
  return h;
}

Problem make_problem(int32_t dtype, const Shape& s, const Layout& layout, CacheKind cache,
                     int32_t positions_dtype, int64_t positions_stride, std::mt19937_64& rng) {
  Problem p;
  p.dtype = dtype;
  p.rotary_dim = s.rotary_dim != 0 ? s.rotary_dim : s.head_dim;
  p.with_k = layout.with_k && s.kv_heads > 0;
  const int64_t d = s.head_dim;
  if (layout.fused) {
    const int64_t width = (s.q_heads + 2 * s.kv_heads) * d;
    const size_t elements = static_cast<size_t>(layout.offset + s.tokens * width);
    p.q = heads_tensor(dtype, s.tokens, s.q_heads, d, {width, d, 1}, layout.offset, elements);
    p.k = heads_tensor(dtype, s.tokens, s.kv_heads, d, {width, d, 1}, layout.offset + s.q_heads * d,
                       0);
    p.k.bytes.clear();
    p.k_in_q = true;
  } else {
    const int64_t head_stride = d + layout.head_pad;
    const int64_t q_token = s.q_heads * head_stride + 8, k_token = s.kv_heads * head_stride + 8;
    p.q = heads_tensor(dtype, s.tokens, s.q_heads, d, {q_token, head_stride, 1}, layout.offset,
                       static_cast<size_t>(layout.offset + s.tokens * q_token));
    p.k = heads_tensor(dtype, s.tokens, s.kv_heads, d, {k_token, head_stride, 1}, layout.offset,
                       static_cast<size_t>(layout.offset + s.tokens * k_token));
  }
  fill_view(p.q, rng);
  p.rotated_q.assign(p.q.bytes.size() / element_bytes(dtype), false);
  mark_rotated(p.q, p.rotary_dim, p.rotated_q);
  if (p.with_k) {
    if (p.k_in_q) {  // fill k's view of q's buffer
      HostTensor k_view = p.k;
      k_view.bytes = std::move(p.q.bytes);
      fill_view(k_view, rng);
      p.q.bytes = std::move(k_view.bytes);
      mark_rotated(p.k, p.rotary_dim, p.rotated_q);
    } else {
      fill_view(p.k, rng);
      p.rotated_k.assign(p.k.bytes.size() / element_bytes(dtype), false);
      mark_rotated(p.k, p.rotary_dim, p.rotated_k);
    }
  }

  const int64_t cache_rows = 97;
  p.with_cache = cache != CacheKind::none;
  std::uniform_int_distribution<int64_t> in_cache(0, cache_rows - 1), small(0, 8191),
      large(-1000000, 10000000);
  p.positions.view = make_view(nullptr, positions_dtype, {s.tokens}, {positions_stride});
  p.positions.bytes.assign(
      static_cast<size_t>(s.tokens * positions_stride) * element_bytes(positions_dtype), 0xEE);
  for (int64_t t = 0; t < s.tokens; ++t) {
    const int64_t position = p.with_cache ? in_cache(rng) : (t % 3 == 2 ? large(rng) : small(rng));
    double_to_element(
        positions_dtype, static_cast<double>(position),
        p.positions.bytes.data() + t * positions_stride * element_bytes(positions_dtype));
  }
  if (p.with_cache) {
    const int32_t cache_dtype = cache == CacheKind::f32 ? LLMK_DTYPE_F32 : dtype;
    const int64_t row_stride = p.rotary_dim + 4;
    p.cache.view = make_view(nullptr, cache_dtype, {cache_rows, p.rotary_dim}, {row_stride, 1});
    p.cache.bytes = nan_buffer(cache_dtype, static_cast<size_t>(cache_rows * row_stride));
    const size_t element = element_bytes(cache_dtype);
    for (int64_t r = 0; r < cache_rows; ++r) {
      for (int64_t i = 0; i < p.rotary_dim / 2; ++i) {
        const double angle = r * std::pow(10000.0, -2.0 * i / p.rotary_dim);
        uint8_t* row = p.cache.bytes.data() + r * row_stride * element;
        double_to_element(cache_dtype, std::cos(angle), row + i * element);
        double_to_element(cache_dtype, std::sin(angle), row + (p.rotary_dim / 2 + i) * element);
      }
    }
  }
  return p;
}

// Rotated elements within tolerance of the CPU's, all others bit-identical to the initial bytes.
void expect_rotated_close(const std::string& what, int32_t dtype, const std::vector<bool>& rotated,
                          const std::vector<uint8_t>& initial, const std::vector<uint8_t>& gpu,
                          const std::vector<uint8_t>& cpu) {
  const size_t element = element_bytes(dtype);
  int64_t bad = 0;
  std::string first;
  for (size_t e = 0; e < rotated.size(); ++e) {
    if (!rotated[e]) {
      ASSERT_EQ(std::memcmp(gpu.data() + e * element, initial.data() + e * element, element), 0)
          << what << ": element " << e << " outside the rotated dimensions was written";
      continue;
    }
    const double g = element_to_double(dtype, gpu.data() + e * element);
    const double c = element_to_double(dtype, cpu.data() + e * element);
    if (!(std::isfinite(g) &&
          std::fabs(g - c) <= atol_for(dtype) + rtol_of(dtype) * std::fabs(c))) {
      if (bad++ == 0) {
        first = "element " + std::to_string(e) + ": gpu " + std::to_string(g) + " cpu " +
                std::to_string(c);
      }
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " rotated elements off, first " << first;
}

llmk_status run(llmk_context* ctx, const llmk_rope_config& config, const Problem& p, void* q_buffer,
                void* k_buffer, void* positions, void* cache) {
  const llmk_tensor qv = view_at(p.q, q_buffer);
  const llmk_tensor kv = view_at(p.k, p.k_in_q ? q_buffer : k_buffer);
  const llmk_tensor pv = view_at(p.positions, positions);
  const llmk_tensor cv = view_at(p.cache, cache);
  return llmk_rope(ctx, &config, &pv, &qv, p.with_k ? &kv : nullptr, p.with_cache ? &cv : nullptr,
                   nullptr);
}

void sweep_case(llmk_rope_style style, int32_t dtype, const Shape& s, const Layout& layout,
                CacheKind cache, int32_t positions_dtype, int64_t positions_stride) {
  const std::string what = std::string(style == LLMK_ROPE_NEOX ? "neox " : "gptj ") +
                           llmk::dtype_name(dtype) + " " + std::to_string(s.tokens) + "x" +
                           std::to_string(s.q_heads) + "/" + std::to_string(s.kv_heads) + "x" +
                           std::to_string(s.head_dim) + " r" + std::to_string(s.rotary_dim) + " " +
                           layout.name + " cache" + std::to_string(static_cast<int>(cache)) + " " +
                           llmk::dtype_name(positions_dtype) + "*" +
                           std::to_string(positions_stride);
  SCOPED_TRACE(what);
  std::mt19937_64 rng(std::hash<std::string>{}(what));
  const Problem p = make_problem(dtype, s, layout, cache, positions_dtype, positions_stride, rng);
  llmk_rope_config config;
  llmk_rope_config_init(&config);
  config.style = style;
  config.rotary_dim = static_cast<int32_t>(s.rotary_dim);
  if (s.head_dim == 128) {  // Llama 3.1's scaling on one size
    config.theta = 500000.0;
    config.llama3_factor = 8.0;
    config.llama3_low_freq_factor = 1.0;
    config.llama3_high_freq_factor = 4.0;
    config.llama3_original_max_position = 8192.0;
  }

  std::vector<uint8_t> cpu_q = p.q.bytes, cpu_k = p.k.bytes;
  std::vector<uint8_t> positions = p.positions.bytes, cpu_cache = p.cache.bytes;
  ASSERT_LLMK(run(cpu_context(), config, p, cpu_q.data(), cpu_k.data(), positions.data(),
                  cpu_cache.data()));

  HostTensor k_host = p.k;
  if (k_host.bytes.empty()) k_host.bytes.assign(16, 0);
  HostTensor cache_host = p.cache;
  if (cache_host.bytes.empty()) cache_host.bytes.assign(16, 0);
  DeviceCopy dq(p.q), dk(k_host), dpositions(p.positions), dcache(cache_host);
  ASSERT_LLMK(run(cuda_context(), config, p, dq.ptr, dk.ptr, dpositions.ptr, dcache.ptr));
  ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));

  expect_rotated_close("q buffer", dtype, p.rotated_q, p.q.bytes, dq.read(p.q.bytes.size()), cpu_q);
  if (p.with_k && !p.k_in_q) {
    expect_rotated_close("k buffer", dtype, p.rotated_k, p.k.bytes, dk.read(p.k.bytes.size()),
                         cpu_k);
  }
}

TEST(RopeSweep, EveryStyleDtypeCacheShapeAndLayout) {
  // 17x32/8x128: a Llama 3 GQA layer (and its frequency scaling); 9x128/128: more units per
  // token than a block holds (heads split over blockIdx.y); 4097 tokens: many blocks; head_dim
  // 20: rows of 40 bytes, no 16-byte packs; 1x1/1x2: a single pair; 512: the most pairs.
  const std::vector<Shape> shapes = {{1, 1, 1, 2, 0},     {1, 1, 1, 64, 0},  {3, 3, 1, 64, 0},
                                     {17, 32, 8, 128, 0}, {5, 4, 4, 80, 32}, {33, 5, 3, 96, 64},
                                     {7, 2, 1, 256, 0},   {3, 2, 2, 512, 0}, {9, 128, 128, 128, 0},
                                     {4097, 4, 2, 64, 0}, {3, 3, 1, 20, 0},  {2, 1, 3, 16, 8}};
  const std::vector<Layout> layouts = {
      {"separate", false, 0, 0, true},         {"fused_qkv", true, 0, 0, true},
      {"padded_heads", false, 8, 0, true},     {"offset_by_1", false, 0, 1, true},
      {"fused_offset_by_1", true, 0, 1, true}, {"no_k", false, 0, 0, false}};
  int index = 0;
  for (llmk_rope_style style : {LLMK_ROPE_NEOX, LLMK_ROPE_GPTJ}) {
    for (int32_t dtype : {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
      for (const Shape& shape : shapes) {
        for (const Layout& layout : layouts) {
          for (CacheKind cache : {CacheKind::none, CacheKind::f32, CacheKind::same_dtype}) {
            ++index;
            const int32_t positions_dtype = index % 2 ? LLMK_DTYPE_I32 : LLMK_DTYPE_I64;
            const int64_t positions_stride = index % 3 == 0 ? 3 : 1;
            sweep_case(style, dtype, shape, layout, cache, positions_dtype, positions_stride);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

TEST(RopeGpu, PositionOutsideTheCacheGivesNanInThatTokenOnly) {
  // Positions -1, 97 (one past the last row) and 2^40 have no row: their tokens' rotated
  // dimensions become NaN, the dimensions past rotary_dim and every other token are as on the
  // CPU, where those positions are replaced by valid ones.
  for (int32_t dtype : {LLMK_DTYPE_F32, LLMK_DTYPE_BF16}) {
    for (llmk_rope_style style : {LLMK_ROPE_NEOX, LLMK_ROPE_GPTJ}) {
      SCOPED_TRACE(std::string(llmk::dtype_name(dtype)) +
                   (style == LLMK_ROPE_NEOX ? " neox" : " gptj"));
      std::mt19937_64 rng(11);
      const Shape shape{6, 4, 2, 64, 32};
      const Layout layout{"fused_qkv", true, 0, 0, true};
      Problem p = make_problem(dtype, shape, layout, CacheKind::f32, LLMK_DTYPE_I64, 1, rng);
      auto* positions = reinterpret_cast<int64_t*>(p.positions.bytes.data());
      const std::vector<int64_t> bad_tokens = {1, 3, 4};
      const int64_t bad_positions[] = {-1, 97, int64_t{1} << 40};
      llmk_rope_config config;
      llmk_rope_config_init(&config);
      config.style = style;
      config.rotary_dim = static_cast<int32_t>(shape.rotary_dim);

      std::vector<uint8_t> cpu_q = p.q.bytes, cpu_positions = p.positions.bytes,
                           cache = p.cache.bytes;
      ASSERT_LLMK(
          run(cpu_context(), config, p, cpu_q.data(), nullptr, cpu_positions.data(), cache.data()));
      for (size_t i = 0; i < bad_tokens.size(); ++i) positions[bad_tokens[i]] = bad_positions[i];
      DeviceCopy dq(p.q), dpositions(p.positions), dcache(p.cache);
      ASSERT_LLMK(run(cuda_context(), config, p, dq.ptr, nullptr, dpositions.ptr, dcache.ptr));
      ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
      std::vector<uint8_t> gpu_q = dq.read(p.q.bytes.size());

      // The bad tokens' rotated elements are NaN on the GPU and leave the comparison; the rest
      // must match the CPU as usual.
      const size_t element = element_bytes(dtype);
      std::vector<bool> rotated = p.rotated_q;
      for (const HostTensor* view : {&p.q, &p.k}) {
        for (int64_t t : bad_tokens) {
          for (int64_t head = 0; head < view->view.shape[1]; ++head) {
            for (int64_t d = 0; d < shape.rotary_dim; ++d) {
              const int64_t e =
                  view->offset + t * view->view.strides[0] + head * view->view.strides[1] + d;
              EXPECT_TRUE(std::isnan(element_to_double(dtype, gpu_q.data() + e * element)))
                  << "token " << t << " head " << head << " dim " << d;
              rotated[e] = false;
              std::memcpy(gpu_q.data() + e * element, p.q.bytes.data() + e * element, element);
            }
          }
        }
      }
      expect_rotated_close("q buffer", dtype, rotated, p.q.bytes, gpu_q, cpu_q);
    }
  }
}

}  // namespace rope_gpu_test
