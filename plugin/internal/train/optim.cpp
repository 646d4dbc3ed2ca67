// The trainer's update, which gotch v0.9.1 does not wrap: gradient clipping as
// torch.nn.utils.clip_grad_norm_ and AdamW as torch.optim.AdamW(fused=True)
// (libtorch's _fused_adamw_: one pass over each tensor). gotch's AdamW is
// libtorch's C++ optimizer, whose moments cannot be read or restored.
// Parameters and moments come as arrays of torch::Tensor pointers (gotch's
// Ctensor).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "../bert/guarded.h"

#include <cmath>
#include <string>
#include <vector>

extern "C" {
const char *rerank_optim_error() { return last_error.c_str(); }

// Drops every parameter's gradient (zero_grad with set_to_none).
int rerank_zero_grad(void **params, int n) {
  return guarded([&] {
    for (int i = 0; i < n; i++) {
      at::Tensor &g = at_(params[i]).mutable_grad();
      if (g.defined()) {
        g.reset();
      }
    }
  });
}

// Writes the global L2 norm of the gradients to *norm and, when it is finite
// and above max_norm, scales them by max_norm / (norm + 1e-6). *found is the
// number of parameters with a gradient.
int rerank_clip_grad_norm(void **params, int n, double max_norm, double *norm, int *found) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> grads;
    for (int i = 0; i < n; i++) {
      const at::Tensor &g = at_(params[i]).grad();
      if (g.defined()) {
        grads.push_back(g);
      }
    }
    *found = static_cast<int>(grads.size());
    *norm = 0;
    if (grads.empty()) {
      return;
    }
    auto norms = at::_foreach_norm(grads, 2);
    *norm = at::linalg_vector_norm(at::stack(norms), 2).item<double>();
    double coef = max_norm / (*norm + 1e-6);
    if (std::isfinite(*norm) && coef < 1) {
      at::_foreach_mul_(grads, coef);
    }
  });
}

// Applies update number step (1-based) of AdamW with learning rate lr and
// this weight decay to the parameters that have a gradient.
int rerank_adamw_step(void **params, void **exp_avg, void **exp_avg_sq, int n, double lr, double beta1, double beta2,
                      double eps, double weight_decay, double step) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> p, g, m, v, steps;
    for (int i = 0; i < n; i++) {
      const at::Tensor &grad = at_(params[i]).grad();
      if (!grad.defined()) {
        continue;
      }
      p.push_back(at_(params[i]));
      g.push_back(grad);
      m.push_back(at_(exp_avg[i]));
      v.push_back(at_(exp_avg_sq[i]));
      steps.push_back(at::scalar_tensor(step, at::TensorOptions().dtype(at::kFloat)).to(p.back().device()));
    }
    if (!p.empty()) {
      at::_fused_adamw_(p, g, m, v, {}, steps, lr, beta1, beta2, weight_decay, eps, false, false);
    }
  });
}
}
