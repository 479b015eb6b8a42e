// runtime.hpp: launching one kernel of the CPU emulator (tests/cuda/emu): a 1-D grid of blocks,
// run one block at a time, each block's CUDA threads run as fibers on the calling OS thread
// (default build) or as OS threads (CFEMU_OS_THREADS: the ThreadSanitizer harness).
#ifndef CFEMU_RUNTIME_HPP
#define CFEMU_RUNTIME_HPP

#include <cstddef>
#include <cstdint>

#include "registry.hpp"

namespace cfemu {

// Order in which blocks run, and (fibers only) in which the threads of a block run between two
// barriers. A kernel without a race gives bit-identical results under every order.
enum class Order { forward = 0, reverse = 1, shuffle = 2 };

struct Options {
  Order block_order = Order::forward;
  Order thread_order = Order::forward;  // fibers only; OS threads run in whatever order
  int poison = -1;                      // byte written over all __shared__ storage before each
                                        // block (-1: none)
  std::uint64_t seed = 1;               // of the shuffles
};

struct Stats {
  std::uint64_t blocks = 0;    // blocks run
  std::uint64_t barriers = 0;  // block-wide barrier phases completed, over all blocks
};

// Runs `entry` on a grid of `grid` blocks of `block` threads; slots[i] points to the value of
// parameter i. Throws std::runtime_error when the kernel breaks the execution model (threads
// of a block wait at different __syncthreads(), or some return while others wait).
Stats launch(const Entry& entry, unsigned grid, unsigned block, void* const* slots,
             const Options& options);

// Bytes of __shared__ storage the poisoning covers (0 where the linker script is not used).
std::size_t shared_bytes();

}  // namespace cfemu

#endif  // CFEMU_RUNTIME_HPP
