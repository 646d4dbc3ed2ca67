// Dense layers through oneDNN on CPU. at::linear runs float32
// products in MKL, which on AMD processors takes its AVX2 path: measured here
// (2-core AMD EPYC with AVX-512), oneDNN's kernels, which libtorch also
// carries, compute the same float32 products at about twice the speed.
// Dense layers: oneDNN's linear with the bias and GELU fused
// (mkldnn::_linear_pointwise, the op torch.compile uses on CPU); under
// autograd a custom function computes the two backward products with oneDNN
// too. Elsewhere (CUDA, autocast, a libtorch without oneDNN or a CPU it
// refuses) it is at::linear and at::gelu. Attention is attention.cpp's.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>

#include "guarded.h"

#include <string>

namespace at::native {
// Exported by libtorch_cpu but not in its installed headers: result = beta *
// result + alpha * mat1 @ mat2, reading transposed operands in place. Weak, so
// a libtorch without it links and falls back to at::mm.
__attribute__((weak)) void mkldnn_matmul(const Tensor &mat1, const Tensor &mat2, const Tensor &result, float beta,
                                         float alpha);
} // namespace at::native

namespace {
// libtorch's and oneDNN's name of a GELU: act 1 exact (erf), 2 tanh.
std::string gelu_approximation(int act) { return act == 1 ? "none" : "tanh"; }

// act: 0 none, 1 exact GELU, 2 tanh GELU.
at::Tensor dnn_linear(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b, int act) {
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
  torch::jit::Stack stack{x,
                          w,
                          b.defined() ? c10::IValue(b) : c10::IValue(),
                          std::string(act == 0 ? "none" : "gelu"),
                          c10::List<std::optional<at::Scalar>>(),
                          act == 0 ? c10::IValue() : c10::IValue(gelu_approximation(act))};
  op.callBoxed(&stack);
  return stack[0].toTensor();
}

// Whether oneDNN computes float32 products here, found once on small tensors:
// a libtorch built without it, or a CPU it refuses (mkldnn_matmul wants
// AVX-512), leaves MKL.
bool probe(void (*f)()) {
  try {
    f();
    return true;
  } catch (const std::exception &) {
    return false;
  }
}

bool dnn_linear_ok() {
  static const bool ok = at::hasMKLDNN() && probe([] {
    at::NoGradGuard no_grad;
    dnn_linear(at::ones({2, 4}), at::ones({3, 4}), at::ones({3}), 1);
  });
  return ok;
}

bool dnn_matmul_ok() {
  static const bool ok = at::native::mkldnn_matmul != nullptr && at::hasMKLDNN() && probe([] {
    at::NoGradGuard no_grad;
    auto a = at::ones({2, 4});
    at::native::mkldnn_matmul(a, a.t(), at::empty({2, 2}), 0, 1);
  });
  return ok;
}

// a @ b into a new tensor, by oneDNN where it can.
at::Tensor dnn_mm(const at::Tensor &a, const at::Tensor &b) {
  if (!dnn_matmul_ok()) {
    return at::mm(a, b);
  }
  auto out = at::empty({a.size(0), b.size(1)}, a.options());
  at::native::mkldnn_matmul(a, b, out, 0, 1);
  return out;
}

// DnnLinear is x @ w.T + b whose forward and backward products run in
// oneDNN; b must be defined (autograd cannot take an undefined input).
struct DnnLinear : public torch::autograd::Function<DnnLinear> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &x, const at::Tensor &w,
                            const at::Tensor &b) {
    ctx->save_for_backward({x, w});
    return dnn_linear(x, w, b, 0);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1];
    auto g = grads[0].reshape({-1, w.size(0)}).contiguous();
    at::Tensor gx, gw, gb;
    if (ctx->needs_input_grad(0)) {
      gx = dnn_mm(g, w).view(x.sizes());
    }
    if (ctx->needs_input_grad(1)) {
      gw = dnn_mm(g.t(), x.reshape({-1, w.size(1)}));
    }
    if (ctx->needs_input_grad(2)) {
      gb = g.sum(0);
    }
    return {gx, gw, gb};
  }
};

// Whether x is a float32 CPU tensor outside CPU autocast: the inputs oneDNN
// takes here.
bool cpu_fp32(const at::Tensor &x) {
  return x.device().is_cpu() && x.scalar_type() == at::kFloat && !at::autocast::is_autocast_enabled(at::kCPU);
}

// y, then GELU as act says (0 none, 1 exact, 2 tanh).
at::Tensor activate(const at::Tensor &y, int act) { return act == 0 ? y : at::gelu(y, gelu_approximation(act)); }

at::Tensor linear(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b, int act) {
  if (!cpu_fp32(x) || w.scalar_type() != at::kFloat || !dnn_linear_ok()) {
    return activate(at::linear(x, w, b), act);
  }
  if (!at::GradMode::is_enabled() || !(x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad()))) {
    return dnn_linear(x, w, b, act); // GELU fused into the product
  }
  return activate(DnnLinear::apply(x, w, b.defined() ? b : at::zeros({w.size(0)}, w.options())), act);
}

} // namespace

extern "C" {
const char *rerank_onednn_error() { return last_error.c_str(); }

// *out = x @ w.T + b, then GELU as act says (0 none, 1 exact, 2 tanh); b may
// be null.
int rerank_linear(void *x, void *w, void *b, int act, void **out) {
  return guarded([&] {
    *out = new at::Tensor(linear(at_(x), at_(w), optional_(b), act));
  });
}

// Whether float32 products on CPU run in oneDNN: the dense layers' forward;
// and mkldnn_matmul, which computes their backward (else MKL).
void rerank_linear_backends(int *forward, int *backward) {
  *forward = dnn_linear_ok();
  *backward = dnn_matmul_ok();
}
}
