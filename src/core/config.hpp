// Config structs (llmk_rope_config, llmk_adamw_config, ...): the first field is struct_size, so a
// caller built against an older header, whose struct is shorter, keeps working. The library
// reads the caller's first struct_size bytes over its own defaults: fields the caller's header
// did not have yet take their default values.
#pragma once

#include <algorithm>
#include <cstring>

#include "error.hpp"

namespace llmk {

// `given`, read as above. `first_size` is the struct's size in its first released version; a
// smaller struct_size (an uninitialized struct, most likely) is refused.
template <class Config>
Config read_config(const char* op, const char* name, const Config* given, size_t first_size,
                   void (*init)(Config*)) {
  if (given == nullptr) fail(LLMK_ERROR_NULL_POINTER, "%s: %s is NULL", op, name);
  if (given->struct_size < first_size) {
    fail(LLMK_ERROR_INVALID_VALUE,
         "%s: %s->struct_size is %zu, less than the %zu of any version of it; fill it with its "
         "init function first",
         op, name, given->struct_size, first_size);
  }
  Config config;
  init(&config);
  std::memcpy(&config, given, std::min(given->struct_size, sizeof(Config)));
  config.struct_size = sizeof(Config);
  return config;
}

}  // namespace llmk
