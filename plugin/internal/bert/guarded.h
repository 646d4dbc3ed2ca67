// The C functions that cgo calls into libtorch must not let a C++ exception
// cross into Go: guarded runs their body and turns an exception into the
// return code 1, its message kept per thread in each file's last_error.
// Their tensor arguments arrive as the void pointers gotch passes: at_ and
// optional_ turn them back into tensors.
// Included by this package's and plugin/internal/train's C++ files (go build
// does not track a header of another package: after editing it, build with -a).
#pragma once

#include <ATen/core/Tensor.h>

#include <exception>
#include <string>

namespace {
thread_local std::string last_error;

inline at::Tensor &at_(void *p) { return *static_cast<at::Tensor *>(p); }

// An optional argument: null is an undefined tensor.
inline at::Tensor optional_(void *p) { return p == nullptr ? at::Tensor() : at_(p); }

template <typename F> int guarded(F f) {
  try {
    f();
    return 0;
  } catch (const std::exception &e) {
    last_error = e.what();
    return 1;
  }
}
} // namespace
