// The step buffer cache (issue #14 item 4): blocks the NumPy arrays of one training step
// free, kept for the same-sized arrays of the next step. A training step allocates the same
// activations and gradients every time; from the C library each large block comes back as
// fresh pages (mmap, or a heap that was trimmed), and every page then faults on first touch.
// Here, between begin() and the matching end(), a freed block of at least kCacheMinBytes waits
// in a free list keyed by its exact size (at most kCacheMaxHeldBytes held in all) and the next
// request of that size takes it. The last end() frees the idle blocks, and from then on a block
// freed (an array of the last step that outlived it) goes straight back to free().
//
// Every block carries a kHeaderBytes header (its size and a tag), so free and realloc never
// trust a size from the caller. Blocks keep malloc's alignment (the header is a multiple of
// it). Thread-safe (one mutex, made safe across fork() by pthread_atfork). The NumPy side (a
// PyDataMem_Handler that routes array data here while it is set) is in
// csrc/bindings/buffer_cache.cpp; convforge.nn.reuse_step_buffers() sets it around fit.
#pragma once

#include <cstddef>
#include <cstdint>

namespace convforge::buffer_cache {

constexpr std::size_t kHeaderBytes = 64;
constexpr std::size_t kCacheMinBytes = std::size_t(64) << 10;      // smaller: malloc's own bins
constexpr std::size_t kCacheMaxHeldBytes = std::size_t(1) << 30;   // idle blocks in all

// A block of `bytes` (zeroed when zero is true); nullptr when out of memory.
void* allocate(std::size_t bytes, bool zero);
// The block at p (from allocate or reallocate; nullptr: nothing) back to the cache or to free().
void release(void* p);
// p resized to `bytes`, contents kept up to the smaller size (realloc's contract).
void* reallocate(void* p, std::size_t bytes);
// A user starts / stops (they nest and may overlap across threads): blocks are kept while at
// least one user is active; the last end() frees every idle block.
void begin();
void end();

struct Stats {
  int64_t hits = 0;        // allocations served from the cache
  int64_t misses = 0;      // allocations of a cacheable size that found no block
  int64_t held_bytes = 0;  // idle blocks' bytes now
  int64_t blocks = 0;      // idle blocks now
  int64_t users = 0;       // begin() calls not yet ended
};
Stats stats();

}  // namespace convforge::buffer_cache
