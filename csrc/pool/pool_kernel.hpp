// Private interface between pool2d.cpp (dispatch, borders, OpenMP) and the per-ISA copies of the
// pooling fast paths (pool_kernel.inc, compiled by pool_avx2.cpp and pool_avx512.cpp): each
// copy's table, picked in pool2d.cpp by select_isa() (csrc/runtime/isa.hpp). The baseline table
// is empty (every entry null): on baseline x86-64 the generic loops of pool2d.cpp run.
// Declarations only: this header is included by units compiled with different -m flags.
//
// Every kernel is called only on the shapes its comment allows; the callers in pool2d.cpp check
// those conditions. Results are bit-identical to the naive kernels of naive.cpp (same operations
// on every element, in the same order).
#pragma once
#include <cstdint>

#include "runtime/isa.hpp"

namespace convforge::pool_detail {

// Geometry of one plane (the fields of PoolDims without N and C; a plain struct so that the
// per-ISA units need not include dims.hpp, which has inline functions).
struct Geo {
  int64_t H, W, KH, KW, SH, SW, PH, PW, OH, OW;
  int64_t col_lo, col_hi;  // interior output columns [col_lo, col_hi): window inside [0, W)
};

// One ISA's fast paths for element type T. Entries indexed [IsMax] are the min ([0]) and max
// ([1]) variants. Entries marked "float" are null in the double table.
template <typename T>
struct Kernel {
  // ---- forward, interior columns of one output row ---------------------------------------
  // Output columns j in [0, n) with window columns [ws0 + j*SW, ws0 + j*SW + KW) inside [0, W)
  // and window rows [h0, h1) inside [0, H); xp: x[n, c] (H, W). SW is 1 or 2; H*W <= INT32_MAX.
  // y (n,) = best element (first in row-major window order; the last NaN wins), ind (n,) = its
  // ih*W + iw. HW: elements in the plane (no read goes past it).
  void (*best_row[2])(T* y, int64_t* ind, const T* xp, int64_t W, int64_t HW, int64_t h0,
                      int64_t h1, int64_t ws0, int64_t n, int64_t KW, int64_t SW);
  // y (n,) = (0 + sum of the window in row-major order) / div, same window rules as best_row.
  void (*avg_row)(T* y, const T* xp, int64_t W, int64_t HW, int64_t h0, int64_t h1, int64_t ws0,
                  int64_t n, int64_t KW, int64_t SW, T div);

  // Float: two output rows at once, for short rows: OW <= 4, every output column interior
  // (window columns ws0 + j*SW + [0, KW) inside [0, W)), both rows' windows unclipped: rows
  // [ha, ha + KH) and [hb, hb + KH) inside [0, H); SW is 1 or 2; the loads read up to 4*SW - 1
  // elements past the last window element, which must lie in x (they may be the next plane's):
  // (hb + KH - 1)*W + ws0 + KW - 1 + 4*SW <= elements of x from xp on. y, ind (2*OW,) = row a
  // then row b (contiguous in y when b = a + 1). Same results as best_row / avg_row on each row.
  void (*best_rows2[2])(T* y, int64_t* ind, const T* xp, int64_t W, int64_t ha, int64_t hb,
                        int64_t KH, int64_t KW, int64_t ws0, int64_t OW, int64_t SW);
  void (*avg_rows2)(T* y, const T* xp, int64_t W, int64_t ha, int64_t hb, int64_t KH,
                    int64_t KW, int64_t ws0, int64_t OW, int64_t SW, T div);

  // Float: 2x2 windows, stride 2, no padding: the OH output rows of one plane, y (OH, OW) from
  // xp (H, W) with H >= 2*OH and W >= 2*OW. Per 8 outputs: 4 loads, even/odd columns by
  // shuffles, y = (((0 + x00) + x01) + x10) + x11) * 0.25 (= / 4 exactly: the naive order); the
  // last block of a row overlaps the one before it (same values stored twice), so no masked
  // tail; a row of fewer than 8 outputs is one block (whole-vector loads and stores spilling
  // into the next rows where they stay inside the plane, masked at its end).
  void (*avg2x2_plane)(T* y, const T* xp, int64_t OH, int64_t W, int64_t OW);
  // The same windows for max / min: y (OH, OW) = best of the 4 taps in row-major order (ties
  // keep the first, the last NaN wins), ind (OH, OW) = its ih*W + iw; H*W <= INT32_MAX.
  void (*best2x2_plane[2])(T* y, int64_t* ind, const T* xp, int64_t OH, int64_t W, int64_t OW);
  // Float: the same windows on rows of 4 outputs (8 x 8 planes): output rows [r0, r1) of x (all
  // planes, r = plane*OH + oh, r1 - r0 >= 2), two rows per vector (the last pair may overlap the
  // one before it); W >= 8.
  void (*avg2x2_rows4)(T* y, const T* x, int64_t r0, int64_t r1, int64_t OH, int64_t H,
                       int64_t W);
  void (*best2x2_rows4[2])(T* y, int64_t* ind, const T* x, int64_t r0, int64_t r1, int64_t OH,
                           int64_t H, int64_t W);
  // Float: average backward of those windows on rows of 4 outputs: dx rows 2oh, 2oh + 1 of
  // output rows r in [r0, r1) (any r1 - r0 >= 1), dx[2oh + a, 2ow + b] = 0 + dy[oh, ow] * 0.25
  // (= / 4), the columns past 8 zero; the caller zeroes dx rows in no window (H odd).
  void (*avg2x2_backward_rows4)(T* dx, const T* dy, int64_t r0, int64_t r1, int64_t OH,
                                int64_t H, int64_t W);
  // Float: the same windows, one plane: dx (H, W) from dy (OH, OW), rows and columns in no
  // window zero (the last block of a row overlaps the one before it; rows of fewer than 8
  // outputs: masked).
  void (*avg2x2_backward_plane)(T* dx, const T* dy, int64_t H, int64_t W, int64_t OH,
                                int64_t OW);
  // Float: max / min backward of the same windows on rows of OW >= 8 outputs, one plane: dx
  // (H, W) from dy, ind and relu_y (OH, OW; the fused ReLU's mask y, or null): dx = 0 + dy (0
  // where relu_y <= 0 or NaN) at the element ind points at, +0 at the other elements of its
  // window and in rows and columns in no window. Returns false (dx partly written) at an index
  // outside its window.
  bool (*best2x2_backward_plane)(T* dx, const T* dy, const int64_t* ind, const T* relu_y,
                                 int64_t H, int64_t W, int64_t OH, int64_t OW);

  // ---- backward, one plane -------------------------------------------------------------------
  // Average backward by gathering: dx[i] = 0 + sum, in ascending (oh, ow) order, of
  // dy[oh, ow] / div[oh, ow] over the windows holding i. div (OH, OW): the divisor of each
  // window. Allowed: SW == 1, or SW == 2 with KW <= 2.
  void (*avg_backward_plane)(T* dx, const T* dy, const T* div, const Geo& g);
};

// The table of each ISA copy (float and double: specialisations at the end of pool_kernel.inc;
// the baseline one, empty, in pool2d.cpp).
CF_PER_ISA(template <typename T> Kernel<T> kernel();)

}  // namespace convforge::pool_detail
