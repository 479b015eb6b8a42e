// shim.hpp: the CUDA language pieces convforge's kernels use, mapped to C++ for the CPU
// emulator of the CUDA execution model (tests/cuda/emu).
//
// The generated translation units include this right before the exact source string the CUDA
// backend hands to NVRTC (backends/cuda.py: source(family), common.cuh pasted in), so the
// kernels compile unmodified. Like NVRTC's environment it includes no header.
//
// Mapped: threadIdx / blockIdx / blockDim / gridDim (x only is ever non-zero: the backend
// launches 1-D grids) read the emulator's per-thread and per-launch state; __syncthreads() is a
// real barrier over the block's threads (runtime.cpp); __shared__ is static storage, sound
// because the emulator runs one block at a time (the runtime poisons it at each block start);
// __global__ / __device__ / __forceinline__ / __launch_bounds__ map to plain C++.
//
// Not mapped on purpose: warp intrinsics (__shfl_*, __syncwarp, __ballot_sync, ...), atomics,
// math intrinsics, dynamic shared memory, cooperative groups. A kernel that starts using one
// fails to compile here, so the emulated tests fail loudly instead of passing: grow the shim
// (with a faithful model of the feature) before such a kernel can count as covered.
#ifndef CFEMU_SHIM_HPP
#define CFEMU_SHIM_HPP

namespace cfemu {
struct uint3 {
  unsigned x, y, z;
};
const uint3& thread_idx();  // of the CUDA thread running now
const uint3& block_idx();   // of the block running now
const uint3& block_dim();   // of the launch
const uint3& grid_dim();    // of the launch
void syncthreads(int line);  // block-wide barrier; line: where it is in the source
}  // namespace cfemu

#define threadIdx (::cfemu::thread_idx())
#define blockIdx (::cfemu::block_idx())
#define blockDim (::cfemu::block_dim())
#define gridDim (::cfemu::grid_dim())
#define __syncthreads() ::cfemu::syncthreads(__LINE__)

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
// __restrict__ is a GNU C++ keyword already.

#endif  // CFEMU_SHIM_HPP
