// CPU feature detection, ISA selection and thread control for the whole library.
#include "convforge/cpu.hpp"

#include <cstdlib>
#include <cstring>
#ifdef CONVFORGE_OPENMP
#include <omp.h>
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

}  // namespace

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

#ifdef CONVFORGE_OPENMP
int g_threads = omp_get_max_threads();  // OMP_NUM_THREADS or the core count, read at load
#endif

int max_threads() {
#ifdef CONVFORGE_OPENMP
  return g_threads;
#else
  return 1;
#endif
}

void set_num_threads(int n) {
#ifdef CONVFORGE_OPENMP
  if (n >= 1) g_threads = n;
#else
  (void)n;
#endif
}

bool has_openmp() {
#ifdef CONVFORGE_OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace convforge
