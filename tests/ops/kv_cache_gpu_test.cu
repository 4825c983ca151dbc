// The KV-cache writes on a CUDA context: a randomized sweep against the CPU backend (both entries,
// every dtype, both index types, odd and large heads, k and v from a fused QKV buffer, head-major
// and padded caches, misaligned views; caches prefilled with random data, the copy bit-exact
// everywhere), and the CUDA-only answer to destinations outside the cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/gpu_testing.hpp"

using namespace llmk_test;

namespace kv_cache_gpu_test {

enum class CacheLayout { dense, head_major, padded };

struct Layout {
  const char* name;
  bool fused_qkv;     // k, v: slices of [tokens, (q_heads + 2 kv_heads) * head_dim], q_heads = 2
                      // kv_heads
  CacheLayout cache;  // k_cache's layout; v_cache is always dense
  int64_t offset;     // elements before k, v and k_cache (1: misaligned for 16-byte access)
  int64_t index_stride;
};

// A case's geometry. Contiguous: batch sequences of new_len tokens into max_seq = page_size
// positions each (num_pages = batch). Paged: batch 1, new_len tokens, num_pages of page_size.
struct Geometry {
  int64_t batch, new_len, heads, head_dim, num_pages, page_size;
};

// k and v as views into one host buffer (their HostTensors carry a view and an offset, no bytes).
struct Inputs {
  HostTensor buffer, k, v;
};

Inputs make_inputs(int32_t dtype, bool paged, const Geometry& g, const Layout& layout,
                   std::mt19937_64& rng) {
  const int64_t row = g.heads * g.head_dim, tokens = g.batch * g.new_len;
  const int64_t token_stride = layout.fused_qkv ? 4 * row : row;
  std::vector<int64_t> shape = {g.new_len, g.heads, g.head_dim};
  std::vector<int64_t> strides = {token_stride, g.head_dim, 1};
  if (!paged) {
    shape.insert(shape.begin(), g.batch);
    strides.insert(strides.begin(), g.new_len * token_stride);
  }
  Inputs in;
  in.k.view = in.v.view = make_view(nullptr, dtype, shape, strides);
  in.k.offset = layout.offset;
  in.v.offset = layout.fused_qkv ? in.k.offset + row : in.k.offset + tokens * row + 5;
  in.buffer.bytes = random_buffer(dtype, in.v.offset + tokens * token_stride + 8, rng);
  return in;
}

HostTensor make_cache(int32_t dtype, const Geometry& g, CacheLayout layout, int64_t offset,
                      std::mt19937_64& rng) {
  const int64_t row = g.heads * g.head_dim;
  std::vector<int64_t> strides;
  switch (layout) {
    case CacheLayout::dense: strides = {}; break;
    case CacheLayout::head_major:
      strides = {g.heads * g.page_size * g.head_dim, g.head_dim, g.page_size * g.head_dim, 1};
      break;
    case CacheLayout::padded:
      strides = {g.page_size * (row + 3) + 7, row + 3, g.head_dim, 1};
      break;
  }
  return make_tensor(dtype, {g.num_pages, g.page_size, g.heads, g.head_dim}, strides, offset, rng,
                     0.0, 1.0, false);
}

HostTensor make_index(int32_t dtype, const std::vector<int64_t>& values, int64_t stride) {
  HostTensor h;
  h.view = make_view(nullptr, dtype, {static_cast<int64_t>(values.size())}, {stride});
  h.bytes.resize(std::max<size_t>(buffer_elements(h.view), 1) * element_bytes(dtype));
  for (size_t e = 0; e < h.bytes.size() / element_bytes(dtype); ++e) {
    double_to_element(dtype, 1 << 30, h.bytes.data() + e * element_bytes(dtype));
  }
  for (size_t t = 0; t < values.size(); ++t) {
    double_to_element(dtype, static_cast<double>(values[t]),
                      h.bytes.data() + t * stride * element_bytes(dtype));
  }
  return h;
}

llmk_status write(llmk_context* ctx, bool paged, const llmk_tensor& k, const llmk_tensor& v,
                  const llmk_tensor& index, const llmk_tensor& k_cache,
                  const llmk_tensor& v_cache) {
  return paged ? llmk_paged_kv_cache_write(ctx, &k, &v, &index, &k_cache, &v_cache, nullptr)
               : llmk_kv_cache_write(ctx, &k, &v, &index, &k_cache, &v_cache, nullptr);
}

// Runs the write on both contexts from the same starting bytes and expects identical caches.
void compare_with_cpu(int32_t dtype, bool paged, const Geometry& g, const Layout& layout,
                      const std::vector<int64_t>& index_values, int32_t index_dtype,
                      std::mt19937_64& rng) {
  const Inputs in = make_inputs(dtype, paged, g, layout, rng);
  const HostTensor index = make_index(index_dtype, index_values, layout.index_stride);
  const HostTensor k_cache = make_cache(dtype, g, layout.cache, layout.offset, rng);
  const HostTensor v_cache = make_cache(dtype, g, CacheLayout::dense, 0, rng);

  HostTensor cpu_k_cache = k_cache, cpu_v_cache = v_cache;
  void* host_inputs = const_cast<uint8_t*>(in.buffer.bytes.data());
  ASSERT_LLMK(write(cpu_context(), paged, view_at(in.k, host_inputs), view_at(in.v, host_inputs),
                    view_at(index, const_cast<uint8_t*>(index.bytes.data())),
                    view_at(cpu_k_cache, cpu_k_cache.bytes.data()),
                    view_at(cpu_v_cache, cpu_v_cache.bytes.data())));

  DeviceCopy d_in(in.buffer), d_index(index), d_k_cache(k_cache), d_v_cache(v_cache);
  ASSERT_LLMK(write(cuda_context(), paged, view_at(in.k, d_in.ptr), view_at(in.v, d_in.ptr),
                    view_at(index, d_index.ptr), view_at(k_cache, d_k_cache.ptr),
                    view_at(v_cache, d_v_cache.ptr)));
  ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
  expect_close("k_cache", k_cache, d_k_cache.read(k_cache.bytes.size()), cpu_k_cache.bytes, 0, 0);
  expect_close("v_cache", v_cache, d_v_cache.read(v_cache.bytes.size()), cpu_v_cache.bytes, 0, 0);
}

TEST(KvCacheSweep, EveryEntryDtypeSizeAndLayout) {
  // Contiguous: (batch, new_len, heads, head_dim, -, max_seq); paged: (1, tokens, heads,
  // head_dim, num_pages, page_size). Llama-like heads (32 x 128), decode steps, odd head_dims.
  const std::vector<Geometry> contiguous = {{1, 1, 1, 1, 1, 1},      {2, 3, 2, 8, 2, 8},
                                            {3, 5, 3, 17, 3, 9},     {4, 1, 8, 128, 4, 64},
                                            {2, 64, 32, 128, 2, 96}, {1, 7, 1, 4095, 1, 7}};
  const std::vector<Geometry> paged = {{1, 1, 1, 1, 1, 1},         {1, 6, 2, 8, 4, 4},
                                       {1, 17, 3, 17, 8, 3},       {1, 256, 8, 128, 20, 16},
                                       {1, 1000, 32, 128, 70, 16}, {1, 5, 2, 64, 2, 4}};
  const std::vector<Layout> layouts = {{"dense", false, CacheLayout::dense, 0, 1},
                                       {"fused_qkv", true, CacheLayout::dense, 0, 2},
                                       {"head_major_cache", false, CacheLayout::head_major, 0, 1},
                                       {"padded_cache", true, CacheLayout::padded, 0, 1},
                                       {"offset_by_1", false, CacheLayout::dense, 1, 3}};
  int variant = 0;
  for (bool is_paged : {false, true}) {
    for (int32_t dtype : {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
      for (const Geometry& g : is_paged ? paged : contiguous) {
        for (const Layout& layout : layouts) {
          const int32_t index_dtype = variant++ % 2 ? LLMK_DTYPE_I64 : LLMK_DTYPE_I32;
          const std::string what = std::string(is_paged ? "paged " : "contiguous ") +
                                   llmk::dtype_name(dtype) + " " + llmk::dtype_name(index_dtype) +
                                   " " + std::to_string(g.batch) + "x" + std::to_string(g.new_len) +
                                   "x" + std::to_string(g.heads) + "x" +
                                   std::to_string(g.head_dim) + " " + layout.name;
          SCOPED_TRACE(what);
          std::mt19937_64 rng(std::hash<std::string>{}(what));
          std::vector<int64_t> index;
          if (is_paged) {  // distinct shuffled slots, every seventh token padding
            std::vector<int64_t> slots(g.num_pages * g.page_size);
            std::iota(slots.begin(), slots.end(), 0);
            std::shuffle(slots.begin(), slots.end(), rng);
            index.assign(slots.begin(), slots.begin() + g.new_len);
            for (size_t t = 3; t < index.size(); t += 7) index[t] = -1;
          } else {
            std::uniform_int_distribution<int64_t> start(0, g.page_size - g.new_len);
            for (int64_t b = 0; b < g.batch; ++b) index.push_back(start(rng));
          }
          compare_with_cpu(dtype, is_paged, g, layout, index, index_dtype, rng);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

// Destinations outside the cache, which the CPU backend refuses: the GPU skips those tokens. The
// expected caches come from the CPU backend writing only the tokens that land inside, through the
// paged entry (a contiguous cache is the paged layout with one page of max_seq per sequence).
TEST(KvCacheGpu, DestinationsOutsideTheCacheAreSkipped) {
  constexpr int64_t kBatch = 4, kNewLen = 3, kHeads = 2, kHeadDim = 16, kMaxSeq = 8;
  const Layout dense{"dense", false, CacheLayout::dense, 0, 1};
  for (int32_t index_dtype : {LLMK_DTYPE_I32, LLMK_DTYPE_I64}) {
    for (bool paged : {false, true}) {
      SCOPED_TRACE(std::string(paged ? "paged " : "contiguous ") + llmk::dtype_name(index_dtype));
      std::mt19937_64 rng(9);
      const int64_t tokens = kBatch * kNewLen, slots = kBatch * kMaxSeq;
      const Geometry g = paged ? Geometry{1, tokens, kHeads, kHeadDim, kBatch, kMaxSeq}
                               : Geometry{kBatch, kNewLen, kHeads, kHeadDim, kBatch, kMaxSeq};
      // Contiguous: sequence 0 starts 2 before the cache (its first two tokens fall outside),
      // 1 one past the last start that fits (its last token falls outside), 2 far beyond it,
      // 3 fits. Paged: slots past the end and negative ones among valid ones.
      std::vector<int64_t> index =
          paged ? std::vector<int64_t>{0,         slots, 5,  -1, slots + 100, 31,
                                       INT32_MAX, 8,     -5, 17, INT32_MIN,   2}
                : std::vector<int64_t>{-2, kMaxSeq - kNewLen + 1, INT32_MAX - 1, 1};
      if (index_dtype == LLMK_DTYPE_I64) index[paged ? 6 : 2] = int64_t{1} << 62;
      std::vector<int64_t> inside(tokens, -1);  // each token's slot, -1 where skipped
      for (int64_t t = 0; t < tokens; ++t) {
        if (paged) {
          if (index[t] >= 0 && index[t] < slots) inside[t] = index[t];
        } else {
          const int64_t position = index[t / kNewLen] + t % kNewLen;
          if (position >= 0 && position < kMaxSeq) {
            inside[t] = t / kNewLen * kMaxSeq + position;
          }
        }
      }

      Inputs in = make_inputs(LLMK_DTYPE_BF16, paged, g, dense, rng);
      const HostTensor gpu_index = make_index(index_dtype, index, 1);
      const HostTensor cpu_index = make_index(LLMK_DTYPE_I64, inside, 1);
      const HostTensor k_cache = make_cache(LLMK_DTYPE_BF16, g, CacheLayout::dense, 0, rng);
      const HostTensor v_cache = make_cache(LLMK_DTYPE_BF16, g, CacheLayout::dense, 0, rng);

      HostTensor cpu_k_cache = k_cache, cpu_v_cache = v_cache;
      void* host_inputs = in.buffer.bytes.data();
      llmk_tensor k_tokens = view_at(in.k, host_inputs), v_tokens = view_at(in.v, host_inputs);
      if (!paged) {  // [batch, new_len, ...] as [tokens, ...]: dense, so the two merge
        for (llmk_tensor* t : {&k_tokens, &v_tokens}) {
          *t = make_view(t->data, t->dtype, {tokens, kHeads, kHeadDim});
        }
      }
      ASSERT_LLMK(write(cpu_context(), true, k_tokens, v_tokens,
                        view_at(cpu_index, const_cast<uint8_t*>(cpu_index.bytes.data())),
                        view_at(cpu_k_cache, cpu_k_cache.bytes.data()),
                        view_at(cpu_v_cache, cpu_v_cache.bytes.data())));

      DeviceCopy d_in(in.buffer), d_index(gpu_index), d_k_cache(k_cache), d_v_cache(v_cache);
      ASSERT_LLMK(write(cuda_context(), paged, view_at(in.k, d_in.ptr), view_at(in.v, d_in.ptr),
                        view_at(gpu_index, d_index.ptr), view_at(k_cache, d_k_cache.ptr),
                        view_at(v_cache, d_v_cache.ptr)));
      ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
      EXPECT_EQ(d_k_cache.read(k_cache.bytes.size()), cpu_k_cache.bytes);
      EXPECT_EQ(d_v_cache.read(v_cache.bytes.size()), cpu_v_cache.bytes);
    }
  }
}

TEST(KvCacheGpu, HostCacheIsRefused) {
  void* device = nullptr;
  ASSERT_LLMK(llmk_malloc(cuda_context(), 1024, &device));
  std::vector<float> host_cache(4 * 2 * 8, NAN);
  const std::vector<int32_t> zero = {0};
  int32_t* slots = static_cast<int32_t*>(device) + 200;
  ASSERT_LLMK(llmk_memcpy(cuda_context(), slots, zero.data(), 4, nullptr));
  const llmk_tensor k = make_view(device, LLMK_DTYPE_F32, {1, 2, 8});
  const llmk_tensor index = make_view(slots, LLMK_DTYPE_I32, {1});
  const llmk_tensor v_cache =
      make_view(static_cast<float*>(device) + 64, LLMK_DTYPE_F32, {4, 1, 2, 8});
  const llmk_tensor k_cache = make_view(host_cache.data(), LLMK_DTYPE_F32, {4, 1, 2, 8});
  EXPECT_EQ(llmk_paged_kv_cache_write(cuda_context(), &k, &k, &index, &k_cache, &v_cache, nullptr),
            LLMK_ERROR_WRONG_MEMORY_SPACE);
  EXPECT_NE(std::string(llmk_last_error_message()).find("k_cache.data"), std::string::npos)
      << llmk_last_error_message();
  ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
  for (float value : host_cache) ASSERT_TRUE(std::isnan(value));
  ASSERT_LLMK(llmk_free(cuda_context(), device));
}

}  // namespace kv_cache_gpu_test
