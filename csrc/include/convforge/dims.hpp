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
// (ValueError in Python) with the offending values in the message.
inline ConvDims make_conv_dims(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t Cw,
                               int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t pt,
                               int64_t pb, int64_t pl, int64_t pr, int64_t DH, int64_t DW,
                               int64_t G) {
  auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (SH < 1 || SW < 1) fail("stride must be >= 1, got (" + std::to_string(SH) + ", " + std::to_string(SW) + ")");
  if (DH < 1 || DW < 1) fail("dilation must be >= 1, got (" + std::to_string(DH) + ", " + std::to_string(DW) + ")");
  if (pt < 0 || pb < 0 || pl < 0 || pr < 0) fail("padding must be >= 0");
  if (G < 1 || C % G != 0 || K % G != 0)
    fail("groups=" + std::to_string(G) + " must divide in_channels=" + std::to_string(C) +
         " and out_channels=" + std::to_string(K));
  if (Cw * G != C)
    fail("weight has " + std::to_string(Cw) + " input channels per group but x has " +
         std::to_string(C) + " channels and groups=" + std::to_string(G));
  const int64_t ekh = DH * (KH - 1) + 1, ekw = DW * (KW - 1) + 1;  // dilated kernel extent
  if (KH < 1 || KW < 1 || ekh > H + pt + pb || ekw > W + pl + pr)
    fail("kernel " + std::to_string(KH) + "x" + std::to_string(KW) + " (dilated " +
         std::to_string(ekh) + "x" + std::to_string(ekw) + ") is larger than the padded input " +
         std::to_string(H + pt + pb) + "x" + std::to_string(W + pl + pr));
  ConvDims d{N, C, H, W, K, KH, KW, SH, SW, pt, pl, DH, DW, 0, 0, G};
  d.OH = (H + pt + pb - ekh) / SH + 1;
  d.OW = (W + pl + pr - ekw) / SW + 1;
  return d;
}

}  // namespace convforge
