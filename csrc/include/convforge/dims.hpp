// Shape descriptors shared by every CPU kernel family.
//
// Vocabulary (one letter set everywhere): N batch, C input channels, H W input size, K output
// channels, KH KW kernel size, SH SW stride, PH PW top/left padding, DH DW dilation, OH OW output
// size, G groups. All fields are int64 so that every index computed from them is 64-bit.
// Bottom/right padding only changes OH/OW, so a kernel never needs it: it is folded into OH/OW
// when the dims are built.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "convforge/checked.hpp"

namespace convforge {

struct ConvDims {
  int64_t N, C, H, W;        // input x (N, C, H, W)
  int64_t K, KH, KW;         // weight w (K, C/G, KH, KW)
  int64_t SH, SW;            // stride
  int64_t PH, PW;            // top / left padding
  int64_t DH, DW;            // dilation
  int64_t OH, OW;            // output y (N, K, OH, OW)
  int64_t G;                 // groups
  int64_t Cg() const { return C / G; }  // input channels per group
  int64_t Kg() const { return K / G; }  // output channels per group
};

struct PoolDims {
  int64_t N, C, H, W;        // input x (N, C, H, W)
  int64_t KH, KW;            // window
  int64_t SH, SW;            // stride
  int64_t PH, PW;            // padding (symmetric: the same amount at the bottom/right)
  int64_t OH, OW;            // output y (N, C, OH, OW)
};

inline std::string shape_str(int64_t a, int64_t b, int64_t c, int64_t d) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ", " +
         std::to_string(d) + ")";
}

// Builds and validates conv dims. pt/pb/pl/pr: padding per side. Throws std::invalid_argument
// (ValueError in Python) with the offending values in the message. Every size derived from the
// dims is checked once here (checked.hpp): the padded extent, the dilated kernel extent and the
// element counts of x, w, y and their byte sizes fit in int64, so that the kernels' index
// products (oh*SH + i*DH <= padded extent, n*C*H*W, ...) cannot overflow.
inline ConvDims make_conv_dims(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t Cw,
                               int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t pt,
                               int64_t pb, int64_t pl, int64_t pr, int64_t DH, int64_t DW,
                               int64_t G) {
  auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (N < 0 || C < 0 || H < 0 || W < 0 || K < 0 || Cw < 0)
    fail("sizes must be >= 0, got x " + shape_str(N, C, H, W) + ", w " + shape_str(K, Cw, KH, KW));
  if (SH < 1 || SW < 1) fail("stride must be >= 1, got (" + std::to_string(SH) + ", " + std::to_string(SW) + ")");
  if (DH < 1 || DW < 1) fail("dilation must be >= 1, got (" + std::to_string(DH) + ", " + std::to_string(DW) + ")");
  if (pt < 0 || pb < 0 || pl < 0 || pr < 0) fail("padding must be >= 0");
  if (G < 1 || C % G != 0 || K % G != 0)
    fail("groups=" + std::to_string(G) + " must divide in_channels=" + std::to_string(C) +
         " and out_channels=" + std::to_string(K));
  if (Cw * G != C)
    fail("weight has " + std::to_string(Cw) + " input channels per group but x has " +
         std::to_string(C) + " channels and groups=" + std::to_string(G));
  if (KH < 1 || KW < 1)
    fail("kernel size must be >= 1, got " + std::to_string(KH) + "x" + std::to_string(KW));
  // dilated kernel extent and padded input
  const int64_t ekh = add_checked(mul_checked(DH, KH - 1, "dilated kernel height"), 1,
                                  "dilated kernel height");
  const int64_t ekw = add_checked(mul_checked(DW, KW - 1, "dilated kernel width"), 1,
                                  "dilated kernel width");
  const int64_t hp = add_checked(add_checked(H, pt, "padded height"), pb, "padded height");
  const int64_t wp = add_checked(add_checked(W, pl, "padded width"), pr, "padded width");
  if (ekh > hp || ekw > wp)
    fail("kernel " + std::to_string(KH) + "x" + std::to_string(KW) + " (dilated " +
         std::to_string(ekh) + "x" + std::to_string(ekw) + ") is larger than the padded input " +
         std::to_string(hp) + "x" + std::to_string(wp));
  ConvDims d{N, C, H, W, K, KH, KW, SH, SW, pt, pl, DH, DW, 0, 0, G};
  d.OH = (hp - ekh) / SH + 1;
  d.OW = (wp - ekw) / SW + 1;
  // element counts (times 8 bytes, the largest element) of x, w and y
  product_checked({N, C, H, W, 8}, "x size in bytes");
  product_checked({K, Cw, KH, KW, 8}, "w size in bytes");
  product_checked({N, K, d.OH, d.OW, 8}, "output size in bytes");
  product_checked({KH, KW, d.OH, d.OW}, "taps x output positions");
  return d;
}

}  // namespace convforge
