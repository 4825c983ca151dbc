// Errors inside llmk: a failed check formats its message into the calling thread's error buffer
// and throws Failure; api_call() at the C boundary turns that into the returned llmk_status.
// Exceptions never leave the library, and the success path pays for none of this.
#pragma once

#include <exception>
#include <new>

#include "llmk.h"

namespace llmk {

struct Failure final : std::exception {
  explicit Failure(llmk_status s) : status(s) {}
  llmk_status status;
};

// Records "<message>" as the calling thread's error detail and throws Failure(status).
[[noreturn]] void fail(llmk_status status, const char* format, ...)
    __attribute__((format(printf, 2, 3)));

void clear_error();
void set_error(const char* message);

// The body of every exported function that can fail.
template <class Body>
llmk_status api_call(Body&& body) noexcept {
  clear_error();
  try {
    body();
    return LLMK_SUCCESS;
  } catch (const Failure& failure) {
    return failure.status;
  } catch (const std::bad_alloc&) {
    set_error("out of host memory");
    return LLMK_ERROR_OUT_OF_MEMORY;
  } catch (...) {
    set_error("unexpected internal exception");
    return LLMK_ERROR_INTERNAL;
  }
}

}  // namespace llmk
