// Overflow-checked int64 size arithmetic, the one helper for every size product of the core
// (dims, workspaces, output allocations in the bindings).
//
//   mul_checked(a, b, what) / add_checked(a, b, what): a*b / a+b, or SizeOverflow naming `what`
//     and both operands. SizeOverflow derives from std::invalid_argument, which pybind11 turns
//     into ValueError, like every other bad-shape error of the bindings.
//   product_within(limit, {f...}): true when every factor is >= 0 and their product is at most
//     limit (false on overflow, never throws): the test for "this workspace fits the budget",
//     where an overflowing size must mean "does not fit", not a wrapped small number.
//   ceil_div(a, b): blocks of b covering a, for a >= 0, b >= 1 and a + b - 1 in int64 (sizes
//     the dims already checked; pooling's window math, with negative a, has its own).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace convforge {

struct SizeOverflow : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline int64_t mul_checked(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r))
    throw SizeOverflow(std::string(what) + " does not fit in int64: " + std::to_string(a) +
                       " * " + std::to_string(b));
  return r;
}

inline int64_t add_checked(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    throw SizeOverflow(std::string(what) + " does not fit in int64: " + std::to_string(a) +
                       " + " + std::to_string(b));
  return r;
}

// Product of the factors, throwing SizeOverflow (naming what) when it overflows.
inline int64_t product_checked(std::initializer_list<int64_t> factors, const char* what) {
  int64_t p = 1;
  for (int64_t f : factors) p = mul_checked(p, f, what);
  return p;
}

inline bool product_within(int64_t limit, std::initializer_list<int64_t> factors) {
  int64_t p = 1;
  for (int64_t f : factors) {
    if (f < 0 || __builtin_mul_overflow(p, f, &p)) return false;
  }
  return p <= limit;
}

// a + b without overflow, saturated at INT64_MAX (for sizes fed to product_within: a saturated
// term makes the product exceed any budget). a, b >= 0.
inline int64_t add_sat(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

// a * b saturated at INT64_MAX (a, b >= 0).
inline int64_t mul_sat(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

}  // namespace convforge
