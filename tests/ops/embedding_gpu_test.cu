// llmk_embedding on a CUDA context: a randomized sweep against the CPU backend (every dtype, both
// index types, odd and large rows, padded, misaligned and offset views, strided ids; y poisoned
// with NaN; the copy must be bit-exact), and the CUDA-only answer to an id out of range.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/gpu_testing.hpp"

using namespace llmk_test;

namespace embedding_gpu_test {

struct Layout {
  const char* name;
  int64_t table_padding, y_padding;  // row stride = hidden + padding
  int64_t offset;                    // elements before the table's and y's views
  int64_t ids_stride;
};

// ids: `tokens` ids at stride `stride`, the gaps holding 2^30 (out of range for every table).
HostTensor make_ids(int32_t dtype, const std::vector<int64_t>& values, int64_t stride) {
  HostTensor h;
  const int64_t tokens = static_cast<int64_t>(values.size());
  h.view = make_view(nullptr, dtype, {tokens}, {stride});
  h.bytes.resize(std::max<size_t>(buffer_elements(h.view), 1) * element_bytes(dtype));
  for (size_t e = 0; e < h.bytes.size() / element_bytes(dtype); ++e) {
    double_to_element(dtype, 1 << 30, h.bytes.data() + e * element_bytes(dtype));
  }
  for (int64_t t = 0; t < tokens; ++t) {
    double_to_element(dtype, static_cast<double>(values[t]),
                      h.bytes.data() + t * stride * element_bytes(dtype));
  }
  return h;
}

void sweep_case(int32_t dtype, int32_t ids_dtype, int64_t tokens, int64_t vocab, int64_t hidden,
                const Layout& layout) {
  const std::string what = std::string("embedding ") + llmk::dtype_name(dtype) + " " +
                           llmk::dtype_name(ids_dtype) + " " + std::to_string(tokens) + " of " +
                           std::to_string(vocab) + "x" + std::to_string(hidden) + " " + layout.name;
  SCOPED_TRACE(what);
  std::mt19937_64 rng(std::hash<std::string>{}(what));
  std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
  std::vector<int64_t> values(tokens);
  for (int64_t& id : values) id = pick(rng);
  values[0] = vocab - 1;
  const HostTensor ids = make_ids(ids_dtype, values, layout.ids_stride);
  const HostTensor table = make_tensor(dtype, {vocab, hidden}, {hidden + layout.table_padding, 1},
                                       layout.offset, rng, 0.0, 1.0, false);
  const HostTensor y = make_tensor(dtype, {tokens, hidden}, {hidden + layout.y_padding, 1},
                                   layout.offset, rng, 0.0, 0.0, true);

  HostTensor cpu_y = y;
  const llmk_tensor c_ids = view_at(ids, const_cast<uint8_t*>(ids.bytes.data()));
  const llmk_tensor c_table = view_at(table, const_cast<uint8_t*>(table.bytes.data()));
  const llmk_tensor c_y = view_at(cpu_y, cpu_y.bytes.data());
  ASSERT_LLMK(llmk_embedding(cpu_context(), &c_ids, &c_table, &c_y, nullptr));

  DeviceCopy d_ids(ids), d_table(table), d_y(y);
  const llmk_tensor g_ids = view_at(ids, d_ids.ptr), g_table = view_at(table, d_table.ptr),
                    g_y = view_at(y, d_y.ptr);
  ASSERT_LLMK(llmk_embedding(cuda_context(), &g_ids, &g_table, &g_y, nullptr));
  ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));
  expect_close("y", y, d_y.read(y.bytes.size()), cpu_y.bytes, 0.0, 0.0);
}

TEST(EmbeddingSweep, EveryDtypeSizeAndLayout) {
  // (tokens, vocab, hidden): odd rows, a pass per row up to 256 threads x 4 packs (8192 bf16),
  // longer rows that loop (32768), and many rows.
  const std::vector<std::array<int64_t, 3>> sizes = {
      {1, 1, 1},     {3, 5, 3},         {17, 33, 17},       {64, 100, 4095}, {257, 1000, 4096},
      {9, 20, 8192}, {5, 7, 32768 + 8}, {2048, 3000, 4096}, {5000, 64, 24}};
  const std::vector<Layout> layouts = {{"contiguous", 0, 0, 0, 1},
                                       {"rows_padded_by_8", 8, 16, 0, 1},
                                       {"rows_padded_by_3", 3, 5, 0, 1},
                                       {"offset_by_1", 0, 0, 1, 1},
                                       {"strided_ids", 8, 0, 0, 3}};
  int variant = 0;
  for (int32_t dtype : {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
    for (const auto& [tokens, vocab, hidden] : sizes) {
      for (const Layout& layout : layouts) {
        const int32_t ids_dtype = variant++ % 2 ? LLMK_DTYPE_I64 : LLMK_DTYPE_I32;
        sweep_case(dtype, ids_dtype, tokens, vocab, hidden, layout);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(EmbeddingGpu, IdOutOfRangeGivesANanRow) {
  constexpr int64_t kVocab = 50, kHidden = 40;
  for (int32_t dtype : {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
    for (int32_t ids_dtype : {LLMK_DTYPE_I32, LLMK_DTYPE_I64}) {
      SCOPED_TRACE(std::string(llmk::dtype_name(dtype)) + " " + llmk::dtype_name(ids_dtype));
      std::mt19937_64 rng(5);
      std::vector<int64_t> values = {3, kVocab, -1, kVocab - 1, INT32_MAX, INT32_MIN, 0};
      if (ids_dtype == LLMK_DTYPE_I64) values.push_back(int64_t{1} << 40);
      const int64_t tokens = static_cast<int64_t>(values.size());
      const HostTensor ids = make_ids(ids_dtype, values, 1);
      const HostTensor table =
          make_tensor(dtype, {kVocab, kHidden}, {kHidden, 1}, 0, rng, 0.0, 1.0, false);
      const HostTensor y = make_tensor(dtype, {tokens, kHidden}, {kHidden, 1}, 0, rng, 0, 1, false);
      DeviceCopy d_ids(ids), d_table(table), d_y(y);
      const llmk_tensor g_ids = view_at(ids, d_ids.ptr), g_table = view_at(table, d_table.ptr),
                        g_y = view_at(y, d_y.ptr);
      ASSERT_LLMK(llmk_embedding(cuda_context(), &g_ids, &g_table, &g_y, nullptr));
      const std::vector<uint8_t> out = d_y.read(y.bytes.size());
      const size_t row_bytes = kHidden * element_bytes(dtype);
      for (int64_t t = 0; t < tokens; ++t) {
        const int64_t id = values[t];
        if (id >= 0 && id < kVocab) {
          EXPECT_EQ(std::memcmp(out.data() + t * row_bytes, table.bytes.data() + id * row_bytes,
                                row_bytes),
                    0)
              << "token " << t;
        } else {
          for (int64_t j = 0; j < kHidden; ++j) {
            ASSERT_TRUE(std::isnan(
                element_to_double(dtype, out.data() + t * row_bytes + j * element_bytes(dtype))))
                << "token " << t << " with id " << id << ", element " << j;
          }
        }
      }
    }
  }
}

TEST(EmbeddingGpu, HostMemoryIsRefused) {
  std::vector<int32_t> ids = {0, 1};
  void* device = nullptr;
  ASSERT_LLMK(llmk_malloc(cuda_context(), 2 * 8 * 4 * 2, &device));
  const llmk_tensor i = make_view(ids.data(), LLMK_DTYPE_I32, {2});
  const llmk_tensor table = make_view(device, LLMK_DTYPE_F32, {2, 8});
  const llmk_tensor y = make_view(static_cast<float*>(device) + 16, LLMK_DTYPE_F32, {2, 8});
  EXPECT_EQ(llmk_embedding(cuda_context(), &i, &table, &y, nullptr), LLMK_ERROR_WRONG_MEMORY_SPACE);
  EXPECT_NE(std::string(llmk_last_error_message()).find("ids.data"), std::string::npos)
      << llmk_last_error_message();
  ASSERT_LLMK(llmk_free(cuda_context(), device));
}

}  // namespace embedding_gpu_test
