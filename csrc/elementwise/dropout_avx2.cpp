// AVX2 copy of the dropout block kernel (CMake adds the -m flags by file-name suffix).
// Called only through dropout.cpp, and only when current_isa() is avx2.
#define CF_ISA avx2
#include "dropout_kernel.inc"
