// Scratch (not committed): embedding gather variants beside src's kernel, as a shared library
// that sweep_emb.py times next to torch.compile's peer in one process.
#include <cuda_runtime.h>
#include <cstdint>
#include <cstdio>

#include "ops/activation/activation_kernels.cuh"
#include "ops/embedding/embedding_kernels.cuh"

using namespace llmk;
using namespace llmk::row_copy;

enum class Load { plain, nc_na, l2_256 };
enum class Store { plain, cs };

template <Load L>
__device__ __forceinline__ uint4 load16(const uint4* p) {
  uint4 v;
  if constexpr (L == Load::plain) {
    v = *p;
  } else if constexpr (L == Load::nc_na) {
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
  } else {
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
  }
  return v;
}

template <Store S>
__device__ __forceinline__ void store16(uint4* p, uint4 v) {
  if constexpr (S == Store::plain) {
    *p = v;
  } else {
    __stcs(p, v);
  }
}

// src's copy_units for one tensor of 16-byte units, PACKS per thread, with load/store hints.
template <int THREADS, int PACKS, Load L, Store S>
__global__ void __launch_bounds__(THREADS)
    gather_kernel(const int64_t* ids, const uint4* table, uint4* y, FlatRows rows, int64_t vocab) {
  const uint32_t first = blockIdx.x * (THREADS * PACKS) + threadIdx.x;
  uint4 values[PACKS];
  uint4* to[PACKS];
  bool store[PACKS];
#pragma unroll
  for (int k = 0; k < PACKS; ++k) {
    const uint32_t g = first + k * THREADS;
    store[k] = false;
    if (g < rows.units) {
      const uint32_t r = rows.row_units(g);
      const uint32_t column = g - r * rows.row_units.divisor;
      const int64_t id = ids[r];
      to[k] = y + int64_t{r} * rows.row_units.divisor + column;
      store[k] = true;
      values[k] = (id < 0 || id >= vocab)
                      ? make_uint4(0x7FC07FC0u, 0x7FC07FC0u, 0x7FC07FC0u, 0x7FC07FC0u)
                      : load16<L>(table + id * rows.row_units.divisor + column);
    }
  }
#pragma unroll
  for (int k = 0; k < PACKS; ++k)
    if (store[k]) store16<S>(to[k], values[k]);
}

template <int THREADS, int PACKS, Load L, Store S>
static void launch(const int64_t* ids, const void* table, void* y, FlatRows rows, int64_t vocab,
                   cudaStream_t s) {
  const unsigned blocks = (rows.units + THREADS * PACKS - 1) / (THREADS * PACKS);
  gather_kernel<THREADS, PACKS, L, S><<<blocks, THREADS, 0, s>>>(
      ids, static_cast<const uint4*>(table), static_cast<uint4*>(y), rows, vocab);
}

static const char* kNames[] = {
    "base(src 256x2)", "t256p2",      "t128p2", "t256p2-cs", "t128p2-cs",
    "t256p2-ncna",     "t256p2-l2b",  "t256p4", "t512p1",    "t128p4",
    "t256p2-ncna-cs",  "t128p2-ncna", "t128p1",
};

extern "C" int emb_variants() { return sizeof(kNames) / sizeof(kNames[0]); }
extern "C" const char* emb_name(int v) { return kNames[v]; }

// bf16 table [vocab, hidden] contiguous, ids int64 contiguous, y [tokens, hidden] contiguous.
extern "C" int emb_run(int v, const void* ids, const void* table, void* y, int64_t tokens,
                       int64_t vocab, int64_t hidden, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  const int64_t units = hidden * 2 / 16;
  const FlatRows rows{0, static_cast<uint32_t>(tokens * units), FastDiv(units)};
  const auto i = static_cast<const int64_t*>(ids);
  switch (v) {
    case 0: {
      EmbeddingParams p{LLMK_DTYPE_BF16, 2, tokens, vocab,  hidden, ids,
                        LLMK_DTYPE_I64,  1, table,  hidden, y,      hidden};
      const int threads = 256;
      const unsigned blocks =
          (rows.units + threads * kPacks<uint4, 1> - 1) / (threads * kPacks<uint4, 1>);
      embedding_kernels::embedding_kernel<int64_t, uint4>
          <<<blocks, threads, 0, s>>>(p, rows, 0x7FC07FC0u);
      break;
    }
    case 1: launch<256, 2, Load::plain, Store::plain>(i, table, y, rows, vocab, s); break;
    case 2: launch<128, 2, Load::plain, Store::plain>(i, table, y, rows, vocab, s); break;
    case 3: launch<256, 2, Load::plain, Store::cs>(i, table, y, rows, vocab, s); break;
    case 4: launch<128, 2, Load::plain, Store::cs>(i, table, y, rows, vocab, s); break;
    case 5: launch<256, 2, Load::nc_na, Store::plain>(i, table, y, rows, vocab, s); break;
    case 6: launch<256, 2, Load::l2_256, Store::plain>(i, table, y, rows, vocab, s); break;
    case 7: launch<256, 4, Load::plain, Store::plain>(i, table, y, rows, vocab, s); break;
    case 8: launch<512, 1, Load::plain, Store::plain>(i, table, y, rows, vocab, s); break;
    case 9: launch<128, 4, Load::plain, Store::plain>(i, table, y, rows, vocab, s); break;
    case 10: launch<256, 2, Load::nc_na, Store::cs>(i, table, y, rows, vocab, s); break;
    case 11: launch<128, 2, Load::nc_na, Store::plain>(i, table, y, rows, vocab, s); break;
    case 12: launch<128, 1, Load::plain, Store::plain>(i, table, y, rows, vocab, s); break;
    default: return -1;
  }
  return static_cast<int>(cudaGetLastError());
}

// src's gated SiLU kernel on a contiguous [rows, 2n] bf16 x (gate | up) into y [rows, n].
extern "C" int silu_and_mul_run(const void* x, void* y, int64_t rows, int64_t n, void* stream) {
  using namespace llmk::activation_kernels;
  PackGrid g{};
  g.x = x;
  g.second = static_cast<const __nv_bfloat16*>(x) + n;
  g.y = y;
  g.row_of = FastDiv(static_cast<uint32_t>(n / 8));
  g.packs = static_cast<uint32_t>(rows * (n / 8));
  g.ndim = 1;
  for (int d = 0; d < kMaxRowDims; ++d) g.extent[d] = FastDiv(1);
  g.extent[0] = FastDiv(static_cast<uint32_t>(rows));
  g.x_stride[0] = g.up_stride[0] = 2 * n * 2;
  g.y_stride[0] = n * 2;
  const unsigned blocks = (g.packs + kBlockThreads - 1) / kBlockThreads;
  activation_kernel<__nv_bfloat16, 8, ActivationForm::gated, LLMK_ACTIVATION_SILU>
      <<<blocks, kBlockThreads, 0, static_cast<cudaStream_t>(stream)>>>(g);
  return static_cast<int>(cudaGetLastError());
}

// Gated SiLU variants on contiguous rows: THREADS per block, PACKS 16-byte packs per stream per
// thread, optional streaming stores.
template <int THREADS, int PACKS, bool CS>
__global__ void __launch_bounds__(THREADS)
    gated_silu(const __nv_bfloat16* x, __nv_bfloat16* y, uint32_t packs, FastDiv row_of, int n) {
  using P = Pack<__nv_bfloat16, 8>;
  const uint32_t first = blockIdx.x * (THREADS * PACKS) + threadIdx.x;
  P g[PACKS], u[PACKS];
  P* out[PACKS];
#pragma unroll
  for (int k = 0; k < PACKS; ++k) {
    const uint32_t f = first + k * THREADS;
    if (f >= packs) break;
    const uint32_t row = row_of(f), col = f - row * row_of.divisor;
    const P* xr = reinterpret_cast<const P*>(x + int64_t{row} * 2 * n);
    g[k] = xr[col];
    u[k] = xr[col + row_of.divisor];
    out[k] = reinterpret_cast<P*>(y + int64_t{row} * n) + col;
  }
#pragma unroll
  for (int k = 0; k < PACKS; ++k) {
    if (first + k * THREADS >= packs) break;
    float a[8], b[8];
    unpack(g[k], a);
    unpack(u[k], b);
#pragma unroll
    for (int i = 0; i < 8; ++i)
      a[i] = activation_kernels::activate<LLMK_ACTIVATION_SILU, false>(a[i]) * b[i];
    const P r = pack<__nv_bfloat16>(a);
    if constexpr (CS) {
      __stcs(reinterpret_cast<uint4*>(out[k]), *reinterpret_cast<const uint4*>(&r));
    } else {
      *out[k] = r;
    }
  }
}

static const char* kSiluNames[] = {"t128p1",    "t64p1",     "t256p1", "t128p2", "t256p2",
                                   "t128p1-cs", "t256p2-cs", "t512p1", "t64p2"};
extern "C" int silu_variants() { return sizeof(kSiluNames) / sizeof(kSiluNames[0]); }
extern "C" const char* silu_name(int v) { return kSiluNames[v]; }

template <int T, int P, bool CS>
static void go(const void* x, void* y, int64_t rows, int64_t n, cudaStream_t s) {
  const uint32_t packs = rows * (n / 8);
  gated_silu<T, P, CS><<<(packs + T * P - 1) / (T * P), T, 0, s>>>(
      static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), packs, FastDiv(n / 8),
      static_cast<int>(n));
}

extern "C" int silu_variant_run(int v, const void* x, void* y, int64_t rows, int64_t n,
                                void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (v) {
    case 0: go<128, 1, false>(x, y, rows, n, s); break;
    case 1: go<64, 1, false>(x, y, rows, n, s); break;
    case 2: go<256, 1, false>(x, y, rows, n, s); break;
    case 3: go<128, 2, false>(x, y, rows, n, s); break;
    case 4: go<256, 2, false>(x, y, rows, n, s); break;
    case 5: go<128, 1, true>(x, y, rows, n, s); break;
    case 6: go<256, 2, true>(x, y, rows, n, s); break;
    case 7: go<512, 1, false>(x, y, rows, n, s); break;
    case 8: go<64, 2, false>(x, y, rows, n, s); break;
    default: return -1;
  }
  return static_cast<int>(cudaGetLastError());
}
