// AVX-512 copy of the dropout block kernel (CMake adds the -m flags by file-name suffix).
// Called only through dropout.cpp, and only when current_isa() is avx512.
#define CF_ISA avx512
#include "dropout_kernel.inc"
