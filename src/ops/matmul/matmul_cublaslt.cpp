// matmul on cuBLASLt. cuBLASLt is column-major and D here is row-major, so it computes
// D^T = B^T A^T: cuBLASLt's "A" is our B^T and its "B" our A^T, and a row-major matrix of ours is
// the same memory as its transpose in column-major order. The bias, one value per column of D,
// is then one per row of cuBLASLt's D, which is what its bias epilogue adds.
//
// Descriptors live on the stack (the *Init functions fill caller-owned storage), so a call
// allocates nothing on the host; the heuristic runs once per distinct problem.
//
// Tuning (llmk_matmul_tune) replaces the heuristic's first answer with the fastest of its first
// few, timed on the caller's stream. The candidates are timed round-robin, a few calls per trial,
// so that a clock or temperature drift during the tuning weighs on all of them alike.
#include <algorithm>
#include <array>
#include <functional>
#include <optional>

#include "core/cuda_util.hpp"
#include "core/numeric.hpp"
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

bool is_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  check_cuda(cudaStreamIsCapturing(stream, &capture), "matmul: cudaStreamIsCapturing");
  return capture != cudaStreamCaptureStatusNone;
}

// A CUDA event pair timing calls on one stream, destroyed with the object.
class StreamTimer {
 public:
  StreamTimer(const char* op, cudaStream_t stream) : stream_(stream) {
    check_cuda(cudaEventCreate(&start_), "matmul_tune: cudaEventCreate");
    const cudaError_t error = cudaEventCreate(&stop_);
    if (error != cudaSuccess) {
      cudaEventDestroy(start_);
      fail_cuda(op, error);
    }
  }
  ~StreamTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  StreamTimer(const StreamTimer&) = delete;
  StreamTimer& operator=(const StreamTimer&) = delete;

  void start() { check_cuda(cudaEventRecord(start_, stream_), "matmul_tune: cudaEventRecord"); }
  float stop_ms() {
    check_cuda(cudaEventRecord(stop_, stream_), "matmul_tune: cudaEventRecord");
    check_cuda(cudaEventSynchronize(stop_), "matmul_tune: cudaEventSynchronize");
    float ms = 0.0f;
    check_cuda(cudaEventElapsedTime(&ms, start_, stop_), "matmul_tune: cudaEventElapsedTime");
    return ms;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Device memory for the duration of a tuning, freed with the object.
class ScratchBuffer {
 public:
  explicit ScratchBuffer(size_t bytes) {
    check_cuda(cudaMalloc(&data_, bytes), "matmul_tune: scratch for the candidates' D");
  }
  ~ScratchBuffer() { cudaFree(data_); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
};

}  // namespace

void refuse_tuning_while_capturing(const char* op, void* stream) {
  if (is_capturing(static_cast<cudaStream_t>(stream))) {
    fail(LLMK_ERROR_UNSUPPORTED,
         "%s: stream %p is being captured; tuning times calls and synchronizes the stream, so "
         "tune before capturing",
         op, stream);
  }
}

struct Cublaslt::Problem {
  Problem(const char* op, const MatmulParams& p);
  Problem(const Problem&) = delete;  // the layouts point into the object
  Problem& operator=(const Problem&) = delete;

  // cuBLASLt's functions take the descriptor as non-const; none of those called here changes it.
  mutable cublasLtMatmulDescOpaque_t desc;
  cublasLtMatrixLayoutOpaque_t layout_storage[4];
  cublasLtMatrixLayout_t layouts[4];  // cuBLASLt's A, B, C and D
  int64_t alignments[4];
  PlanKey key;
  const void *a, *b, *c, *d;  // cuBLASLt's, which are our B, A, C and D
  float alpha, beta;
  // Whether D is C and C is read: computing D again from it would read the last result.
  bool d_is_read;
  size_t d_span_bytes;  // from D's first element to its last
};

Cublaslt::Problem::Problem(const char* op, const MatmulParams& p) {
  const cudaDataType_t type = cuda_type(p.dtype);
  const bool tf32 = p.dtype == LLMK_DTYPE_F32 && p.allow_tf32;
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;

  // cuBLASLt's A is our B^T (n x k), its B our A^T (k x m), its C and D our C^T and D^T (n x m).
  const Operand lt_a = transposed_operand(p.b, p.k, p.n);
  const Operand lt_b = transposed_operand(p.a, p.m, p.k);
  // With beta == 0, C is not read; cuBLASLt still wants a pointer and a layout: D's.
  const MatrixView& lt_c = p.c.data != nullptr ? p.c : p.d;

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

  init_layout(op, &layout_storage[0], type, lt_a.rows, lt_a.cols, p.b.ld, p.batch,
              p.b.batch_stride);
  init_layout(op, &layout_storage[1], type, lt_b.rows, lt_b.cols, p.a.ld, p.batch,
              p.a.batch_stride);
  init_layout(op, &layout_storage[2], type, p.n, p.m, lt_c.ld, p.batch, lt_c.batch_stride);
  init_layout(op, &layout_storage[3], type, p.n, p.m, p.d.ld, p.batch, p.d.batch_stride);
  for (int i = 0; i < 4; ++i) layouts[i] = &layout_storage[i];

  a = p.b.data;
  b = p.a.data;
  c = lt_c.data;
  d = p.d.data;
  alpha = p.alpha;
  beta = p.beta;
  d_is_read = p.c.data == p.d.data;
  d_span_bytes = static_cast<size_t>((p.batch - 1) * p.d.batch_stride + (p.m - 1) * p.d.ld + p.n) *
                 static_cast<size_t>(dtype_bits(p.dtype) / 8);

  alignments[0] = alignment(a);
  alignments[1] = alignment(b);
  alignments[2] = alignment(c);
  alignments[3] = alignment(d);
  key = {p.dtype, tf32, lt_a.op, lt_b.op, p.m, p.n, p.k, p.batch, p.a.ld, p.b.ld, lt_c.ld, p.d.ld,
         p.a.batch_stride, p.b.batch_stride, lt_c.batch_stride, p.d.batch_stride, lt_epilogue,
         alignments[0] | alignments[1] << 16, alignments[2] | alignments[3] << 16,
         // The bias's alignment too: the algorithm was chosen with its pointer.
         p.bias != nullptr ? alignment(p.bias) : 0};
}

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

void* Cublaslt::workspace_locked(const char* op, cudaStream_t stream) {
  auto found = workspaces_.find(stream);
  if (found == workspaces_.end()) {
    if (is_capturing(stream)) {
      fail(LLMK_ERROR_UNSUPPORTED,
           "%s: stream %p is being captured and has no matmul workspace yet; run one matmul on "
           "it before capturing",
           op, static_cast<void*>(stream));
    }
    void* memory = nullptr;
    check_cuda(cudaMalloc(&memory, kWorkspaceBytes),
               "matmul: setting aside the stream's workspace");
    found = workspaces_.emplace(stream, memory).first;
  }
  return found->second;
}

int Cublaslt::query_heuristic_locked(const char* op, const Problem& problem, int count,
                                     cublasLtMatmulHeuristicResult_t* results) {
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
    const uint32_t bytes = static_cast<uint32_t>(problem.alignments[i]);
    check_cublas(op,
                 cublasLtMatmulPreferenceSetAttribute(&preference, alignment_attributes[i], &bytes,
                                                      sizeof bytes),
                 "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
  }
  int found = 0;
  ++heuristic_queries_;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      handle_, &problem.desc, problem.layouts[0], problem.layouts[1], problem.layouts[2],
      problem.layouts[3], &preference, count, results, &found);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found == 0)) {
    fail(LLMK_ERROR_UNSUPPORTED, "%s: cuBLASLt has no algorithm for this problem", op);
  }
  check_cublas(op, status, "cublasLtMatmulAlgoGetHeuristic");
  return found;
}

void Cublaslt::lookup(const char* op, const Problem& problem, cudaStream_t stream,
                      cublasLtMatmulAlgo_t* algo, void** workspace) {
  std::lock_guard<std::mutex> lock(mutex_);
  *workspace = workspace_locked(op, stream);
  auto found = plans_.find(problem.key);
  if (found == plans_.end()) {
    cublasLtMatmulHeuristicResult_t result;
    query_heuristic_locked(op, problem, 1, &result);
    found = plans_.emplace(problem.key, result.algo).first;
  }
  *algo = found->second;
}

cublasStatus_t Cublaslt::run(const Problem& problem, const cublasLtMatmulAlgo_t& algo, void* d,
                             void* workspace, cudaStream_t stream) {
  return cublasLtMatmul(handle_, &problem.desc, &problem.alpha, problem.a, problem.layouts[0],
                        problem.b, problem.layouts[1], &problem.beta, problem.c, problem.layouts[2],
                        d, problem.layouts[3], &algo, workspace, kWorkspaceBytes, stream);
}

void Cublaslt::tune(const char* op, const Problem& problem, cudaStream_t stream,
                    MatmulTuning* tuning) {
  // Calls per timed trial and trials per candidate: enough that a few-microsecond GEMM is not
  // lost in the events' resolution, few enough that a 1 ms GEMM tunes in a quarter second.
  constexpr int kCallsPerTrial = 5, kTrials = 5;
  // Another algorithm replaces the heuristic's first only when this much faster. On the H200,
  // tunings of one shape disagree by 1-2% where no candidate is clearly better (the clock drifts
  // with power and heat), and the wins that held in an A/B were 2.5-7% (bench/NOTES.md).
  constexpr float kMinGain = 0.02f;

  refuse_tuning_while_capturing(op, stream);

  cublasLtMatmulHeuristicResult_t results[kTuningCandidates];
  int found = 0;
  void* workspace = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    workspace = workspace_locked(op, stream);
    found = query_heuristic_locked(op, problem, kTuningCandidates, results);
  }

  std::optional<ScratchBuffer> scratch;
  void* d = const_cast<void*>(problem.d);
  if (problem.d_is_read) d = scratch.emplace(problem.d_span_bytes).data();

  // The candidates that run, in the heuristic's order; the first call of each is its warm-up.
  // (Fixed arrays: libstdc++'s std:: templates would be exported from libllmk once instantiated.)
  std::array<int, kTuningCandidates> ranks;
  int count = 0;
  for (int rank = 0; rank < found; ++rank) {
    if (results[rank].state != CUBLAS_STATUS_SUCCESS) continue;
    if (run(problem, results[rank].algo, d, workspace, stream) == CUBLAS_STATUS_SUCCESS) {
      ranks[count++] = rank;
    }
  }
  check_cuda(cudaStreamSynchronize(stream), "matmul_tune: the candidates' first calls");
  if (count == 0) fail(LLMK_ERROR_UNSUPPORTED, "%s: no cuBLASLt algorithm ran", op);

  StreamTimer timer(op, stream);
  std::array<std::array<float, kTrials>, kTuningCandidates> trial_us;
  for (int trial = 0; trial < kTrials; ++trial) {
    for (int i = 0; i < count; ++i) {
      timer.start();
      for (int call = 0; call < kCallsPerTrial; ++call) {
        const cublasStatus_t status = run(problem, results[ranks[i]].algo, d, workspace, stream);
        if (status != CUBLAS_STATUS_SUCCESS) fail_cublas(op, "cublasLtMatmul", status);
      }
      trial_us[i][trial] = timer.stop_ms() * 1000.0f / kCallsPerTrial;
    }
  }
  std::array<float, kTuningCandidates> us;
  int best = 0;
  for (int i = 0; i < count; ++i) {
    std::sort(trial_us[i].begin(), trial_us[i].end());
    us[i] = trial_us[i][kTrials / 2];
    if (us[i] < us[best]) best = i;
  }
  if (us[best] > us[0] * (1.0f - kMinGain)) best = 0;

  {
    std::lock_guard<std::mutex> lock(mutex_);
    plans_.insert_or_assign(problem.key, results[ranks[best]].algo);
  }
  tuning->candidates = count;
  tuning->chosen = ranks[best];
  tuning->first_us = us[0];
  tuning->chosen_us = us[best];
}

void Cublaslt::matmul(const char* op, const MatmulParams& p, cudaStream_t stream,
                      MatmulTuning* tuning) {
  const Problem problem(op, p);
  if (tuning != nullptr) tune(op, problem, stream, tuning);

  cublasLtMatmulAlgo_t algo;
  void* workspace = nullptr;
  lookup(op, problem, stream, &algo, &workspace);
  const cublasStatus_t status = run(problem, algo, const_cast<void*>(problem.d), workspace, stream);
  if (status != CUBLAS_STATUS_SUCCESS) {
    // A sticky CUDA error behind the failure is the more useful report.
    const cudaError_t error = cudaGetLastError();
    if (error != cudaSuccess) fail_cuda(op, error);
    fail_cublas(op, "cublasLtMatmul", status);
  }
}

}  // namespace llmk
