// The norm ops on a CUDA context: a randomized sweep of every op, dtype, odd and large sizes,
// strided, offset, in-place and 3-D layouts, compared with the CPU backend (the float64
// reference) by the vectors' rule.
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>

#include "common/gpu_testing.hpp"

using namespace llmk_test;

namespace {

enum class Op { rms, add_rms, layer, layer_no_bias };

const char* op_name(Op op) {
  switch (op) {
    case Op::rms: return "rms_norm";
    case Op::add_rms: return "add_rms_norm";
    case Op::layer: return "layer_norm";
    case Op::layer_no_bias: return "layer_norm(no bias)";
  }
  return "?";
}

struct Layout {
  const char* name;
  int64_t row_padding;  // row stride = hidden + padding (x, y and residual differ by design)
  int64_t offset;       // elements between the buffer start and the view
  bool in_place;
  bool three_d;  // [2, rows, hidden] with a gap between the two batches
};

llmk_status run_op(llmk_context* ctx, Op op, const llmk_tensor& x, const llmk_tensor* residual,
                   const llmk_tensor& w, const llmk_tensor* b, const llmk_tensor& y,
                   void* stream = nullptr) {
  const float eps = op == Op::rms || op == Op::add_rms ? 1e-6f : 1e-5f;
  switch (op) {
    case Op::rms: return llmk_rms_norm(ctx, &x, &w, eps, &y, stream);
    case Op::add_rms: return llmk_add_rms_norm(ctx, &x, residual, &w, eps, &y, stream);
    case Op::layer: return llmk_layer_norm(ctx, &x, &w, b, eps, &y, stream);
    case Op::layer_no_bias: return llmk_layer_norm(ctx, &x, &w, nullptr, eps, &y, stream);
  }
  return LLMK_ERROR_INTERNAL;
}

void sweep_case(Op op, int32_t dtype, int64_t rows, int64_t hidden, const Layout& layout) {
  const std::string what = std::string(op_name(op)) + " " + llmk::dtype_name(dtype) + " " +
                           std::to_string(rows) + "x" + std::to_string(hidden) + " " + layout.name;
  SCOPED_TRACE(what);
  std::mt19937_64 rng(std::hash<std::string>{}(what));
  const std::vector<int64_t> shape =
      layout.three_d ? std::vector<int64_t>{2, rows, hidden} : std::vector<int64_t>{rows, hidden};
  auto strides = [&](int64_t padding) -> std::vector<int64_t> {
    if (layout.three_d) return {rows * (hidden + padding) + 64, hidden + padding, 1};
    return {hidden + padding, 1};
  };
  const bool with_residual = op == Op::add_rms;
  HostTensor x =
      make_tensor(dtype, shape, strides(layout.row_padding), layout.offset, rng, 0.25, 1.5, false);
  HostTensor residual = make_tensor(dtype, shape, strides(layout.row_padding * 2), layout.offset,
                                    rng, 0.0, 1.0, false);
  HostTensor y =
      make_tensor(dtype, shape, strides(layout.row_padding + 1), layout.offset, rng, 0, 0, true);
  HostTensor w = make_tensor(dtype, {hidden}, {1}, 0, rng, 1.0, 0.2, false);
  HostTensor b = make_tensor(dtype, {hidden}, {1}, 0, rng, 0.0, 0.1, false);

  // CPU: the reference, on copies of the host buffers.
  HostTensor cpu_x = x, cpu_residual = residual, cpu_y = y;
  const llmk_tensor cx = view_at(cpu_x, cpu_x.bytes.data());
  const llmk_tensor cr = view_at(cpu_residual, cpu_residual.bytes.data());
  const llmk_tensor cw = view_at(w, w.bytes.data());
  const llmk_tensor cb = view_at(b, b.bytes.data());
  const llmk_tensor cy = layout.in_place ? cx : view_at(cpu_y, cpu_y.bytes.data());
  ASSERT_LLMK(run_op(cpu_context(), op, cx, with_residual ? &cr : nullptr, cw, &cb, cy));

  DeviceCopy dx(x), dr(residual), dy(y), dw(w), db(b);
  const llmk_tensor gx = view_at(x, dx.ptr);
  const llmk_tensor gr = view_at(residual, dr.ptr);
  const llmk_tensor gw = view_at(w, dw.ptr);
  const llmk_tensor gb = view_at(b, db.ptr);
  const llmk_tensor gy = layout.in_place ? gx : view_at(y, dy.ptr);
  ASSERT_LLMK(run_op(cuda_context(), op, gx, with_residual ? &gr : nullptr, gw, &gb, gy));
  ASSERT_LLMK(llmk_synchronize(cuda_context(), nullptr));

  if (layout.in_place) {
    expect_close("y (in x)", x, dx.read(x.bytes.size()), cpu_x.bytes);
  } else {
    expect_close("y", y, dy.read(y.bytes.size()), cpu_y.bytes);
  }
  if (with_residual)
    expect_close("residual", residual, dr.read(residual.bytes.size()), cpu_residual.bytes);
}

TEST(Sweep, EveryOpDtypeSizeAndLayout) {
  // Few rows load the parameters early; from 2 * 132 row groups on (H100/H200) they stream with
  // the parameters late (600x4096, 400x11008, 300x16384, 3000x64); rows longer than the
  // registers hold take the two-pass kernel (32768, 40000).
  const std::vector<std::pair<int64_t, int64_t>> sizes = {
      {1, 1},     {3, 3},     {17, 17},    {64, 4095},   {33, 4096},   {5, 5120},
      {9, 8192},  {7, 11008}, {4, 16384},  {3, 32768},   {2, 40000},   {1000, 128},
      {4097, 64}, {2, 24},    {600, 4096}, {400, 11008}, {300, 16384}, {3000, 64}};
  const std::vector<Layout> layouts = {
      {"contiguous", 0, 0, false, false},   {"row_stride+8", 8, 0, false, false},
      {"row_stride+3", 3, 0, false, false}, {"offset_by_1", 0, 1, false, false},
      {"in_place", 0, 0, true, false},      {"3d", 8, 0, false, true}};
  for (Op op : {Op::rms, Op::add_rms, Op::layer, Op::layer_no_bias}) {
    for (int32_t dtype : {LLMK_DTYPE_F32, LLMK_DTYPE_F16, LLMK_DTYPE_BF16}) {
      for (const auto& [rows, hidden] : sizes) {
        for (const Layout& layout : layouts) {
          sweep_case(op, dtype, rows, hidden, layout);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

}  // namespace
