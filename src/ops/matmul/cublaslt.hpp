// The cuBLASLt engine a CUDA context owns: the handle, the heuristic's answers cached per problem,
// and one workspace per stream. Every member function may be called from several threads at once.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "matmul.hpp"

namespace llmk {

class Cublaslt {
 public:
  // cuBLASLt's workspace per stream: enough for every algorithm the heuristic offers on Hopper.
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;

  explicit Cublaslt(int device);  // the device must be current
  ~Cublaslt();
  Cublaslt(const Cublaslt&) = delete;
  Cublaslt& operator=(const Cublaslt&) = delete;

  // D = a(alpha A B + beta C + bias) for a ReLU, GELU_TANH or identity a (the epilogues cuBLASLt
  // has), on `stream` of the current device. With `tuning`, first times the heuristic's
  // candidates and pins the fastest for this problem (llmk_matmul_tune).
  void matmul(const char* op, const MatmulParams& p, cudaStream_t stream,
              MatmulTuning* tuning = nullptr);

  // How many algorithms a tuning asks the heuristic for. Eight covered the best one at every
  // Llama shape measured on the H200 (bench/NOTES.md, issue 4, eighth pass).
  static constexpr int kTuningCandidates = 8;

  struct Stats {
    int64_t plans, heuristic_queries, workspaces;
  };
  Stats stats();

 private:
  // Every number that decides the heuristic's answer: shapes, layouts, dtype, epilogue and the
  // pointers' alignments.
  using PlanKey = std::array<int64_t, 20>;
  struct PlanKeyHash {
    size_t operator()(const PlanKey& key) const;
  };

  // One problem as cuBLASLt takes it: descriptors, operands and the key of its plan.
  struct Problem;

  // The stream's workspace, set aside on its first use; the caller holds mutex_.
  void* workspace_locked(const char* op, cudaStream_t stream);

  // Up to `count` algorithms from the heuristic, best first; fails with LLMK_ERROR_UNSUPPORTED
  // when it has none. The caller holds mutex_.
  int query_heuristic_locked(const char* op, const Problem& problem, int count,
                             cublasLtMatmulHeuristicResult_t* results);

  // The cached algorithm for the problem, asking the heuristic on a miss; and the stream's
  // workspace. One lock for both.
  void lookup(const char* op, const Problem& problem, cudaStream_t stream,
              cublasLtMatmulAlgo_t* algo, void** workspace);

  // Times the heuristic's candidates on `stream` and pins the fastest in plans_.
  void tune(const char* op, const Problem& problem, cudaStream_t stream, MatmulTuning* tuning);

  cublasStatus_t run(const Problem& problem, const cublasLtMatmulAlgo_t& algo, void* d,
                     void* workspace, cudaStream_t stream);

  int device_;
  cublasLtHandle_t handle_ = nullptr;
  std::mutex mutex_;
  std::unordered_map<PlanKey, cublasLtMatmulAlgo_t, PlanKeyHash> plans_;
  std::unordered_map<cudaStream_t, void*> workspaces_;
  int64_t heuristic_queries_ = 0;
};

}  // namespace llmk
