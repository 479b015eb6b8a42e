// The timed loops of the FMA peak microbenchmark (peak.hpp), one per ISA, vector width and
// dtype. Declarations only, with no standard-library includes: this header is included by
// translation units compiled with different -m flags (peak.cpp, peak_avx2.cpp, peak_avx512.cpp),
// and nothing in it may be shared by the linker between them.
#pragma once
#include <cstdint>

namespace convforge::peak_detail {

// One timed window: `reps` rounds of NACC independent chains acc[i] = acc[i] * m + c on
// vectors. Returns the flops done (2 per multiply-add lane); *sink receives the sum of every
// chain's lanes, so that no chain can be optimised away.
typedef double (*ChainFn)(int64_t reps, double m, double c, double* sink);

namespace baseline {  // SSE2: separate multiply and add, 128 bits
ChainFn chains_f32_128();
ChainFn chains_f64_128();
}  // namespace baseline
namespace avx2 {  // FMA3, 256 bits
ChainFn chains_f32_256();
ChainFn chains_f64_256();
}  // namespace avx2
namespace avx512 {  // AVX-512F, 512 bits
ChainFn chains_f32_512();
ChainFn chains_f64_512();
}  // namespace avx512

}  // namespace convforge::peak_detail
