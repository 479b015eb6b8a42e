// Optimiser updates, multi-tensor (contracts and formulas in convforge/optim.hpp): the elements
// of all tensors of a call are cut into blocks of at most kBlock elements of one tensor, and
// one OpenMP loop with a static schedule runs over the blocks (in turn below 2*kBlock elements
// in all, or on one thread), each block updated by the block kernel of current_isa()
// (update_kernel.inc) chosen for the call's options. Parameters and state are updated in
// place. Each element's update touches only that element, and every ISA's copy rounds the same
// operations in the same order, so results are bit-identical for any thread count and ISA.
// Scalars are rounded to T once, here.
#define CF_ISA baseline
#include "update_kernel.inc"

#include <initializer_list>
#include <vector>

#include "convforge/checked.hpp"
#include "convforge/cpu.hpp"
#include "convforge/optim.hpp"

namespace convforge {
namespace {

constexpr int64_t kBlock = 1 << 15;  // elements per block

struct Block {
  int64_t tensor, begin, end;
};

// body(tensor, begin, end) for every block of every tensor, in parallel over blocks (static
// schedule: a fixed partition for a given thread count).
template <typename T, typename F>
void each_block(const OptimTensors<T>& t, const F& body) {
  std::vector<Block> blocks;
  int64_t total = 0;
  for (int64_t i = 0; i < t.count; ++i) {
    for (int64_t b = 0; b < t.size[i]; b += kBlock)
      blocks.push_back({i, b, t.size[i] - b < kBlock ? t.size[i] : b + kBlock});
    total = add_checked(total, t.size[i], "elements of all tensors");
  }
  const int64_t nb = static_cast<int64_t>(blocks.size());
  if (total < 2 * kBlock || max_threads() <= 1) {
    for (const Block& b : blocks) body(b.tensor, b.begin, b.end);
    return;
  }
CF_OMP_FOR(schedule(static))
  for (int64_t k = 0; k < nb; ++k) body(blocks[k].tensor, blocks[k].begin, blocks[k].end);
}

// The index of a set of options in a kernel table: flag j is bit j.
size_t bits(std::initializer_list<bool> flags) {
  size_t k = 0, b = 1;
  for (bool f : flags) {
    if (f) k |= b;
    b <<= 1;
  }
  return k;
}

// entry i of an optional state list, at offset b (nullptr for an unused list)
template <typename T>
T* at(T* const* list, int64_t i, int64_t b) {
  return list ? list[i] + b : nullptr;
}

template <typename T>
optim_detail::Kernels<T> kernels() {
  namespace od = optim_detail;
  return select_isa(&od::baseline::kernels<T>, &od::avx2::kernels<T>, &od::avx512::kernels<T>);
}

}  // namespace

template <typename T>
void sgd_update(const OptimTensors<T>& t, const SgdConfig& c) {
  const T lr = static_cast<T>(c.lr), wd = static_cast<T>(c.weight_decay),
          mu = static_cast<T>(c.momentum);
  const auto block = kernels<T>().sgd[bits(
      {c.weight_decay != 0, c.momentum != 0, c.nesterov, c.first_step})];
  each_block(t, [&](int64_t i, int64_t b, int64_t e) {
    block(t.param[i] + b, t.grad[i] + b, at(t.state[0], i, b), e - b, lr, wd, mu);
  });
}

template <typename T>
void adam_update(const OptimTensors<T>& t, const AdamConfig& c) {
  optim_detail::AdamScalars<T> s{};
  s.b1 = static_cast<T>(c.beta_1);
  s.c1 = static_cast<T>(1.0 - c.beta_1);
  s.b2 = static_cast<T>(c.beta_2);
  s.c2 = static_cast<T>(1.0 - c.beta_2);
  s.eps = static_cast<T>(c.epsilon);
  s.wd = static_cast<T>(c.weight_decay);
  s.decay = static_cast<T>(c.decay);
  const auto block = kernels<T>().adam[bits(
      {c.weight_decay != 0, c.decay != 1, t.state[2] != nullptr})];
  each_block(t, [&](int64_t i, int64_t b, int64_t e) {
    optim_detail::AdamScalars<T> si = s;
    si.step_size = static_cast<T>(c.step_size[i]);
    si.sqrt_bc2 = static_cast<T>(c.sqrt_bc2[i]);
    block(t.param[i] + b, t.grad[i] + b, t.state[0][i] + b, t.state[1][i] + b,
          at(t.state[2], i, b), e - b, si);
  });
}

template <typename T>
void rmsprop_update(const OptimTensors<T>& t, const RmspropConfig& c) {
  const T lr = static_cast<T>(c.lr), rho = static_cast<T>(c.rho),
          one_minus_rho = static_cast<T>(1.0 - c.rho), eps = static_cast<T>(c.epsilon),
          mu = static_cast<T>(c.momentum), wd = static_cast<T>(c.weight_decay);
  const auto block = kernels<T>().rmsprop[bits(
      {c.weight_decay != 0, c.centered, c.momentum != 0})];
  each_block(t, [&](int64_t i, int64_t b, int64_t e) {
    block(t.param[i] + b, t.grad[i] + b, t.state[0][i] + b, at(t.state[1], i, b),
          at(t.state[2], i, b), e - b, lr, rho, one_minus_rho, eps, mu, wd);
  });
}

template void sgd_update<float>(const OptimTensors<float>&, const SgdConfig&);
template void sgd_update<double>(const OptimTensors<double>&, const SgdConfig&);
template void adam_update<float>(const OptimTensors<float>&, const AdamConfig&);
template void adam_update<double>(const OptimTensors<double>&, const AdamConfig&);
template void rmsprop_update<float>(const OptimTensors<float>&, const RmspropConfig&);
template void rmsprop_update<double>(const OptimTensors<double>&, const RmspropConfig&);

}  // namespace convforge
