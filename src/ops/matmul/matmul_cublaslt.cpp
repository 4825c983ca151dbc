// matmul on cuBLASLt. cuBLASLt is column-major and D here is row-major, so it computes
// D^T = B^T A^T: cuBLASLt's "A" is our B^T and its "B" our A^T, and a row-major matrix of ours is
// the same memory as its transpose in column-major order. The bias, one value per column of D,
// is then one per row of cuBLASLt's D, which is what its bias epilogue adds.
//
// Descriptors live on the stack (the *Init functions fill caller-owned storage), so a call
// allocates nothing on the host; the heuristic runs once per distinct problem.
#include <algorithm>
#include <functional>

#include "core/cuda_util.hpp"
#include "cublaslt.hpp"

namespace llmk {
namespace {

[[noreturn]] void fail_cublas(const char* op, const char* what, cublasStatus_t status) {
  fail(status == CUBLAS_STATUS_ALLOC_FAILED ? LLMK_ERROR_OUT_OF_MEMORY : LLMK_ERROR_CUDA,
       "%s: %s failed: %s (%d)", op, what, cublasLtGetStatusName(status), static_cast<int>(status));
}

void check_cublas(const char* op, cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) fail_cublas(op, what, status);
}

cudaDataType_t cuda_type(llmk_dtype dtype) {
  switch (dtype) {
    case LLMK_DTYPE_F32: return CUDA_R_32F;
    case LLMK_DTYPE_F16: return CUDA_R_16F;
    case LLMK_DTYPE_BF16: return CUDA_R_16BF;
    default: fail(LLMK_ERROR_INTERNAL, "matmul: dtype %d reached cuBLASLt", dtype);
  }
}

cublasLtEpilogue_t epilogue(llmk_activation activation, bool bias) {
  switch (activation) {
    case LLMK_ACTIVATION_IDENTITY: return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    case LLMK_ACTIVATION_RELU: return bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    case LLMK_ACTIVATION_GELU_TANH:
      return bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    default:
      fail(LLMK_ERROR_INTERNAL, "matmul: activation %d has no cuBLASLt epilogue", activation);
  }
}

// The largest power of two, up to 256, that divides the address: what the algorithm may assume.
int64_t alignment(const void* data) {
  const auto address = reinterpret_cast<uintptr_t>(data);
  return static_cast<int64_t>(std::min<uintptr_t>(address & (~address + 1), 256));
}

// cuBLASLt's view of one of our matrices as an operand of D^T = B^T A^T: the stored
// column-major matrix and whether cuBLASLt must transpose it.
struct Operand {
  cublasOperation_t op;
  uint64_t rows, cols;
};

// Our `rows` x `cols` matrix m, entering as m^T: row-major m is m^T in column-major order, a
// cols x rows layout taken as it is; column-major m is a rows x cols layout that cuBLASLt
// transposes.
Operand transposed_operand(const MatrixView& m, int64_t rows, int64_t cols) {
  if (m.row_major) return {CUBLAS_OP_N, static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)};
  return {CUBLAS_OP_T, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols)};
}

void init_layout(const char* op, cublasLtMatrixLayoutOpaque_t* layout, cudaDataType_t type,
                 uint64_t rows, uint64_t cols, int64_t ld, int64_t batch, int64_t batch_stride) {
  check_cublas(op, cublasLtMatrixLayoutInit(layout, type, rows, cols, ld),
               "cublasLtMatrixLayoutInit");
  if (batch == 1) return;
  const int32_t count = static_cast<int32_t>(batch);
  check_cublas(op,
               cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                sizeof count),
               "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)");
  check_cublas(op,
               cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                &batch_stride, sizeof batch_stride),
               "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)");
}

}  // namespace

size_t Cublaslt::PlanKeyHash::operator()(const PlanKey& key) const {
  size_t hash = 0;
  for (int64_t v : key) hash = hash * 1000003u ^ std::hash<int64_t>{}(v);
  return hash;
}

Cublaslt::Cublaslt(int device) : device_(device) {
  check_cublas("context_create", cublasLtCreate(&handle_), "cublasLtCreate");
}

Cublaslt::~Cublaslt() {
  DeviceGuard guard(device_);
  for (auto& [stream, workspace] : workspaces_) cudaFree(workspace);
  cublasLtDestroy(handle_);
}

Cublaslt::Stats Cublaslt::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  return {static_cast<int64_t>(plans_.size()), heuristic_queries_,
          static_cast<int64_t>(workspaces_.size())};
}

void Cublaslt::lookup(const char* op, const PlanKey& key, cublasLtMatmulDesc_t desc,
                      cublasLtMatrixLayout_t layouts[4], const int64_t alignments[4],
                      cudaStream_t stream, cublasLtMatmulAlgo_t* algo, void** workspace) {
  std::lock_guard<std::mutex> lock(mutex_);

  auto found_workspace = workspaces_.find(stream);
  if (found_workspace == workspaces_.end()) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    check_cuda(cudaStreamIsCapturing(stream, &capture), "matmul: cudaStreamIsCapturing");
    if (capture != cudaStreamCaptureStatusNone) {
      fail(LLMK_ERROR_UNSUPPORTED,
           "%s: stream %p is being captured and has no matmul workspace yet; run one matmul on "
           "it before capturing",
           op, static_cast<void*>(stream));
    }
    void* memory = nullptr;
    check_cuda(cudaMalloc(&memory, kWorkspaceBytes),
               "matmul: setting aside the stream's workspace");
    found_workspace = workspaces_.emplace(stream, memory).first;
  }
  *workspace = found_workspace->second;

  auto found_plan = plans_.find(key);
  if (found_plan == plans_.end()) {
    cublasLtMatmulPreferenceOpaque_t preference;
    check_cublas(op, cublasLtMatmulPreferenceInit(&preference), "cublasLtMatmulPreferenceInit");
    const uint64_t workspace_bytes = kWorkspaceBytes;
    check_cublas(
        op,
        cublasLtMatmulPreferenceSetAttribute(&preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &workspace_bytes, sizeof workspace_bytes),
        "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
    const cublasLtMatmulPreferenceAttributes_t alignment_attributes[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; ++i) {
      const uint32_t bytes = static_cast<uint32_t>(alignments[i]);
      check_cublas(op,
                   cublasLtMatmulPreferenceSetAttribute(&preference, alignment_attributes[i],
                                                        &bytes, sizeof bytes),
                   "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
    }
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    ++heuristic_queries_;
    const cublasStatus_t status =
        cublasLtMatmulAlgoGetHeuristic(handle_, desc, layouts[0], layouts[1], layouts[2],
                                       layouts[3], &preference, 1, &result, &found);
    if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found == 0)) {
      fail(LLMK_ERROR_UNSUPPORTED, "%s: cuBLASLt has no algorithm for this problem", op);
    }
    check_cublas(op, status, "cublasLtMatmulAlgoGetHeuristic");
    found_plan = plans_.emplace(key, result.algo).first;
  }
  *algo = found_plan->second;
}

void Cublaslt::matmul(const char* op, const MatmulParams& p, cudaStream_t stream) {
  const cudaDataType_t type = cuda_type(p.dtype);
  const bool tf32 = p.dtype == LLMK_DTYPE_F32 && p.allow_tf32;
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;

  // cuBLASLt's A is our B^T (n x k), its B our A^T (k x m), its C and D our C^T and D^T (n x m).
  const Operand lt_a = transposed_operand(p.b, p.k, p.n);
  const Operand lt_b = transposed_operand(p.a, p.m, p.k);
  // With beta == 0, C is not read; cuBLASLt still wants a pointer and a layout: D's.
  const MatrixView& c = p.c.data != nullptr ? p.c : p.d;

  cublasLtMatmulDescOpaque_t desc;
  check_cublas(op, cublasLtMatmulDescInit(&desc, compute, CUDA_R_32F), "cublasLtMatmulDescInit");
  const auto set_desc = [&](cublasLtMatmulDescAttributes_t attribute, const void* value,
                            size_t size) {
    check_cublas(op, cublasLtMatmulDescSetAttribute(&desc, attribute, value, size),
                 "cublasLtMatmulDescSetAttribute");
  };
  set_desc(CUBLASLT_MATMUL_DESC_TRANSA, &lt_a.op, sizeof lt_a.op);
  set_desc(CUBLASLT_MATMUL_DESC_TRANSB, &lt_b.op, sizeof lt_b.op);
  const cublasLtEpilogue_t lt_epilogue = epilogue(p.activation, p.bias != nullptr);
  set_desc(CUBLASLT_MATMUL_DESC_EPILOGUE, &lt_epilogue, sizeof lt_epilogue);
  if (p.bias != nullptr) set_desc(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof p.bias);

  cublasLtMatrixLayoutOpaque_t layout_storage[4];
  init_layout(op, &layout_storage[0], type, lt_a.rows, lt_a.cols, p.b.ld, p.batch,
              p.b.batch_stride);
  init_layout(op, &layout_storage[1], type, lt_b.rows, lt_b.cols, p.a.ld, p.batch,
              p.a.batch_stride);
  init_layout(op, &layout_storage[2], type, p.n, p.m, c.ld, p.batch, c.batch_stride);
  init_layout(op, &layout_storage[3], type, p.n, p.m, p.d.ld, p.batch, p.d.batch_stride);
  cublasLtMatrixLayout_t layouts[4] = {&layout_storage[0], &layout_storage[1], &layout_storage[2],
                                       &layout_storage[3]};

  const int64_t alignments[4] = {alignment(p.b.data), alignment(p.a.data), alignment(c.data),
                                 alignment(p.d.data)};
  const PlanKey key = {p.dtype, tf32, lt_a.op, lt_b.op, p.m, p.n, p.k, p.batch, p.a.ld, p.b.ld,
                       c.ld, p.d.ld, p.a.batch_stride, p.b.batch_stride, c.batch_stride,
                       p.d.batch_stride, lt_epilogue, alignments[0] | alignments[1] << 16,
                       alignments[2] | alignments[3] << 16,
                       // The bias's alignment too: the algorithm was chosen with its pointer.
                       p.bias != nullptr ? alignment(p.bias) : 0};

  cublasLtMatmulAlgo_t algo;
  void* workspace = nullptr;
  lookup(op, key, &desc, layouts, alignments, stream, &algo, &workspace);

  const cublasStatus_t status =
      cublasLtMatmul(handle_, &desc, &p.alpha, p.b.data, layouts[0], p.a.data, layouts[1], &p.beta,
                     c.data, layouts[2], const_cast<void*>(p.d.data), layouts[3], &algo, workspace,
                     kWorkspaceBytes, stream);
  if (status != CUBLAS_STATUS_SUCCESS) {
    // A sticky CUDA error behind the failure is the more useful report.
    const cudaError_t error = cudaGetLastError();
    if (error != cudaSuccess) fail_cuda(op, error);
    fail_cublas(op, "cublasLtMatmul", status);
  }
}

}  // namespace llmk
