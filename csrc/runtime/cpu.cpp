// CPU feature detection, ISA selection and thread control for the whole library.
#include "convforge/cpu.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#ifdef CONVFORGE_OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define CONVFORGE_HAS_ATFORK 1
#endif

namespace convforge {
namespace {

Isa probe_cpu() {
#if defined(CONVFORGE_X86) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::baseline;
}

Isa from_env(Isa best) {
  const char* s = std::getenv("CONVFORGE_ISA");
  if (!s) return best;
  Isa want = best;
  if (!std::strcmp(s, "baseline")) want = Isa::baseline;
  else if (!std::strcmp(s, "avx2")) want = Isa::avx2;
  else if (!std::strcmp(s, "avx512")) want = Isa::avx512;
  return static_cast<int>(want) < static_cast<int>(best) ? want : best;
}

Isa g_isa = from_env(probe_cpu());

bool probe_gathers() {
  const char* s = std::getenv("CONVFORGE_GATHERS");
  if (s && (!std::strcmp(s, "0") || !std::strcmp(s, "1"))) return s[0] == '1';
#if defined(CONVFORGE_X86) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_is("intel");
#else
  return false;
#endif
}

const bool g_gathers = probe_gathers();

bool probe_narrow_avx512() {
  const char* s = std::getenv("CONVFORGE_NARROW_AVX512");
  if (s && (!std::strcmp(s, "0") || !std::strcmp(s, "1"))) return s[0] == '1';
#if defined(CONVFORGE_X86) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_is("amdfam19h");  // Zen 3 (no AVX-512, never asked) and Zen 4
#else
  return false;
#endif
}

const bool g_narrow_avx512 = probe_narrow_avx512();

}  // namespace

bool fast_gathers() { return g_gathers; }
bool narrow_avx512() { return g_narrow_avx512; }

Isa detected_isa() { return from_env(probe_cpu()); }
Isa current_isa() { return g_isa; }

bool set_isa(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(probe_cpu())) return false;
  g_isa = isa;
  return true;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "baseline";
  }
}

namespace {

// Atomic: set_num_threads may run on one Python thread while another starts a kernel.
#ifdef CONVFORGE_OPENMP
std::atomic<int> g_threads{omp_get_max_threads()};  // OMP_NUM_THREADS or the cores, at load
#endif

// True in the child of a fork() of a process that had this library loaded. GNU libgomp keeps the
// worker threads of a parallel team in a pool owned by the thread that started it; fork() copies
// the pool's bookkeeping but not its threads, so the child's next team with more than one thread
// waits forever for workers that do not exist (libgomp has no fork handler and cannot start a
// second pool for the same thread). A region with num_threads(1) returns before touching the
// pool, so the child runs every kernel on one thread: same results (no kernel's result depends
// on the thread count), no hang. Set in any fork child, not only when a team ran in the parent,
// because other libraries sharing libgomp (numba's omp layer) may have started one.
std::atomic<bool> g_fork_child{false};

#ifdef CONVFORGE_HAS_ATFORK
void on_fork_child() { g_fork_child.store(true, std::memory_order_relaxed); }
// Registered once when the library loads; the handler runs in the child only.
const int g_atfork_registered = pthread_atfork(nullptr, nullptr, on_fork_child);
#endif

}  // namespace

int max_threads() {
#ifdef CONVFORGE_OPENMP
  if (g_fork_child.load(std::memory_order_relaxed)) return 1;
  return g_threads.load(std::memory_order_relaxed);
#else
  return 1;
#endif
}

int requested_threads() {
#ifdef CONVFORGE_OPENMP
  return g_threads.load(std::memory_order_relaxed);
#else
  return 1;
#endif
}

void set_num_threads(int n) {
#ifdef CONVFORGE_OPENMP
  if (n >= 1) g_threads.store(n, std::memory_order_relaxed);
#else
  (void)n;
#endif
}

bool in_fork_child() { return g_fork_child.load(std::memory_order_relaxed); }

bool has_openmp() {
#ifdef CONVFORGE_OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace convforge
