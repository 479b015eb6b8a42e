// Task helpers shared by the baseline-ISA kernel files (csrc/conv/*.cpp):
//   scratch<T, Tag>(n): this thread's grow-only, 64-byte aligned buffer of at least n elements,
//     kept between calls (no page faults after the first); one buffer per (T, Tag), so a caller
//     can hold one while the tasks it runs (on its own thread too) use another.
//   run_tasks(tasks, parallel, body): body(t) for t in [0, tasks) on the OpenMP threads (dynamic
//     schedule) when parallel, else in turn; an exception in a task is re-thrown after the loop
//     (OpenMP must never see one). Each task owns its outputs, so the split never changes a sum.
// Everything here is in an unnamed namespace: each translation unit has its own copy and its own
// buffers, and no inline code is ever shared between translation units built for other ISAs.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <new>

#include "convforge/cpu.hpp"

namespace convforge {
namespace {  // NOLINT(build/namespaces): per-translation-unit copies on purpose

template <typename T, int Tag = 0>
T* scratch(int64_t n) {
  struct Buffer {
    T* p = nullptr;
    int64_t n = 0;
    ~Buffer() { std::free(p); }
  };
  static thread_local Buffer buf;
  if (n > buf.n) {
    std::free(buf.p);
    buf.n = 0;
    const size_t bytes = (static_cast<size_t>(n) * sizeof(T) + 63) / 64 * 64;
    buf.p = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!buf.p) throw std::bad_alloc();
    buf.n = n;
  }
  return buf.p;
}

template <typename F>
void run_tasks(int64_t tasks, bool parallel, const F& body) {
  if (!parallel || tasks <= 1 || max_threads() <= 1) {
    for (int64_t t = 0; t < tasks; ++t) body(t);
    return;
  }
  std::exception_ptr error = nullptr;
CF_OMP_FOR(schedule(dynamic, 1))
  for (int64_t t = 0; t < tasks; ++t) {
    try {
      body(t);
    } catch (...) {
CF_OMP(omp critical(convforge_task_error))
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace
}  // namespace convforge
