// The C++ runner of the shared test vectors (tests/vectors/README.md describes the format).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "llmk.h"

namespace llmk_test {

struct VectorCase {
  std::string name;
  std::map<std::string, std::string> fields;  // every key=value token of the manifest line

  const std::string& get(const std::string& key) const;
  bool has(const std::string& key) const { return fields.count(key) != 0; }
};

// The cases of tests/vectors/manifest.txt.
std::vector<VectorCase> load_manifest(const std::string& vectors_dir);

// Runs one case on `ctx` (CPU or CUDA; buffers come from llmk_malloc) and returns what went
// wrong, one line per problem; empty when the case passes. Outputs start as NaN, and every
// buffer element outside a view must come back unchanged.
std::vector<std::string> run_vector_case(llmk_context* ctx, const VectorCase& c,
                                         const std::string& vectors_dir);

// The case name as a test identifier: letters, digits and underscores.
std::string test_identifier(const VectorCase& c);

// The vectors directory: $LLMK_VECTORS_DIR, else the source tree's (compiled in).
std::string vectors_dir();

}  // namespace llmk_test
