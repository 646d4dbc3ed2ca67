// Mixed precision for libtorch, which gotch v0.9.1 does not wrap: autocast
// (per thread, per device type) and TF32 matrix products (process-wide).
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>

#include "guarded.h"

#include <cstring>
#include <string>

namespace {
c10::DeviceType device_type(int cuda) { return cuda ? at::kCUDA : at::kCPU; }
} // namespace

extern "C" {
const char *rerank_precision_error() { return last_error.c_str(); }

// Enters an autocast region on that device type: dtype 0 turns autocast off
// inside it (a float32 part of an autocast pass), 1 bf16, 2 fp16. *prev gets
// the state to give rerank_autocast_exit.
int rerank_autocast_enter(int cuda, int dtype, int *prev) {
  return guarded([&] {
    auto dt = device_type(cuda);
    *prev = !at::autocast::is_autocast_enabled(dt) ? 0
            : at::autocast::get_autocast_dtype(dt) == at::kBFloat16 ? 1 : 2;
    at::autocast::set_autocast_enabled(dt, dtype != 0);
    if (dtype != 0) {
      at::autocast::set_autocast_dtype(dt, dtype == 1 ? at::kBFloat16 : at::kHalf);
    }
    at::autocast::increment_nesting();
  });
}

// Leaves the region, restoring prev; the cache of cast weights is freed when
// the outermost region ends (as torch.autocast's __exit__ does).
int rerank_autocast_exit(int cuda, int prev) {
  return guarded([&] {
    auto dt = device_type(cuda);
    at::autocast::set_autocast_enabled(dt, prev != 0);
    if (prev != 0) {
      at::autocast::set_autocast_dtype(dt, prev == 1 ? at::kBFloat16 : at::kHalf);
    }
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
  });
}

int rerank_set_tf32(int on) {
  return guarded([&] {
    at::globalContext().setAllowTF32CuBLAS(on != 0);
    at::globalContext().setAllowTF32CuDNN(on != 0);
  });
}
}
