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
  // has), on `stream` of the current device.
  void matmul(const char* op, const MatmulParams& p, cudaStream_t stream);

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

  // The cached algorithm for `key`, asking the heuristic on a miss; and the stream's workspace,
  // set aside on its first use. One lock for both.
  void lookup(const char* op, const PlanKey& key, cublasLtMatmulDesc_t desc,
              cublasLtMatrixLayout_t layouts[4], const int64_t alignments[4], cudaStream_t stream,
              cublasLtMatmulAlgo_t* algo, void** workspace);

  int device_;
  cublasLtHandle_t handle_ = nullptr;
  std::mutex mutex_;
  std::unordered_map<PlanKey, cublasLtMatmulAlgo_t, PlanKeyHash> plans_;
  std::unordered_map<cudaStream_t, void*> workspaces_;
  int64_t heuristic_queries_ = 0;
};

}  // namespace llmk
