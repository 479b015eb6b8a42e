// Optimiser updates (csrc/optim/update.cpp): SGD (momentum, Nesterov), Adam (AMSGrad, AdamW's
// decoupled decay) and RMSprop (centred, momentum) as "multi-tensor" kernels: one call updates a
// list of tensors (a model's parameters and their optimiser state) in place, in one parallel
// pass over all their elements. Formulas are PyTorch's (torch.optim, dampening 0, maximize
// False), the same as python/convforge/optim.py, written per element in T (float or double):
//
//   SGD      d = g (+ wd*p);  momentum: buf = first_step ? d : mu*buf + d,
//            d = nesterov ? d + mu*buf : buf;                               p = p - lr*d
//   Adam     p = p*decay (AdamW, decay = 1 - lr*wd);  d = g (+ wd*p, coupled decay)
//            m = b1*m + (1-b1)*d;  v = b2*v + (1-b2)*d*d
//            amsgrad: v_max = max(v_max, v) (NaN propagates), used in place of v below
//            p = p - step_size*m / (sqrt(v)/sqrt_bc2 + eps)
//            with per-tensor scalars step_size = lr/(1 - b1^t), sqrt_bc2 = sqrt(1 - b2^t)
//   RMSprop  d = g (+ wd*p);  sq = rho*sq + (1-rho)*d*d
//            centered: ga = rho*ga + (1-rho)*d, den = sqrt(sq - ga*ga) + eps; else sqrt(sq) + eps
//            momentum: buf = mu*buf + d/den, p = p - lr*buf;  else p = p - lr*d/den
//
// Every scalar arrives as a double (computed in double by the caller: 1 - rho, lr/(1 - b1^t),
// ...) and is rounded once to T, so a float32 update is the float32 arithmetic NumPy does with
// the same Python-float scalars. (...) groups as written, left to right otherwise
// ((1-b1)*d*d = ((1-b1)*d)*d). Each element's update reads and writes only that element, so the
// results do not depend on the split into blocks or on the thread count.
// Arrays: tensor i has size[i] elements; p, g and its state arrays never overlap.
#pragma once
#include <cstdint>

namespace convforge {

// The tensors of one call: count tensors; param[i], grad[i] and each state list's entry i
// have size[i] elements. Unused state lists are nullptr.
template <typename T>
struct OptimTensors {
  int64_t count = 0;
  const int64_t* size = nullptr;
  T* const* param = nullptr;         // updated in place
  const T* const* grad = nullptr;
  T* const* state[3] = {nullptr, nullptr, nullptr};  // per optimiser, see below
};

// state[0]: momentum buffers (needed when momentum > 0), overwritten on the first step.
struct SgdConfig {
  double lr = 0, momentum = 0, weight_decay = 0;
  bool nesterov = false, first_step = false;
};
template <typename T>
void sgd_update(const OptimTensors<T>& t, const SgdConfig& c);

// state: m, v, v_max (nullptr without amsgrad). step_size and sqrt_bc2 hold one scalar per
// tensor (each parameter keeps its own step count). weight_decay is the coupled (L2) decay, 0
// for AdamW, whose decay multiplies p first (1 for Adam).
struct AdamConfig {
  double beta_1 = 0, beta_2 = 0, epsilon = 0, weight_decay = 0, decay = 1;
  const double* step_size = nullptr;
  const double* sqrt_bc2 = nullptr;
};
template <typename T>
void adam_update(const OptimTensors<T>& t, const AdamConfig& c);

// state: square_avg, grad_avg (centered only), momentum buffers (momentum > 0 only).
struct RmspropConfig {
  double lr = 0, rho = 0, epsilon = 0, momentum = 0, weight_decay = 0;
  bool centered = false;
};
template <typename T>
void rmsprop_update(const OptimTensors<T>& t, const RmspropConfig& c);

}  // namespace convforge
