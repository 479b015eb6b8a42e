// registry.hpp: kernel entry points of the CPU emulator (tests/cuda/emu), by name, with their
// parameter types, so that a launch from Python is type-checked the way the kernel's PTX
// signature would demand (pointer dtypes, constness, 64-bit scalars) and then called.
//
// Each generated translation unit (kernels_<family>.cpp, written by tests/cuda/cuda_emu.py)
// holds one family's exact NVRTC source and registers its extern "C" entries here once, at
// load time, with the SHA-256 of that source (the module refuses code it was not built from).
#ifndef CFEMU_REGISTRY_HPP
#define CFEMU_REGISTRY_HPP

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace cfemu {

// What one kernel parameter takes: a pointer to f32 / f64 / i64 elements, or an i64 scalar.
enum class Kind { ptr_f32, ptr_f64, ptr_i64, i64 };

struct Param {
  Kind kind;
  bool is_const;  // pointer to const (an input); a non-const pointer is an output
};

template <typename T>
struct ParamOf;  // only the types convforge's kernels use: any other fails to compile
template <> struct ParamOf<float*> { static constexpr Param value{Kind::ptr_f32, false}; };
template <> struct ParamOf<const float*> { static constexpr Param value{Kind::ptr_f32, true}; };
template <> struct ParamOf<double*> { static constexpr Param value{Kind::ptr_f64, false}; };
template <> struct ParamOf<const double*> { static constexpr Param value{Kind::ptr_f64, true}; };
template <> struct ParamOf<long long*> { static constexpr Param value{Kind::ptr_i64, false}; };
template <> struct ParamOf<const long long*> {
  static constexpr Param value{Kind::ptr_i64, true};
};
template <> struct ParamOf<long long> { static constexpr Param value{Kind::i64, true}; };

// slots[i] points to the value of parameter i (a pointer value or a long long).
using Invoker = void (*)(void* fn, void* const* slots);

struct Entry {
  std::string name;
  std::vector<Param> params;
  Invoker invoke;
  void* fn;
};

struct Family {
  std::string name;
  std::string source_sha256;  // of the source string the entries were compiled from
  std::vector<Entry> entries;
};

template <typename... A, std::size_t... I>
void call_with(void (*fn)(A...), void* const* slots, std::index_sequence<I...>) {
  fn(*static_cast<A*>(slots[I])...);
}

template <typename... A>
void invoke(void* fn, void* const* slots) {
  call_with(reinterpret_cast<void (*)(A...)>(fn), slots, std::index_sequence_for<A...>{});
}

template <typename... A>
Entry make_entry(const char* name, void (*fn)(A...)) {
  return Entry{name, {ParamOf<A>::value...}, &invoke<A...>, reinterpret_cast<void*>(fn)};
}

// The families linked into this program (registered by the generated units at load time).
std::vector<Family>& families();
inline int register_family(Family f) {
  families().push_back(std::move(f));
  return 0;
}

}  // namespace cfemu

#define CFEMU_ENTRY(name) ::cfemu::make_entry(#name, &name)

#endif  // CFEMU_REGISTRY_HPP
